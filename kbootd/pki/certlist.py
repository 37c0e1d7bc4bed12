"""The certificates `init` creates, declared as data (kubeadm's phases/certs/certlist.go).

Order matters: each CA comes first, followed by the leaves it signs; the certs phase's
children run in this order. Subjects, organizations and usages are kubeadm v1.32's
(checked against `openssl x509 -text` of real kubeadm certificates in the fixtures).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from cryptography.x509 import ObjectIdentifier

from kbootd import node
from kbootd.config import validate as v
from kbootd.errors import ValidationError
from kbootd.pki.certs import CLIENT_AUTH, SERVER_AUTH, AltNames, IPAddress

if TYPE_CHECKING:
    from kbootd.context import Context

NODE_NAME = "{node}"  # a `cn` that stands for the node's name (etcd server and peer)
CLUSTER_ADMINS = "kubeadm:cluster-admins"  # kubeadm's ClusterAdminsGroupAndClusterRoleBinding
# The service-account signing key pair: sa.key and sa.pub, no certificate.
SA_NAME = SA_BASE = "sa"
SA_SUMMARY = "Generate a private key for signing service account tokens along with its public key"


@dataclass(frozen=True)
class CertSpec:
    name: str  # phase name and kubeadm's Name
    base: str  # file base name under the certificates dir (base.crt, base.key)
    summary: str
    ca: str | None = None  # name of the signing CA's spec; None for a CA
    cn: str = ""
    orgs: tuple[str, ...] = ()
    usages: tuple[ObjectIdentifier, ...] = ()
    sans: Callable[[Context], AltNames] | None = None
    local_etcd_only: bool = False

    @property
    def is_ca(self) -> bool:
        return self.ca is None

    def common_name(self, ctx: Context) -> str:
        return ctx.data.node_name if self.cn == NODE_NAME else self.cn

    def alt_names(self, ctx: Context) -> AltNames:
        return self.sans(ctx).normalized() if self.sans else AltNames()

    def validity(self, ctx: Context) -> timedelta:
        c = ctx.cfg.cluster
        return timedelta(seconds=c.ca_validity if self.is_ca else c.cert_validity)


# --- SAN builders (kubeadm pkiutil.GetAPIServerAltNames / GetEtcdAltNames) ------------------

def _advertise_ip(ctx: Context) -> IPAddress:
    addr = ctx.data.advertise_address
    try:
        return ipaddress.ip_address(addr)
    except ValueError:
        raise ValidationError(
            f"localAPIEndpoint.advertiseAddress: {addr!r} is not an IP address; the serving "
            "certificates need the node's IP"
        ) from None


def _extra(alt: AltNames, sans: tuple[str, ...], where: str) -> AltNames:
    dns, ips = list(alt.dns), list(alt.ips)
    for s in sans:
        value = v.san(s, where)
        if v.is_ip(value):
            ips.append(ipaddress.ip_address(value))
        else:
            dns.append(value)
    return AltNames(tuple(dns), tuple(ips))


def apiserver_sans(ctx: Context) -> AltNames:
    c = ctx.cfg.cluster
    dns = [ctx.data.node_name, "kubernetes", "kubernetes.default", "kubernetes.default.svc",
           f"kubernetes.default.svc.{c.networking.dns_domain}"]
    ips: list[IPAddress] = [ipaddress.ip_address(v.service_ip(c.networking.service_subnet, 1)),
                            _advertise_ip(ctx)]
    if c.control_plane_endpoint:
        host = node.endpoint_host(c.control_plane_endpoint)
        if v.is_ip(host):
            ips.append(ipaddress.ip_address(host))
        else:
            dns.append(host)
    return _extra(AltNames(tuple(dns), tuple(ips)), c.api_server_cert_sans, "apiServer.certSANs")


def _etcd_base(ctx: Context) -> AltNames:
    return AltNames((ctx.data.node_name, "localhost"),
                    (_advertise_ip(ctx), ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")))


def etcd_server_sans(ctx: Context) -> AltNames:
    local = ctx.cfg.cluster.etcd_local
    return _extra(_etcd_base(ctx), local.server_cert_sans if local else (), "etcd.local.serverCertSANs")


def etcd_peer_sans(ctx: Context) -> AltNames:
    local = ctx.cfg.cluster.etcd_local
    return _extra(_etcd_base(ctx), local.peer_cert_sans if local else (), "etcd.local.peerCertSANs")


# --- the table ------------------------------------------------------------------------------

CA = CertSpec("ca", "ca", "Generate the self-signed Kubernetes CA to provision identities for other Kubernetes components",
              cn="kubernetes")
APISERVER = CertSpec("apiserver", "apiserver", "Generate the certificate for serving the Kubernetes API",
                     ca="ca", cn="kube-apiserver", usages=(SERVER_AUTH,), sans=apiserver_sans)
APISERVER_KUBELET_CLIENT = CertSpec(
    "apiserver-kubelet-client", "apiserver-kubelet-client",
    "Generate the certificate for the API server to connect to kubelet",
    ca="ca", cn="kube-apiserver-kubelet-client", orgs=(CLUSTER_ADMINS,), usages=(CLIENT_AUTH,))
FRONT_PROXY_CA = CertSpec("front-proxy-ca", "front-proxy-ca",
                          "Generate the self-signed CA to provision identities for front proxy", cn="front-proxy-ca")
FRONT_PROXY_CLIENT = CertSpec("front-proxy-client", "front-proxy-client",
                              "Generate the certificate for the front proxy client",
                              ca="front-proxy-ca", cn="front-proxy-client", usages=(CLIENT_AUTH,))
ETCD_CA = CertSpec("etcd-ca", "etcd/ca", "Generate the self-signed CA to provision identities for etcd",
                   cn="etcd-ca", local_etcd_only=True)
# etcd wants client auth on its serving certs too (etcd-io/etcd#9785), hence both usages.
ETCD_SERVER = CertSpec("etcd-server", "etcd/server", "Generate the certificate for serving etcd",
                       ca="etcd-ca", cn=NODE_NAME, usages=(SERVER_AUTH, CLIENT_AUTH), sans=etcd_server_sans,
                       local_etcd_only=True)
ETCD_PEER = CertSpec("etcd-peer", "etcd/peer", "Generate the certificate for etcd nodes to communicate with each other",
                     ca="etcd-ca", cn=NODE_NAME, usages=(SERVER_AUTH, CLIENT_AUTH), sans=etcd_peer_sans,
                     local_etcd_only=True)
ETCD_HEALTHCHECK_CLIENT = CertSpec(
    "etcd-healthcheck-client", "etcd/healthcheck-client",
    "Generate the certificate for liveness probes to healthcheck etcd",
    ca="etcd-ca", cn="kube-etcd-healthcheck-client", usages=(CLIENT_AUTH,), local_etcd_only=True)
APISERVER_ETCD_CLIENT = CertSpec(
    "apiserver-etcd-client", "apiserver-etcd-client", "Generate the certificate the apiserver uses to access etcd",
    ca="etcd-ca", cn="kube-apiserver-etcd-client", usages=(CLIENT_AUTH,), local_etcd_only=True)

CERTS: tuple[CertSpec, ...] = (
    CA, APISERVER, APISERVER_KUBELET_CLIENT,
    FRONT_PROXY_CA, FRONT_PROXY_CLIENT,
    ETCD_CA, ETCD_SERVER, ETCD_PEER, ETCD_HEALTHCHECK_CLIENT, APISERVER_ETCD_CLIENT,
)
BY_NAME: dict[str, CertSpec] = {c.name: c for c in CERTS}


def cert_list(ctx: Context) -> tuple[CertSpec, ...]:
    """The certificates this configuration needs: the etcd ones only with a local etcd."""
    local = ctx.cfg.cluster.etcd_local is not None
    return tuple(c for c in CERTS if local or not c.local_etcd_only)


def leaves_of(ctx: Context, ca: CertSpec) -> tuple[CertSpec, ...]:
    return tuple(c for c in cert_list(ctx) if c.ca == ca.name)


def spec(name: str) -> CertSpec:
    return BY_NAME[name]
