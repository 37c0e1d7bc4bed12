"""X.509 building blocks, free of host I/O: load, create a CA, sign leaves, make CSRs, validate.

Certificates come out the way kubeadm v1.32 makes them (pkiutil + client-go certutil):
random 63-bit serial; CA: KeyUsage digitalSignature|keyEncipherment|keyCertSign (critical),
BasicConstraints CA:TRUE (critical), SubjectKeyIdentifier, SAN DNS:<CN>; leaves: KeyUsage
digitalSignature|keyEncipherment (critical), the profile's ExtKeyUsage, BasicConstraints
CA:FALSE (critical), AuthorityKeyIdentifier = the CA's SKI, SANs. A CA is backdated 5
minutes (clock skew); a leaf starts when its CA starts and ends `validity` after now.
Join's TLS-bootstrap test double and the test API server reuse these functions.
"""

from __future__ import annotations

import ipaddress
import secrets
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kbootd.errors import ValidationError
from kbootd.pki.keys import PrivateKey, PublicKey, same_public_key

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

CERT_BACKDATE = timedelta(minutes=5)  # kubeadm constants.CertificateBackdate
SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH
_EKU_NAMES = {SERVER_AUTH: "server auth", CLIENT_AUTH: "client auth"}


def usage_name(oid: x509.ObjectIdentifier) -> str:
    return _EKU_NAMES.get(oid, oid.dotted_string)


@dataclass(frozen=True)
class AltNames:
    """Subject alternative names, normalized like kubeadm: DNS names sorted and unique, IPs unique in order."""

    dns: tuple[str, ...] = ()
    ips: tuple[IPAddress, ...] = ()

    def normalized(self) -> AltNames:
        seen: list[IPAddress] = []
        for ip in self.ips:
            if ip not in seen:
                seen.append(ip)
        return AltNames(tuple(sorted(set(self.dns))), tuple(seen))

    def missing_from(self, have: AltNames) -> AltNames:
        return AltNames(tuple(d for d in self.dns if d not in have.dns),
                        tuple(i for i in self.ips if i not in have.ips))

    def __bool__(self) -> bool:
        return bool(self.dns or self.ips)

    def describe(self) -> str:
        """kubeadm's wording: DNS names [a b] and IPs [1.2.3.4 ::1] (Go's slice formatting)."""
        return f"DNS names [{' '.join(self.dns)}] and IPs [{' '.join(str(i) for i in self.ips)}]"

    def general_names(self) -> list[x509.GeneralName]:
        return [*(x509.DNSName(d) for d in self.dns), *(x509.IPAddress(i) for i in self.ips)]


# --- time ---------------------------------------------------------------------------------

def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def not_before(cert: x509.Certificate) -> datetime:
    # not_valid_before_utc appeared in cryptography 42; Debian 12 ships 38 (naive UTC only).
    t = getattr(cert, "not_valid_before_utc", None)
    return t if t is not None else cert.not_valid_before.replace(tzinfo=timezone.utc)


def not_after(cert: x509.Certificate) -> datetime:
    t = getattr(cert, "not_valid_after_utc", None)
    return t if t is not None else cert.not_valid_after.replace(tzinfo=timezone.utc)


# --- PEM ----------------------------------------------------------------------------------

def encode_cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def load_cert_chain_pem(data: bytes | None, where: str) -> list[x509.Certificate]:
    """Every certificate in a PEM file, leaf first. Errors name the file, never quote it."""
    if not data or not data.strip():
        raise ValidationError(f"{where}: the file is empty; expected a PEM certificate")
    try:
        certs = x509.load_pem_x509_certificates(data) if hasattr(x509, "load_pem_x509_certificates") \
            else _load_pems_compat(data)
    except ValueError:
        raise ValidationError(f"{where}: not a PEM certificate (expected -----BEGIN CERTIFICATE-----)") from None
    if not certs:
        raise ValidationError(f"{where}: no certificate found; expected a PEM certificate")
    return certs


def _load_pems_compat(data: bytes) -> list[x509.Certificate]:
    marker = b"-----END CERTIFICATE-----"
    chunks = [c + marker for c in data.split(marker) if b"-----BEGIN CERTIFICATE-----" in c]
    return [x509.load_pem_x509_certificate(c) for c in chunks]


def load_cert_pem(data: bytes | None, where: str) -> x509.Certificate:
    """The first certificate of a PEM file (the sender's own comes first, RFC 4346 7.4.2)."""
    return load_cert_chain_pem(data, where)[0]


def encode_csr_pem(csr: x509.CertificateSigningRequest) -> bytes:
    return csr.public_bytes(serialization.Encoding.PEM)


def load_csr_pem(data: bytes | None, where: str) -> x509.CertificateSigningRequest:
    if not data or not data.strip():
        raise ValidationError(f"{where}: the file is empty; expected a PEM certificate request")
    try:
        return x509.load_pem_x509_csr(data)
    except ValueError:
        raise ValidationError(
            f"{where}: not a PEM certificate request (expected -----BEGIN CERTIFICATE REQUEST-----)"
        ) from None


# --- creating -----------------------------------------------------------------------------

def _name(common_name: str, organizations: Iterable[str] = ()) -> x509.Name:
    if not common_name:
        raise ValidationError("a certificate needs a common name")
    # Go's pkix.Name puts O before CN; openssl shows "O = ..., CN = ...".
    return x509.Name([*(x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations),
                      _common_name(common_name)])


# cryptography warns on every long CN it reads or builds; a node name of up to 253
# characters is valid here (see _common_name), so that warning would only be noise on stderr.
warnings.filterwarnings("ignore", message="Attribute's length must be >= 1 and <= 64", category=UserWarning)


def _common_name(value: str) -> x509.NameAttribute:
    """The CN, also beyond RFC 5280's 64-character bound, as kubeadm (Go) issues it.

    A node name may be any DNS name up to 253 characters, and kubeadm puts it in the etcd
    certificates' CN and `system:node:<name>` in the kubelet's: a 53-character FQDN already
    exceeds 64 there. Go's x509 does not enforce the bound, and neither do the API server,
    etcd or the kubelet when they read a certificate. cryptography >= 43 checks it in
    NameAttribute unless told not to (`_validate=False`); older releases do not check it.
    """
    if len(value) <= 64:
        return x509.NameAttribute(NameOID.COMMON_NAME, value)
    try:
        return x509.NameAttribute(NameOID.COMMON_NAME, value, _validate=False)  # type: ignore[call-arg]
    except TypeError:  # cryptography < 43: no such keyword, and no length check to skip
        return x509.NameAttribute(NameOID.COMMON_NAME, value)


def _hash_for(signer: PrivateKey) -> hashes.HashAlgorithm:
    # Go's x509 default per signing key: SHA-256, except SHA-384 for P-384 (and SHA-512 for P-521).
    if isinstance(signer, ec.EllipticCurvePrivateKey):
        return {384: hashes.SHA384(), 521: hashes.SHA512()}.get(signer.curve.key_size, hashes.SHA256())
    return hashes.SHA256()


def _serial() -> int:
    return secrets.randbelow(2**63 - 2) + 1  # uniform in [1, MaxInt64), as kubeadm


def _key_usage(is_ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                         data_encipherment=False, key_agreement=False, key_cert_sign=is_ca,
                         crl_sign=False, encipher_only=False, decipher_only=False)


def new_self_signed_ca(key: PrivateKey, common_name: str, validity: timedelta, *,
                       organizations: Iterable[str] = (), now: datetime | None = None) -> x509.Certificate:
    now = now or utcnow()
    name = _name(common_name, organizations)
    b = (x509.CertificateBuilder()
         .subject_name(name).issuer_name(name).public_key(key.public_key())
         .serial_number(_serial())
         .not_valid_before(now - CERT_BACKDATE).not_valid_after(now + validity)
         .add_extension(_key_usage(True), critical=True)
         .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
         .add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), critical=False))
    return b.sign(key, _hash_for(key))


def sign_certificate(public_key: PublicKey, ca_cert: x509.Certificate, ca_key: PrivateKey, *,
                     common_name: str, organizations: Iterable[str] = (),
                     usages: Iterable[x509.ObjectIdentifier] = (), alt_names: AltNames = AltNames(),
                     validity: timedelta, is_ca: bool = False, now: datetime | None = None) -> x509.Certificate:
    """A certificate for `public_key` signed by the CA (kubeadm's pkiutil.NewSignedCert)."""
    usages = tuple(usages)
    if not is_ca and not usages:
        raise ValidationError(f"certificate {common_name!r}: at least one extended key usage is needed")
    if not same_public_key(ca_key, ca_cert.public_key()):
        raise ValidationError("the CA private key does not belong to the CA certificate")
    now = now or utcnow()
    alt = alt_names.normalized()
    b = (x509.CertificateBuilder()
         .subject_name(_name(common_name, organizations)).issuer_name(ca_cert.subject)
         .public_key(public_key).serial_number(_serial())
         .not_valid_before(not_before(ca_cert)).not_valid_after(now + validity)
         .add_extension(_key_usage(is_ca), critical=True))
    if usages:
        b = b.add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
    b = b.add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    if is_ca:
        b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    try:
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
    except x509.ExtensionNotFound:
        pass  # Go only sets the AKI when the parent has an SKI
    if alt:
        b = b.add_extension(x509.SubjectAlternativeName(alt.general_names()), critical=False)
    return b.sign(ca_key, _hash_for(ca_key))


def new_csr(key: PrivateKey, common_name: str, *, organizations: Iterable[str] = (),
            alt_names: AltNames = AltNames()) -> x509.CertificateSigningRequest:
    b = x509.CertificateSigningRequestBuilder().subject_name(_name(common_name, organizations))
    alt = alt_names.normalized()
    if alt:
        b = b.add_extension(x509.SubjectAlternativeName(alt.general_names()), critical=False)
    return b.sign(key, _hash_for(key))


def sign_csr(csr: x509.CertificateSigningRequest, ca_cert: x509.Certificate, ca_key: PrivateKey, *,
             usages: Iterable[x509.ObjectIdentifier], validity: timedelta,
             now: datetime | None = None) -> x509.Certificate:
    """Sign a CSR with its own subject (CN, O) and SANs; its self-signature must verify."""
    if not csr.is_signature_valid:
        raise ValidationError("certificate request: its signature does not verify")
    cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not cns:
        raise ValidationError("certificate request: the subject has no common name")
    orgs = [str(a.value) for a in csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        alt = AltNames(tuple(san.get_values_for_type(x509.DNSName)), tuple(san.get_values_for_type(x509.IPAddress)))
    except x509.ExtensionNotFound:
        alt = AltNames()
    return sign_certificate(csr.public_key(), ca_cert, ca_key, common_name=str(cns[0].value),
                            organizations=orgs, usages=usages, alt_names=alt, validity=validity, now=now)


# --- inspecting ---------------------------------------------------------------------------

def common_name(cert: x509.Certificate) -> str:
    a = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(a[0].value) if a else ""


def organizations(cert: x509.Certificate) -> tuple[str, ...]:
    return tuple(str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))


def alt_names_of(cert: x509.Certificate) -> AltNames:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return AltNames()
    return AltNames(tuple(san.get_values_for_type(x509.DNSName)), tuple(san.get_values_for_type(x509.IPAddress)))


def ext_key_usages_of(cert: x509.Certificate) -> frozenset[x509.ObjectIdentifier]:
    try:
        return frozenset(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return frozenset()


def is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def can_sign_certs(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign)
    except x509.ExtensionNotFound:
        return True  # no KeyUsage extension: unrestricted


def signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True when `issuer`'s key made `cert`'s signature and the names chain."""
    if cert.issuer != issuer.subject:
        return False
    verify = getattr(cert, "verify_directly_issued_by", None)  # cryptography >= 40
    if verify is not None:
        try:
            verify(issuer)
            return True
        except (ValueError, TypeError, InvalidSignature):
            return False
    pub = issuer.public_key()
    try:
        if isinstance(pub, rsa.RSAPublicKey):
            pub.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm)
        elif isinstance(pub, ec.EllipticCurvePublicKey):
            pub.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
        else:
            return False
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def chain_problem(cert: x509.Certificate, intermediates: list[x509.Certificate],
                  root: x509.Certificate) -> str | None:
    """None when cert chains to root, directly or through the intermediates that follow it in its file."""
    current = cert
    for inter in intermediates:
        if signed_by(current, root):
            return None
        if not signed_by(current, inter):
            break
        current = inter
    if signed_by(current, root):
        return None
    return f"it is not signed by the CA {common_name(root)!r} (issuer {current.issuer.rfc4514_string()!r})"


def expiry_problem(cert: x509.Certificate, now: datetime | None = None) -> str | None:
    now = now or utcnow()
    if now > not_after(cert):
        return f"it expired on {not_after(cert):%Y-%m-%d %H:%M:%S} UTC"
    return None


def not_yet_valid_problem(cert: x509.Certificate, now: datetime | None = None) -> str | None:
    now = now or utcnow()
    if now < not_before(cert):
        return f"it is not valid before {not_before(cert):%Y-%m-%d %H:%M:%S} UTC (is the clock right?)"
    return None


def key_matches(cert: x509.Certificate, key: PrivateKey) -> bool:
    return same_public_key(cert.public_key(), key)
