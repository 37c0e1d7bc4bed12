"""Private keys: generation (behind a swappable factory), PEM encoding and loading.

Keys are written the way kubeadm writes them (client-go keyutil): RSA as PKCS#1
"RSA PRIVATE KEY", ECDSA as SEC1 "EC PRIVATE KEY", public keys as PKIX "PUBLIC KEY".
Loading also accepts PKCS#8 "PRIVATE KEY", which users' own CAs often come in.

Tests swap key generation for a pool of pre-generated keys through `key_factory`
(like kubeadm's pkiutil/testing), since RSA generation dominates the run time.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from kbootd.errors import ValidationError

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

DEFAULT_ALGORITHM = "RSA-2048"
_RSA_BITS = {"RSA-2048": 2048, "RSA-3072": 3072, "RSA-4096": 4096}
_CURVES: dict[str, type[ec.EllipticCurve]] = {"ECDSA-P256": ec.SECP256R1, "ECDSA-P384": ec.SECP384R1}
ALGORITHMS = (*_RSA_BITS, *_CURVES)


def generate_key(algorithm: str = DEFAULT_ALGORITHM) -> PrivateKey:
    """A fresh private key of one of ALGORITHMS (kubeadm's encryptionAlgorithm values)."""
    if algorithm in _RSA_BITS:
        return rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS[algorithm])
    if algorithm in _CURVES:
        return ec.generate_private_key(_CURVES[algorithm]())
    raise ValidationError(
        f"encryptionAlgorithm: {algorithm!r} is not supported; expected one of {', '.join(ALGORITHMS)}"
    )


KeyFactory = Callable[[str], PrivateKey]
_factory: KeyFactory = generate_key


def new_private_key(algorithm: str = DEFAULT_ALGORITHM) -> PrivateKey:
    """The one place kbootd asks for a new key; goes through the current factory."""
    if algorithm not in ALGORITHMS:
        return generate_key(algorithm)  # raises the clear error
    return _factory(algorithm)


@contextmanager
def key_factory(factory: KeyFactory) -> Iterator[None]:
    """Use `factory` instead of real key generation inside the block (tests)."""
    global _factory
    saved = _factory
    _factory = factory
    try:
        yield
    finally:
        _factory = saved


def algorithm_for(cluster) -> str:  # noqa: ANN001 - ClusterConfig, kept import-light
    """cfg.cluster.encryption_algorithm; the PublicKeysECDSA gate means ECDSA-P256 (kubeadm)."""
    if cluster.gate("PublicKeysECDSA") and cluster.encryption_algorithm == DEFAULT_ALGORITHM:
        return "ECDSA-P256"
    return cluster.encryption_algorithm


def describe(key: PrivateKey | PublicKey) -> str:
    """'RSA-2048', 'ECDSA-P256', ... for messages."""
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return f"RSA-{key.key_size}"
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return {"secp256r1": "ECDSA-P256", "secp384r1": "ECDSA-P384"}.get(key.curve.name, f"ECDSA-{key.curve.name}")
    return type(key).__name__


# Parsing an RSA key runs OpenSSL's consistency check (~70 ms for 2048 bits), and one init
# reads the CA key for every certificate it signs. Keys this process already encoded or
# parsed are remembered by a digest of their PEM (a small LRU), so each is checked once.
_MEMO_SIZE = 64
_memo: OrderedDict[bytes, PrivateKey] = OrderedDict()


def _remember(data: bytes, key: PrivateKey) -> None:
    _memo[hashlib.sha256(data).digest()] = key
    while len(_memo) > _MEMO_SIZE:
        _memo.popitem(last=False)


def encode_private_key_pem(key: PrivateKey) -> bytes:
    """PKCS#1 for RSA, SEC1 for ECDSA: both are TraditionalOpenSSL in cryptography's terms."""
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    _remember(data, key)
    return data


def encode_public_key_pem(key: PrivateKey | PublicKey) -> bytes:
    pub = key.public_key() if isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)) else key
    return pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def public_der(key: PrivateKey | PublicKey) -> bytes:
    """DER SubjectPublicKeyInfo: the canonical form to compare keys and to pin."""
    pub = key.public_key() if isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)) else key
    return pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def same_public_key(a: PrivateKey | PublicKey, b: PrivateKey | PublicKey) -> bool:
    return public_der(a) == public_der(b)


def load_private_key_pem(data: bytes | None, where: str) -> PrivateKey:
    """Parse a PEM private key (RSA or ECDSA; PKCS#1, SEC1 or PKCS#8). Errors never quote the data."""
    if not data or not data.strip():
        raise ValidationError(f"{where}: the file is empty; expected a PEM private key")
    known = _memo.get(hashlib.sha256(data).digest())
    if known is not None:
        return known
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ValidationError(f"{where}: the private key is encrypted; kbootd needs an unencrypted PEM key") from None
    except (ValueError, UnsupportedAlgorithm):
        raise ValidationError(
            f"{where}: not a PEM private key (expected RSA PRIVATE KEY, EC PRIVATE KEY or PRIVATE KEY)"
        ) from None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise ValidationError(f"{where}: the private key is neither RSA nor ECDSA ({type(key).__name__})")
    _remember(data, key)
    return key


def load_public_key_pem(data: bytes | None, where: str) -> PublicKey:
    if not data or not data.strip():
        raise ValidationError(f"{where}: the file is empty; expected a PEM public key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise ValidationError(f"{where}: not a PEM public key (expected PUBLIC KEY)") from None
    if not isinstance(key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
        raise ValidationError(f"{where}: the public key is neither RSA nor ECDSA ({type(key).__name__})")
    return key
