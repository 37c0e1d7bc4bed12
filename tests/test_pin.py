"""CA public-key pins against the Kubernetes test vectors, parsing, and any-of matching."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from kbootd.errors import ValidationError
from kbootd.pin import matches, parse_pin, pin_of
from kbootd.pki import certs
from tests.shared import FIXTURES

VECTORS = json.loads((FIXTURES / "vectors.json").read_text())["ca_pin"]


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["name"])
def test_pin_of_matches_vector(vector: dict[str, str]) -> None:
    assert pin_of(vector["cert_pem"]) == vector["pin"]
    if "must_not_match" in vector:
        assert pin_of(vector["cert_pem"]) != vector["must_not_match"]
        assert not matches(vector["cert_pem"], [vector["must_not_match"]])


@pytest.mark.parametrize("form", ["object", "str", "bytes"])
def test_pin_of_accepts_object_or_pem(form: str) -> None:
    pem = VECTORS[0]["cert_pem"]
    arg = {"object": x509.load_pem_x509_certificate(pem.encode()), "str": pem, "bytes": pem.encode()}[form]
    assert pin_of(arg) == VECTORS[0]["pin"]


def test_pin_depends_only_on_the_public_key() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    a = certs.new_self_signed_ca(key, "one", timedelta(days=1))
    b = certs.new_self_signed_ca(key, "two", timedelta(days=2))
    other = certs.new_self_signed_ca(ec.generate_private_key(ec.SECP256R1()), "one", timedelta(days=1))
    assert pin_of(a) == pin_of(b) != pin_of(other)


@pytest.mark.parametrize("text,expected", [
    ("sha256:" + "ab" * 32, "sha256:" + "ab" * 32),
    ("SHA256:" + "AB" * 32, "sha256:" + "ab" * 32),
    ("  sha256:" + "0f" * 32 + "\n", "sha256:" + "0f" * 32),
])
def test_parse_pin_normalizes(text: str, expected: str) -> None:
    assert parse_pin(text, "--discovery-token-ca-cert-hash") == expected


@pytest.mark.parametrize("text,message", [
    ("ab" * 32, "expected sha256:<64 hex digits>"),
    ("md5:" + "ab" * 16, "unsupported pin hash 'md5'"),
    ("sha256:" + "ab" * 31, "got 62 characters"),
    ("sha256:" + "zz" * 32, "64 hex digits"),
    ("sha256:", "got 0 characters"),
])
def test_parse_pin_rejects(text: str, message: str) -> None:
    with pytest.raises(ValidationError, match=r"^discovery\.caCertHashes\[0\]: .*" + message.replace("(", r"\(")):
        parse_pin(text, "discovery.caCertHashes[0]")


@pytest.mark.parametrize("pins,expected", [
    ([VECTORS[0]["pin"]], True),
    ([VECTORS[1]["pin"], VECTORS[0]["pin"]], True),
    ([VECTORS[0]["pin"].upper().replace("SHA256", "sha256")], True),
    ([VECTORS[1]["pin"]], False),
    ([], False),
])
def test_matches_any(pins: list[str], expected: bool) -> None:
    assert matches(VECTORS[0]["cert_pem"], pins) is expected


def test_matches_refuses_a_malformed_pin_even_after_a_match() -> None:
    with pytest.raises(ValidationError, match="pin #2"):
        matches(VECTORS[0]["cert_pem"], [VECTORS[0]["pin"], "sha256:nothex"])
