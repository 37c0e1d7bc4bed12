"""What discovery accepts from cluster-info: the token's JWS, the kubeconfig, and the CA pins.

No network here: kbootd.join.discovery.validate_cluster_info on crafted data, Kubernetes'
own JWS vectors, and the cluster-info a real kube-apiserver served (fixture 08).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from kbootd import jws
from kbootd.cluster.bootstraptoken import cluster_info_kubeconfig
from kbootd.errors import DiscoveryError, SecurityError, TransientError, ValidationError
from kbootd.join.discovery import (
    check_pins,
    discover_token,
    signed_kubeconfig,
    validate_cluster_info,
)
from kbootd.pin import pin_of
from kbootd.pki import certs
from kbootd.token import BootstrapToken
from tests import shared
from tests.apiserver import recorded
from tests.keycache import key

TOKEN = BootstrapToken("abcdef", "0123456789abcdef")
OTHER_SECRET = BootstrapToken("abcdef", "fedcba9876543210")
SERVER = "https://10.0.0.10:6443"
WHERE = "https://10.0.0.10:6443"
YEAR = timedelta(days=365)
VECTORS = shared.FIXTURES / "vectors.json"
needs_fixtures = pytest.mark.skipif(not VECTORS.exists(), reason="shared/fixtures not present")


def _b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _ca(i: int = 0, cn: str = "kubernetes"):
    k = key("ECDSA-P256", 40 + i)
    return certs.new_self_signed_ca(k, cn, 10 * YEAR), k


ROOT, ROOT_KEY = _ca(0)
OTHER, _ = _ca(1, "attacker")


def _intermediate():
    k = key("ECDSA-P256", 45)
    cert = certs.sign_certificate(k.public_key(), ROOT, ROOT_KEY, common_name="kubernetes-intermediate",
                                  validity=YEAR, is_ca=True, usages=(ExtendedKeyUsageOID.CLIENT_AUTH,))
    return cert


INTERMEDIATE = _intermediate()


def kubeconfig_for(*bundle, server: str = SERVER) -> str:
    pem = b"".join(certs.encode_cert_pem(c) for c in bundle)
    return cluster_info_kubeconfig({"certificate-authority-data": base64.b64encode(pem).decode(), "server": server})


def data_for(text: str, token: BootstrapToken = TOKEN) -> dict[str, str]:
    return {"kubeconfig": text, f"jws-kubeconfig-{token.id}": jws.sign(text, token.id, token.secret)}


GOOD = kubeconfig_for(ROOT)


def _with_header(header: dict, text: str = GOOD, secret: str = TOKEN.secret, payload: str = "") -> str:
    h = _b64url(json.dumps(header, separators=(",", ":")).encode())
    mac = hmac.new(secret.encode(), f"{h}.{_b64url(text.encode())}".encode(), hashlib.sha256).digest()
    return f"{h}.{payload}.{_b64url(mac)}"


# --- the JWS ------------------------------------------------------------------------------------------

def test_round_trip() -> None:
    info = validate_cluster_info(data_for(GOOD), TOKEN, (pin_of(ROOT),), WHERE)
    assert info.kubeconfig == GOOD and info.server == SERVER
    assert info.ca_pem == certs.encode_cert_pem(ROOT) and info.ca_pins == (pin_of(ROOT),)


@pytest.mark.parametrize(("case", "signature"), [
    ("another secret", jws.sign(GOOD, TOKEN.id, OTHER_SECRET.secret)),
    ("the whole token as key", jws.sign(GOOD, TOKEN.id, TOKEN.full)),
    ("another token id in the header", jws.sign(GOOD, "zzzzzz", TOKEN.secret)),
    ("modified payload", jws.sign(GOOD + "#", TOKEN.id, TOKEN.secret)),
    ("changed header: extra field", _with_header({"alg": "HS256", "kid": "abcdef", "typ": "JWT"})),
    ("changed header: key order", _with_header({"kid": "abcdef", "alg": "HS256"})),
    ("alg none, empty signature", _with_header({"alg": "none", "kid": "abcdef"}).rsplit(".", 1)[0] + "."),
    ("alg none, right mac", _with_header({"alg": "none", "kid": "abcdef"})),
    ("not detached", _with_header({"alg": "HS256", "kid": "abcdef"}, payload=_b64url(GOOD.encode()))),
    ("garbage", "not-a-jws"),
    ("truncated signature", jws.sign(GOOD, TOKEN.id, TOKEN.secret)[:-2]),
])
def test_a_signature_that_does_not_verify_fails_closed(case: str, signature: str) -> None:
    data = {"kubeconfig": GOOD, "jws-kubeconfig-abcdef": signature}
    with pytest.raises(SecurityError, match="JWS signature of cluster-info for token id 'abcdef' does not verify") as e:
        validate_cluster_info(data, TOKEN, (pin_of(ROOT),), WHERE)
    assert TOKEN.secret not in str(e.value) and e.value.exit_code == 4


def test_tampered_content_under_a_genuine_signature_fails_closed() -> None:
    data = data_for(GOOD)
    data["kubeconfig"] = kubeconfig_for(OTHER)  # the attacker's CA, the genuine signature
    with pytest.raises(SecurityError):
        validate_cluster_info(data, TOKEN, (), WHERE)


def test_a_signature_for_another_token_id_only_means_ours_is_not_there_yet() -> None:
    data = data_for(GOOD, BootstrapToken("zzzzzz", TOKEN.secret))
    with pytest.raises(TransientError, match="no signature for token id 'abcdef' yet"):
        validate_cluster_info(data, TOKEN, (pin_of(ROOT),), WHERE)


def test_signature_without_kubeconfig_is_a_discovery_error() -> None:
    with pytest.raises(DiscoveryError, match="no kubeconfig key"):
        signed_kubeconfig({"jws-kubeconfig-abcdef": jws.sign("", "abcdef", TOKEN.secret)}, TOKEN, WHERE)


def _vectors(kind: str) -> list[dict]:
    return [v for v in json.loads(VECTORS.read_text())["jws_detached"] if kind in v] if VECTORS.exists() else []


@needs_fixtures
@pytest.mark.parametrize("vec", _vectors("expected"), ids=lambda v: v["name"])
def test_kubernetes_vectors_verify(vec: dict) -> None:
    tok = BootstrapToken(vec["token_id"], vec["token_secret"])
    data = {"kubeconfig": vec["content"] or "x", f"jws-kubeconfig-{tok.id}": vec["expected"]}
    if not vec["content"]:
        # An empty kubeconfig is refused before any signature check; the vector still holds.
        assert jws.verify("", vec["expected"], tok.id, tok.secret)
        return
    assert signed_kubeconfig(data, tok, WHERE) == vec["content"]


@needs_fixtures
@pytest.mark.parametrize("vec", _vectors("expected_invalid"), ids=lambda v: v["name"])
def test_kubernetes_invalid_vectors_fail_closed(vec: dict) -> None:
    tok = BootstrapToken(vec["token_id"], vec["token_secret"])
    with pytest.raises(SecurityError):
        signed_kubeconfig({"kubeconfig": vec["content"], f"jws-kubeconfig-{tok.id}": vec["expected_invalid"]},
                          tok, WHERE)


@pytest.mark.skipif(not recorded.APISERVER_FIXTURES.is_dir(), reason="recorded API fixtures not present")
def test_recorded_cluster_info_verifies_with_the_recorded_token_and_pin() -> None:
    data = recorded.load("08").json()["data"]
    pin = "sha256:0b5c07da32772eb431ea1ba6f4614eab673b8c42a313c767bd3f31f49da01d2d"  # fixtures README
    info = validate_cluster_info(data, BootstrapToken.parse("abcdef.0123456789abcdef"), (pin,), WHERE)
    assert info.server == "https://127.0.0.1:16443" and info.ca_pins == (pin,)
    with pytest.raises(SecurityError):
        validate_cluster_info(data, BootstrapToken.parse("abcdef.0000000000000000"), (pin,), WHERE)


# --- the kubeconfig -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("case", "text", "match"), [
    ("not YAML", "clusters: [", "invalid YAML"),
    ("two clusters", GOOD.replace("clusters:\n", "clusters:\n- cluster: {server: 'https://x:1'}\n  name: b\n"),
     "exactly one cluster, found 2"),
    ("no cluster", "apiVersion: v1\nkind: Config\nclusters: []\n", "exactly one cluster, found 0"),
    ("plain http server", GOOD.replace(SERVER, "http://10.0.0.10:6443"), "is not an https:// URL"),
    ("no CA", cluster_info_kubeconfig({"server": SERVER}), "no certificate-authority-data"),
    ("CA not PEM", cluster_info_kubeconfig({"server": SERVER, "certificate-authority-data":
                                            base64.b64encode(b"hello").decode()}), "not a PEM certificate"),
])
def test_malformed_kubeconfig_fails_closed(case: str, text: str, match: str) -> None:
    with pytest.raises(DiscoveryError, match=match) as e:
        validate_cluster_info(data_for(text), TOKEN, (), WHERE)
    assert e.value.exit_code == 4


def test_insecure_skip_tls_verify_in_cluster_info_is_refused() -> None:
    text = GOOD.replace("    server:", "    insecure-skip-tls-verify: true\n    server:")
    with pytest.raises(SecurityError, match="insecure-skip-tls-verify"):
        validate_cluster_info(data_for(text), TOKEN, (), WHERE)


# --- the pins -----------------------------------------------------------------------------------------

BAD_PIN = "sha256:" + "0" * 64


@pytest.mark.parametrize("pins", [(pin_of(ROOT),), (BAD_PIN, pin_of(ROOT)), (pin_of(ROOT), BAD_PIN),
                                  (pin_of(ROOT).upper().replace("SHA256", "sha256"),)])
def test_any_matching_pin_passes(pins: tuple[str, ...]) -> None:
    validate_cluster_info(data_for(GOOD), TOKEN, pins, WHERE)


def test_wrong_pin_fails_closed_and_names_both_pins() -> None:
    with pytest.raises(SecurityError) as e:
        validate_cluster_info(data_for(GOOD), TOKEN, (pin_of(OTHER),), WHERE)
    msg = str(e.value)
    assert "matches none of the pinned public keys" in msg and pin_of(ROOT) in msg and pin_of(OTHER) in msg


@pytest.mark.parametrize(("pin", "match"), [
    ("0b5c07da32772eb431ea1ba6f4614eab673b8c42a313c767bd3f31f49da01d2d", "expected sha256:<64 hex digits>"),
    ("md5:0b5c07da32772eb431ea1ba6f4614eab", "unsupported pin hash 'md5'"),
    ("sha256:0b5c", "got 4 characters"),
    ("sha256:" + "g" * 64, "64 hex digits"),
])
def test_malformed_pin_is_a_clear_error_before_any_request(pin: str, match: str) -> None:
    def fetch(_ep: str) -> dict:
        raise AssertionError("no request may be sent with a malformed pin")

    with pytest.raises(ValidationError, match=match) as e:
        discover_token(("10.0.0.10:6443",), TOKEN, (pin,), unsafe=False, deadline=1, fetch=fetch,
                       verified_fetch=lambda *_: {})
    assert "--discovery-token-ca-cert-hash #1" in str(e.value) and e.value.exit_code == 3


# kubeadm pins the certificates *in cluster-info's CA bundle* (pubkeypin.Set.CheckAny over
# certificate-authority-data): a pin of an intermediate passes only when that intermediate
# is in the bundle; the root's pin passes whenever the root is in it.
@pytest.mark.parametrize(("bundle", "pinned", "ok"), [
    (("root",), "root", True),
    (("root",), "intermediate", False),
    (("intermediate", "root"), "intermediate", True),
    (("intermediate", "root"), "root", True),
    (("intermediate",), "root", False),
    (("intermediate",), "intermediate", True),
])
def test_pin_of_an_intermediate_versus_the_root(bundle: tuple[str, ...], pinned: str, ok: bool) -> None:
    named = {"root": ROOT, "intermediate": INTERMEDIATE}
    text = kubeconfig_for(*(named[b] for b in bundle))
    pins = (pin_of(named[pinned]),)
    if ok:
        validate_cluster_info(data_for(text), TOKEN, pins, WHERE)
    else:
        with pytest.raises(SecurityError):
            validate_cluster_info(data_for(text), TOKEN, pins, WHERE)


def test_check_pins_compares_every_certificate() -> None:
    check_pins([INTERMEDIATE, ROOT], (pin_of(ROOT),), WHERE)
    with pytest.raises(SecurityError, match=pin_of(INTERMEDIATE)):
        check_pins([INTERMEDIATE, ROOT], (pin_of(OTHER),), WHERE)
