"""Certificates for the test server: a cluster CA, its serving cert, client certs and kubeconfigs.

Either generated (shaped like kubeadm's: CA `CN=kubernetes` valid 10 years, leaf certs 1 year,
notBefore backdated 5 minutes) or loaded from a kubeadm-layout directory (ca.crt/ca.key,
apiserver.crt/apiserver.key), e.g. the one kbootd's init wrote.
"""

from __future__ import annotations

import base64
import ipaddress
import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

BACKDATE = timedelta(minutes=5)
LEAF_VALIDITY = timedelta(days=365)
CA_VALIDITY = timedelta(days=3650)
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def new_key(kind: str = "ecdsa") -> PrivateKey:
    # ECDSA keeps the tests fast; "rsa" gives RSA-2048, kubeadm's default.
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: PrivateKey) -> bytes:
    fmt = serialization.PrivateFormat.TraditionalOpenSSL
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def subject_of(cert: x509.Certificate | x509.CertificateSigningRequest) -> tuple[str, list[str]]:
    """(CN, [O...]) the way the apiserver's x509 authenticator maps a certificate to a user."""
    cn = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    orgs = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    return (str(cn[0]) if cn else ""), [str(o) for o in orgs]


def _name(cn: str, orgs: tuple[str, ...] | list[str] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    return x509.Name(attrs + [x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@dataclass
class Issued:
    cert: x509.Certificate
    key: PrivateKey

    @property
    def cert_pem(self) -> bytes:
        return cert_pem(self.cert)

    @property
    def key_pem(self) -> bytes:
        return key_pem(self.key)


class CertificateAuthority:
    def __init__(self, cert: x509.Certificate, key: PrivateKey | None) -> None:
        self.cert = cert
        self.key = key  # None when only ca.crt was available: no signing then

    @classmethod
    def generate(cls, cn: str = "kubernetes", *, key_kind: str = "rsa",
                 now: datetime | None = None) -> CertificateAuthority:
        key = new_key(key_kind)
        now = now or datetime.now(timezone.utc)
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE).not_valid_after(now + CA_VALIDITY)
            .add_extension(x509.KeyUsage(True, False, True, False, False, True, False, False, False), critical=True)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(ski, critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    @classmethod
    def load(cls, cert_file: Path, key_file: Path | None) -> CertificateAuthority:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        key = None
        if key_file is not None and key_file.exists():
            key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)  # type: ignore[assignment]
        return cls(cert, key)

    @property
    def pem(self) -> bytes:
        return cert_pem(self.cert)

    def _builder(self, subject: x509.Name, public_key: Any, not_before: datetime,
                 not_after: datetime) -> x509.CertificateBuilder:
        not_after = min(not_after, cert_not_after(self.cert))  # cryptography 38 (Debian 12) lacks *_utc
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(self.cert.public_key())  # type: ignore[arg-type]
        return (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(aki, critical=False)
        )

    def _sign(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        if self.key is None:
            raise RuntimeError("the CA key is not available, so nothing can be signed")
        return builder.sign(self.key, hashes.SHA256())

    def issue_client(self, cn: str, orgs: tuple[str, ...] | list[str] = (), *,
                     now: datetime | None = None, validity: timedelta = LEAF_VALIDITY) -> Issued:
        key = new_key()
        now = now or datetime.now(timezone.utc)
        b = self._builder(_name(cn, orgs), key.public_key(), now - BACKDATE, now + validity)
        b = b.add_extension(_key_usage(digital_signature=True, key_encipherment=False), critical=True)
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        return Issued(self._sign(b), key)

    def issue_serving(self, hosts: list[str], cn: str = "kube-apiserver", *,
                      now: datetime | None = None) -> Issued:
        key = new_key()
        now = now or datetime.now(timezone.utc)
        sans: list[x509.GeneralName] = []
        for h in dict.fromkeys(hosts):
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(h)))
            except ValueError:
                sans.append(x509.DNSName(h))
        b = self._builder(_name(cn), key.public_key(), now - BACKDATE, now + LEAF_VALIDITY)
        b = b.add_extension(_key_usage(digital_signature=True, key_encipherment=True), critical=True)
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return Issued(self._sign(b), key)

    def sign_request(self, csr: x509.CertificateSigningRequest, usages: list[str], *, now: datetime,
                     validity: timedelta = LEAF_VALIDITY) -> x509.Certificate:
        """Issue a certificate for a CSR as the controller-manager's csrsigning controller does:
        subject and SANs from the request, key usages from spec.usages, notBefore backdated 5 min."""
        not_before = now - BACKDATE
        b = self._builder(csr.subject, csr.public_key(), not_before, not_before + validity)
        b = b.add_extension(_key_usage(digital_signature="digital signature" in usages,
                                       key_encipherment="key encipherment" in usages), critical=True)
        ekus = [oid for name, oid in (("client auth", ExtendedKeyUsageOID.CLIENT_AUTH),
                                      ("server auth", ExtendedKeyUsageOID.SERVER_AUTH)) if name in usages]
        if ekus:
            b = b.add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
        try:
            san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            b = b.add_extension(san.value, critical=False)
        except x509.ExtensionNotFound:
            pass
        return self._sign(b)


def _key_usage(*, digital_signature: bool, key_encipherment: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature, False, key_encipherment, False, False, False, False, False, False)


def make_csr(cn: str, orgs: tuple[str, ...] | list[str] = (), key: PrivateKey | None = None) -> tuple[bytes, PrivateKey]:
    """A PEM CSR like the kubelet's (handy in tests): ECDSA P-256, subject O=..., CN=..."""
    key = key or new_key()
    csr = x509.CertificateSigningRequestBuilder().subject_name(_name(cn, orgs)).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM), key


def kubeconfig(server: str, ca_pem: bytes, user: str, *, cert: bytes | None = None, key: bytes | None = None,
               token: str | None = None, cluster: str = "kubernetes") -> dict[str, Any]:
    """A kubeconfig laid out like kubeadm's admin.conf, with everything embedded."""
    creds: dict[str, Any] = {}
    if cert is not None and key is not None:
        creds["client-certificate-data"] = base64.b64encode(cert).decode()
        creds["client-key-data"] = base64.b64encode(key).decode()
    if token is not None:
        creds["token"] = token
    context = f"{user}@{cluster}"
    return {
        "apiVersion": "v1",
        "clusters": [{"cluster": {"certificate-authority-data": base64.b64encode(ca_pem).decode(), "server": server},
                      "name": cluster}],
        "contexts": [{"context": {"cluster": cluster, "user": user}, "name": context}],
        "current-context": context,
        "kind": "Config",
        "preferences": {},
        "users": [{"name": user, "user": creds}],
    }


def write_kubeconfig(path: Path, config: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(config, f, default_flow_style=False, sort_keys=False)
    return path

def cert_not_after(cert: x509.Certificate) -> datetime:
    from kbootd.pki.certs import not_after

    return not_after(cert)
