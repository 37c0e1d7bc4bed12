"""kbootd.jws: detached JWS on cluster-info, checked against Kubernetes' own vectors and a real cluster."""

from __future__ import annotations

import base64
import json

import pytest

from kbootd import jws
from tests.apiserver import recorded

VECTORS_FILE = recorded.FIXTURES / "vectors.json"
needs_fixtures = pytest.mark.skipif(not VECTORS_FILE.exists(), reason="shared/fixtures not present")


def _vectors(key: str) -> list[dict]:
    if not VECTORS_FILE.exists():
        return []
    return [v for v in json.loads(VECTORS_FILE.read_text())["jws_detached"] if key in v]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


CONTENT = "apiVersion: v1\nkind: Config\nclusters: []\n"
TOKEN_ID, SECRET = "abcdef", "0123456789abcdef"


@needs_fixtures
@pytest.mark.parametrize("vec", _vectors("expected"), ids=lambda v: v["name"])
def test_sign_matches_kubernetes_vectors(vec: dict) -> None:
    assert jws.sign(vec["content"], vec["token_id"], vec["token_secret"]) == vec["expected"]
    assert jws.verify(vec["content"], vec["expected"], vec["token_id"], vec["token_secret"])


@needs_fixtures
@pytest.mark.parametrize("vec", _vectors("expected_invalid"), ids=lambda v: v["name"])
def test_invalid_vectors_do_not_verify(vec: dict) -> None:
    assert not jws.verify(vec["content"], vec["expected_invalid"], vec["token_id"], vec["token_secret"])


def test_vectors_are_present() -> None:
    if not VECTORS_FILE.exists():
        pytest.skip("shared/fixtures not present")
    assert _vectors("expected") and _vectors("expected_invalid")


def test_round_trip_and_shape() -> None:
    sig = jws.sign(CONTENT, TOKEN_ID, SECRET)
    header, payload, mac = sig.split(".")
    assert payload == ""
    assert json.loads(base64.urlsafe_b64decode(header + "==")) == {"alg": "HS256", "kid": TOKEN_ID}
    assert "=" not in sig
    assert len(base64.urlsafe_b64decode(mac + "=")) == 32
    assert jws.verify(CONTENT, sig, TOKEN_ID, SECRET)


def _forge_header(header: dict) -> str:
    """A JWS with another header, correctly MACed with the right secret: only the header is wrong."""
    import hashlib
    import hmac

    h = _b64url(json.dumps(header, separators=(",", ":")).encode())
    mac = hmac.new(SECRET.encode(), f"{h}.{_b64url(CONTENT.encode())}".encode(), hashlib.sha256).digest()
    return f"{h}..{_b64url(mac)}"


GOOD = jws.sign(CONTENT, TOKEN_ID, SECRET)


@pytest.mark.parametrize(
    ("case", "content", "value", "token_id", "secret"),
    [
        ("wrong secret", CONTENT, GOOD, TOKEN_ID, "0000000000000000"),
        ("wrong token id", CONTENT, GOOD, "zzzzzz", SECRET),
        ("whole token as key", CONTENT, jws.sign(CONTENT, TOKEN_ID, f"{TOKEN_ID}.{SECRET}"), TOKEN_ID, SECRET),
        ("modified payload", CONTENT + " ", GOOD, TOKEN_ID, SECRET),
        ("other kid, right mac", CONTENT, _forge_header({"alg": "HS256", "kid": "zzzzzz"}), TOKEN_ID, SECRET),
        ("alg none", CONTENT, _forge_header({"alg": "none", "kid": TOKEN_ID}), TOKEN_ID, SECRET),
        ("alg none unsigned", CONTENT, _b64url(b'{"alg":"none","kid":"abcdef"}') + "..", TOKEN_ID, SECRET),
        ("extra header field", CONTENT, _forge_header({"alg": "HS256", "kid": TOKEN_ID, "typ": "JWT"}), TOKEN_ID, SECRET),
        ("reordered header", CONTENT, _forge_header({"kid": TOKEN_ID, "alg": "HS256"}), TOKEN_ID, SECRET),
        ("attached payload", CONTENT, GOOD.replace("..", "." + _b64url(CONTENT.encode()) + "."), TOKEN_ID, SECRET),
        ("two parts", CONTENT, GOOD.replace("..", "."), TOKEN_ID, SECRET),
        ("four parts", CONTENT, GOOD + ".", TOKEN_ID, SECRET),
        ("truncated signature", CONTENT, GOOD[:-1], TOKEN_ID, SECRET),
        ("empty", CONTENT, "", TOKEN_ID, SECRET),
        ("not a string", CONTENT, None, TOKEN_ID, SECRET),
        ("non-ascii", CONTENT, GOOD[:-1] + "é", TOKEN_ID, SECRET),
    ],
)
def test_verify_rejects(case: str, content: str, value: str, token_id: str, secret: str) -> None:
    assert not jws.verify(content, value, token_id, secret), case


def test_real_cluster_info_verifies() -> None:
    if not recorded.available():
        pytest.skip("shared/fixtures not present")
    cm = recorded.load("08").json()
    kubeconfig = cm["data"]["kubeconfig"]
    value = cm["data"]["jws-kubeconfig-abcdef"]
    assert jws.verify(kubeconfig, value, "abcdef", "0123456789abcdef")
    assert jws.sign(kubeconfig, "abcdef", "0123456789abcdef") == value
    assert not jws.verify(kubeconfig, value, "abcdef", "0123456789abcdeg")
    assert not jws.verify(kubeconfig.replace("16443", "16444"), value, "abcdef", "0123456789abcdef")


@pytest.mark.parametrize("content,sig", [("\ud800", None), ("kubeconfig", "\ud800"), ("a\udfffb", None)])
def test_lone_surrogates_do_not_verify_and_do_not_raise(content, sig):
    """JSON's "\\ud800" decodes to a lone surrogate, which UTF-8 cannot encode (issue 11 #6)."""
    from kbootd.jws import encoded_header, verify

    sig = sig if sig is not None else encoded_header("abcdef") + "..AAAA"
    assert verify(content, sig, "abcdef", "0123456789abcdef") is False
    assert verify("kubeconfig", encoded_header("abcdef") + ".." + sig, "abcdef", "0123456789abcdef") is False
