"""Renewing a leaf certificate in place (`kbootd certs renew`, and the supervisor's renewal).

Like kubeadm's RenewUsingLocalCA, the certificate on disk is the source of truth: the new
one has its subject (CN and O), every SAN and extended key usage, and is signed by the same
CA for `validity` from now. A CA is never renewed. A CA without its key (External CA mode)
cannot sign: the leaf is reported as kubeadm does ("Detected external ...") and skipped.

One deliberate difference from kubeadm, whose FileRenewer makes a new key pair: the existing
private key is kept. Renewal then changes a single file (the .crt, or the kubeconfig that
embeds certificate and key together), replaced atomically by hostio, so a kill at any
moment leaves either the old or the new certificate beside the key it belongs to, never a
mismatched pair; and kbootd never regenerates an existing key (the project's rule).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509

from kbootd import kubeconfigfile
from kbootd.errors import KbootdError, ValidationError
from kbootd.hostio import Host
from kbootd.kubeconfig import FILE_MODE as KUBECONFIG_MODE
from kbootd.pki import certs as c
from kbootd.pki import keys
from kbootd.pki.files import CERT_MODE
from kbootd.pki.inventory import CA_BY_NAME, DEFAULT_VALIDITY_SECONDS, Layout, Leaf

DEFAULT_VALIDITY = timedelta(seconds=DEFAULT_VALIDITY_SECONDS)

RENEWED, MISSING, EXTERNAL = "renewed", "missing", "external"


@dataclass(frozen=True)
class Outcome:
    leaf: Leaf
    result: str  # renewed | missing | external
    not_after: datetime | None = None

    @property
    def line(self) -> str:
        """kubeadm's line for this outcome."""
        if self.result == MISSING:
            return f"MISSING! {self.leaf.long_name}"
        if self.result == EXTERNAL:
            return f"Detected external {CA_BY_NAME[self.leaf.ca].base}, {self.leaf.long_name} can't be renewed"
        return f"{self.leaf.long_name} renewed"


def load_ca(layout: Layout, name: str) -> tuple[x509.Certificate, keys.PrivateKey]:
    ca = CA_BY_NAME[name]
    cp, kp = layout.crt(ca.base), layout.key(ca.base)
    cert = c.load_cert_pem(layout.host.read_bytes(cp), cp)
    key = keys.load_private_key_pem(layout.host.read_bytes(kp), kp)
    if not c.key_matches(cert, key):
        raise ValidationError(f"{kp}: this private key does not belong to {cp}")
    return cert, key


def _ekus(cert: x509.Certificate) -> list[x509.ObjectIdentifier]:
    try:
        return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return []


def renewed_certificate(old: x509.Certificate, key: keys.PrivateKey, ca_cert: x509.Certificate,
                        ca_key: keys.PrivateKey, validity: timedelta, now: datetime,
                        where: str) -> x509.Certificate:
    """`old` again, for the same key, valid for `validity` from `now`."""
    if not c.key_matches(old, key):
        raise ValidationError(f"{where}: the certificate and its private key do not belong together; "
                              "kbootd does not renew a mismatched pair (fix or remove them)")
    usages = _ekus(old)
    if not usages:
        raise ValidationError(f"{where}: the certificate has no extended key usage; kbootd renews only "
                              "certificates with one (server auth and/or client auth)")
    return c.sign_certificate(old.public_key(), ca_cert, ca_key, common_name=c.common_name(old),
                              organizations=c.organizations(old), usages=usages,
                              alt_names=c.alt_names_of(old), validity=validity, now=now)


def _renew_pair(layout: Layout, leaf: Leaf, validity: timedelta, now: datetime) -> datetime:
    assert leaf.base is not None
    cp, kp = layout.crt(leaf.base), layout.key(leaf.base)
    chain = c.load_cert_chain_pem(layout.host.read_bytes(cp), cp)
    key_pem = layout.host.read_bytes(kp)
    if key_pem is None:
        raise KbootdError(f"{kp}: missing; kbootd renews {cp} only for its existing key")
    key = keys.load_private_key_pem(key_pem, kp)
    ca_cert, ca_key = load_ca(layout, leaf.ca)
    new = renewed_certificate(chain[0], key, ca_cert, ca_key, validity, now, cp)
    layout.host.write_file(cp, c.encode_cert_pem(new), CERT_MODE, show=False)
    return c.not_after(new)


def _renew_kubeconfig(layout: Layout, leaf: Leaf, validity: timedelta, now: datetime) -> datetime:
    path = layout.kubeconfig(leaf.kubeconfig or "")
    data = layout.host.read_bytes(path)
    assert data is not None
    kc = kubeconfigfile.parse(data, path)
    if kc.client_cert_pem is None or kc.client_key_pem is None:
        raise ValidationError(f"{path}: no embedded client certificate and key (client-certificate-data, "
                              "client-key-data); kbootd renews only embedded credentials")
    ca_cert, ca_key = load_ca(layout, leaf.ca)
    if kc.ca_pem is not None and c.load_cert_pem(kc.ca_pem, f"{path}: certificate-authority-data") != ca_cert:
        raise ValidationError(f"{path}: its certificate-authority-data is not {layout.crt(CA_BY_NAME[leaf.ca].base)}; "
                              "renewing would give it a certificate its own CA does not verify")
    old = c.load_cert_pem(kc.client_cert_pem, f"{path}: client certificate")
    key = keys.load_private_key_pem(kc.client_key_pem, f"{path}: client key")
    new = renewed_certificate(old, key, ca_cert, ca_key, validity, now, path)
    text = kubeconfigfile.replace_client_certificate(data, path, c.encode_cert_pem(new))
    layout.host.write_file(path, text, KUBECONFIG_MODE, sensitive=True)
    return c.not_after(new)


def renew(layout: Layout, leaf: Leaf, *, validity: timedelta = DEFAULT_VALIDITY,
          now: datetime | None = None) -> Outcome:
    """Renew one leaf (one atomic write), or say why not (missing, External CA)."""
    now = now or c.utcnow()
    if layout.leaf_pem(leaf) is None:
        return Outcome(leaf, MISSING)
    if layout.external(leaf.ca):
        return Outcome(leaf, EXTERNAL)
    renew_one = _renew_pair if leaf.base else _renew_kubeconfig
    return Outcome(leaf, RENEWED, renew_one(layout, leaf, validity, now))


RESTART_HINT = ("Done renewing certificates. You must restart the kube-apiserver, kube-controller-manager, "
                "kube-scheduler and etcd, so that they can use the new certificates.")


def layout_for(host: Host, cert_dir: str, local_etcd: bool | None = None) -> Layout:
    return Layout(host, cert_dir=cert_dir, kubeconfig_dir=host.paths.kubernetes_dir, local_etcd=local_etcd)
