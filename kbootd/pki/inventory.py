"""What `certs check-expiration` / `certs renew` and the supervisor look at, declared as data.

kubeadm's renewal handlers (phases/certs/renewal/manager.go): eleven leaf certificates
with kubeadm's names, long names (its `renew` output) and CAs, in kubeadm's order, and
the three CAs. kubelet.conf is not among them: the kubelet rotates its own client
certificate. `components` are the static Pods that read the file (restarted after a
renewal, in RESTART_ORDER). Light: no `cryptography`, so the lean supervisor uses it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from kbootd import kubeconfigfile
from kbootd.errors import ValidationError
from kbootd.hostio import Host
from kbootd.pki import derdates

# kubeadm's CertificateValidityPeriod, the renewal's default when no configuration says otherwise.
DEFAULT_VALIDITY_SECONDS = 8760 * 3600.0
ETCD, APISERVER, CONTROLLER_MANAGER, SCHEDULER = "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"
# One component at a time, the API server's backend first, its clients last.
RESTART_ORDER = (ETCD, APISERVER, CONTROLLER_MANAGER, SCHEDULER)


@dataclass(frozen=True)
class CA:
    name: str
    base: str
    local_etcd_only: bool = False


@dataclass(frozen=True)
class Leaf:
    name: str  # kubeadm's name (`kbootd certs renew <name>`)
    long_name: str  # kubeadm's wording: "<long name> renewed"
    ca: str
    base: str | None = None  # a certificate and key under the certificates dir
    kubeconfig: str | None = None  # or the client certificate of this kubeconfig file
    components: tuple[str, ...] = ()
    local_etcd_only: bool = False


CAS = (CA("ca", "ca"), CA("etcd-ca", "etcd/ca", local_etcd_only=True), CA("front-proxy-ca", "front-proxy-ca"))
CA_BY_NAME = {c.name: c for c in CAS}

LEAVES = (
    Leaf("admin.conf", "certificate embedded in the kubeconfig file for the admin to use and for kubeadm itself",
         "ca", kubeconfig="admin.conf"),
    Leaf("apiserver", "certificate for serving the Kubernetes API", "ca", base="apiserver", components=(APISERVER,)),
    Leaf("apiserver-etcd-client", "certificate the apiserver uses to access etcd", "etcd-ca",
         base="apiserver-etcd-client", components=(APISERVER,), local_etcd_only=True),
    Leaf("apiserver-kubelet-client", "certificate for the API server to connect to kubelet", "ca",
         base="apiserver-kubelet-client", components=(APISERVER,)),
    Leaf("controller-manager.conf", "certificate embedded in the kubeconfig file for the controller manager to use",
         "ca", kubeconfig="controller-manager.conf", components=(CONTROLLER_MANAGER,)),
    Leaf("etcd-healthcheck-client", "certificate for liveness probes to healthcheck etcd", "etcd-ca",
         base="etcd/healthcheck-client", components=(ETCD,), local_etcd_only=True),
    Leaf("etcd-peer", "certificate for etcd nodes to communicate with each other", "etcd-ca",
         base="etcd/peer", components=(ETCD,), local_etcd_only=True),
    Leaf("etcd-server", "certificate for serving etcd", "etcd-ca", base="etcd/server", components=(ETCD,),
         local_etcd_only=True),
    Leaf("front-proxy-client", "certificate for the front proxy client", "front-proxy-ca",
         base="front-proxy-client", components=(APISERVER,)),
    Leaf("scheduler.conf", "certificate embedded in the kubeconfig file for the scheduler manager to use", "ca",
         kubeconfig="scheduler.conf", components=(SCHEDULER,)),
    Leaf("super-admin.conf", "certificate embedded in the kubeconfig file for the super-admin", "ca",
         kubeconfig="super-admin.conf"),
)
LEAF_BY_NAME = {leaf.name: leaf for leaf in LEAVES}


@dataclass(frozen=True)
class Layout:
    """Where this control plane keeps its PKI. local_etcd None: decide from disk (etcd/ca.crt there)."""

    host: Host
    cert_dir: str = "/etc/kubernetes/pki"
    kubeconfig_dir: str = "/etc/kubernetes"
    local_etcd: bool | None = None

    def crt(self, base: str) -> str:
        return f"{self.cert_dir}/{base}.crt"

    def key(self, base: str) -> str:
        return f"{self.cert_dir}/{base}.key"

    def kubeconfig(self, name: str) -> str:
        return f"{self.kubeconfig_dir}/{name}"

    def has_local_etcd(self) -> bool:
        if self.local_etcd is not None:
            return self.local_etcd
        return self.host.exists(self.crt(CA_BY_NAME["etcd-ca"].base))

    def leaves(self) -> tuple[Leaf, ...]:
        local = self.has_local_etcd()
        return tuple(leaf for leaf in LEAVES if local or not leaf.local_etcd_only)

    def cas(self) -> tuple[CA, ...]:
        local = self.has_local_etcd()
        return tuple(ca for ca in CAS if local or not ca.local_etcd_only)

    def external(self, ca: str) -> bool:
        """kubeadm's "externally managed": the CA's certificate is there, its key is not."""
        base = CA_BY_NAME[ca].base
        return self.host.exists(self.crt(base)) and not self.host.exists(self.key(base))

    def where(self, leaf: Leaf) -> str:
        return self.crt(leaf.base) if leaf.base else self.kubeconfig(leaf.kubeconfig or "")

    def leaf_pem(self, leaf: Leaf) -> bytes | None:
        """The leaf's certificate PEM, None when its file is missing (or holds no client certificate)."""
        if leaf.base:
            return self.host.read_bytes(self.crt(leaf.base))
        path = self.kubeconfig(leaf.kubeconfig or "")
        data = self.host.read_bytes(path)
        if data is None:
            return None
        kc = kubeconfigfile.parse(data, path)
        if kc.client_cert_pem is not None:
            return kc.client_cert_pem
        if kc.client_cert_file:
            return self.host.read_bytes(kubeconfigfile.resolve_ref(kc.client_cert_file, path))
        return None


@dataclass(frozen=True)
class Expiry:
    name: str
    ca: str | None  # None for a CA
    missing: bool
    external: bool
    not_after: datetime | None = None
    where: str = ""

    def residual_seconds(self, now: datetime) -> int:
        """Go's int64(time.Until(t) / time.Second): truncated toward zero."""
        if self.not_after is None:
            return 0
        return int((self.not_after - now).total_seconds())


def leaf_expiry(layout: Layout, leaf: Leaf) -> Expiry:
    pem = layout.leaf_pem(leaf)
    where = layout.where(leaf)
    if pem is None:
        return Expiry(leaf.name, leaf.ca, True, False, where=where)
    return Expiry(leaf.name, leaf.ca, False, layout.external(leaf.ca), derdates.not_after(pem, where), where)


def ca_expiry(layout: Layout, ca: CA) -> Expiry:
    path = layout.crt(ca.base)
    pem = layout.host.read_bytes(path)
    if pem is None:
        return Expiry(ca.name, None, True, False, where=path)
    return Expiry(ca.name, None, False, layout.external(ca.name), derdates.not_after(pem, path), path)


def survey(layout: Layout) -> tuple[list[Expiry], list[Expiry]]:
    """(leaves, CAs) as check-expiration lists them."""
    return [leaf_expiry(layout, leaf) for leaf in layout.leaves()], [ca_expiry(layout, ca) for ca in layout.cas()]


def leaf(name: str) -> Leaf:
    try:
        return LEAF_BY_NAME[name]
    except KeyError:
        raise ValidationError(
            f"unknown certificate {name!r}; expected all or one of {', '.join(LEAF_BY_NAME)}") from None
