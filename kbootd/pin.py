"""CA public-key pins: "sha256:<hex>" of the DER SubjectPublicKeyInfo (RFC 7469 style).

The same value as the spec's pipeline
`openssl x509 -pubkey -in ca.crt | openssl rsa -pubin -outform der | openssl dgst -sha256 -hex`,
which `kbootd init` prints and `kbootd join --discovery-token-ca-cert-hash` checks.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from kbootd.errors import ValidationError
from kbootd.pki.certs import load_cert_pem

PREFIX = "sha256:"
_HEX = frozenset("0123456789abcdef")


def pin_of(cert: x509.Certificate | bytes | str) -> str:
    """The pin of a certificate (an x509 object, or PEM text/bytes)."""
    if not isinstance(cert, x509.Certificate):
        cert = load_cert_pem(cert.encode() if isinstance(cert, str) else cert, "certificate")
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return PREFIX + hashlib.sha256(spki).hexdigest()


def parse_pin(text: str, where: str) -> str:
    """Normalize a pin to lower-case "sha256:<64 hex>"; anything else is a clear error."""
    v = str(text).strip()
    fmt, sep, digest = v.partition(":")
    if not sep:
        raise ValidationError(f"{where}: {v!r} is not a CA public-key pin; expected sha256:<64 hex digits>")
    if fmt.lower() != "sha256":
        raise ValidationError(f"{where}: unsupported pin hash {fmt!r}; only sha256:<64 hex digits> is supported")
    digest = digest.lower()
    if len(digest) != 64 or not set(digest) <= _HEX:
        raise ValidationError(
            f"{where}: {v!r} is not a CA public-key pin; expected sha256: followed by 64 hex digits "
            f"(got {len(digest)} characters)")
    return PREFIX + digest


def matches(cert: x509.Certificate | bytes | str, pins: Iterable[str]) -> bool:
    """True if the certificate's pin is one of `pins`; every pin is compared in constant time."""
    actual = pin_of(cert).encode()
    found = False
    for i, p in enumerate(pins):
        # No early exit: the time taken must not tell which pin (if any) matched.
        found |= hmac.compare_digest(actual, parse_pin(p, f"pin #{i + 1}").encode())
    return found
