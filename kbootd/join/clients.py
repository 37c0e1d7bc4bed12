"""API clients join builds from what discovery found (all traffic goes through kbootd.apiclient)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kbootd import apiclient
from kbootd.errors import ValidationError
from kbootd.join.discovery import DiscoveredCluster
from kbootd.kubeconfig import build_kubeconfig

BOOTSTRAP_USER = "tls-bootstrap-token-user"  # kubeadm's discovery.TokenUser
CLUSTER_NAME = "kubernetes"  # kubeadm's default clusterName; the kubelet never looks at it


@dataclass(frozen=True)
class BootstrapCredentials:
    """What the kubelet (and join's own reads) authenticate with until the node has its certificate."""

    token: str | None = field(default=None, repr=False)
    cert_pem: bytes | None = field(default=None, repr=False)
    key_pem: bytes | None = field(default=None, repr=False)

    @property
    def token_id(self) -> str | None:
        return self.token.split(".", 1)[0] if self.token else None


def bootstrap_credentials(ctx: Any, cluster: DiscoveredCluster) -> BootstrapCredentials:
    """--tls-bootstrap-token, else --token/--discovery-token, else a discovery file's own credentials."""
    cfg = ctx.join
    tok = cfg.tls_bootstrap_token or cfg.discovery_token
    if tok is not None:
        return BootstrapCredentials(token=tok.full)
    if cluster.client_cert_pem and cluster.client_key_pem:
        return BootstrapCredentials(cert_pem=cluster.client_cert_pem, key_pem=cluster.client_key_pem)
    if cluster.token:
        return BootstrapCredentials(token=cluster.token)
    raise ValidationError("no TLS bootstrap credentials: give --tls-bootstrap-token (or --token), or a "
                          "discovery file whose user has a token or a client certificate")


def bootstrap_kubeconfig(cluster: DiscoveredCluster, creds: BootstrapCredentials) -> str:
    """bootstrap-kubelet.conf, as kubeadm writes it (kubeconfigutil.CreateWithToken / WithCerts)."""

    return build_kubeconfig(cluster.server, cluster.ca_pem, CLUSTER_NAME, BOOTSTRAP_USER,
                            client_cert_pem=creds.cert_pem, client_key_pem=creds.key_pem, token=creds.token)


def client(server: str, ca_pem: bytes, creds: BootstrapCredentials, *, timeout: float,
           path: str = "bootstrap") -> Any:
    """A kbootd.apiclient.Client for the discovered server with these credentials."""

    kc = apiclient.KubeConfig(path=path, server=server, cluster={}, ca_pem=ca_pem, cert_pem=creds.cert_pem,
                              key_pem=creds.key_pem, token=creds.token)
    return apiclient.Client(apiclient.APITransport(kc), timeout=timeout)
