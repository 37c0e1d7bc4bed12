"""The one typed model of everything init and join need, with kubeadm's defaults.

Every loader (flags, v1alpha1, v1beta4, the daemon's documents) produces these frozen
objects; every phase reads them. Secrets live only in BootstrapToken values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kbootd.config.validate import FEATURE_GATES
from kbootd.paths import DEFAULT_CERT_DIR
from kbootd.token import DEFAULT_GROUPS, DEFAULT_TTL_SECONDS, DEFAULT_USAGES, BootstrapToken
from kbootd.version import DEFAULT_KUBERNETES_VERSION

# Structured extra args (v1beta4): (name, value) pairs; duplicates allowed, order kept.
ExtraArgs = tuple[tuple[str, str], ...]

DEFAULT_SERVICE_SUBNET = "10.96.0.0/12"
DEFAULT_DNS_DOMAIN = "cluster.local"
DEFAULT_BIND_PORT = 6443
DEFAULT_IMAGE_REPOSITORY = "registry.k8s.io"
LEGACY_IMAGE_REPOSITORY = "gcr.io/google_containers"  # the spec's default
DEFAULT_CRI_SOCKET = "unix:///var/run/containerd/containerd.sock"
CONTROL_PLANE_TAINT_KEY = "node-role.kubernetes.io/control-plane"


@dataclass(frozen=True)
class Taint:
    key: str
    effect: str
    value: str = ""


CONTROL_PLANE_TAINT = Taint(CONTROL_PLANE_TAINT_KEY, "NoSchedule")


@dataclass(frozen=True)
class BootstrapTokenSpec:
    token: BootstrapToken | None = None  # None: generated at init
    ttl: float | None = DEFAULT_TTL_SECONDS  # seconds; 0 = never expires; None when `expires` given
    expires: str | None = None  # RFC 3339, overrides ttl
    usages: tuple[str, ...] = DEFAULT_USAGES
    groups: tuple[str, ...] = DEFAULT_GROUPS
    description: str = ""


@dataclass(frozen=True)
class HostPathMount:
    name: str
    host_path: str
    mount_path: str
    read_only: bool = False
    path_type: str = ""


@dataclass(frozen=True)
class Component:
    """A control-plane component's knobs."""

    extra_args: ExtraArgs = ()
    extra_volumes: tuple[HostPathMount, ...] = ()
    extra_envs: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class LocalEtcd:
    data_dir: str = "/var/lib/etcd"
    image_repository: str | None = None
    image_tag: str | None = None
    image: str | None = None  # the spec's full etcd.image override
    extra_args: ExtraArgs = ()
    extra_envs: tuple[tuple[str, str], ...] = ()
    server_cert_sans: tuple[str, ...] = ()
    peer_cert_sans: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExternalEtcd:
    endpoints: tuple[str, ...]
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""


@dataclass(frozen=True)
class Networking:
    service_subnet: str = DEFAULT_SERVICE_SUBNET
    pod_subnet: str | None = None
    dns_domain: str = DEFAULT_DNS_DOMAIN


@dataclass(frozen=True)
class Timeouts:
    """Seconds; the v1beta4 `timeouts` block."""

    control_plane_component_health_check: float = 240
    kubelet_health_check: float = 240
    kubernetes_api_call: float = 60
    etcd_api_call: float = 120
    tls_bootstrap: float = 300
    discovery: float = 300
    upgrade_manifests: float = 300


@dataclass(frozen=True)
class ClusterConfig:
    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION
    cluster_name: str = "kubernetes"
    control_plane_endpoint: str | None = None
    certificates_dir: str = DEFAULT_CERT_DIR
    image_repository: str = DEFAULT_IMAGE_REPOSITORY
    unified_control_plane_image: str | None = None
    etcd_local: LocalEtcd | None = field(default_factory=LocalEtcd)
    etcd_external: ExternalEtcd | None = None
    networking: Networking = field(default_factory=Networking)
    api_server: Component = field(default_factory=Component)
    api_server_cert_sans: tuple[str, ...] = ()
    controller_manager: Component = field(default_factory=Component)
    scheduler: Component = field(default_factory=Component)
    feature_gates: tuple[tuple[str, bool], ...] = ()
    encryption_algorithm: str = "RSA-2048"
    ca_validity: float = 87600 * 3600.0
    cert_validity: float = 8760 * 3600.0
    cloud_provider: str | None = None
    authorization_modes: tuple[str, ...] = ("Node", "RBAC")
    dns_disabled: bool = False
    dns_image_repository: str | None = None
    dns_image_tag: str | None = None
    proxy_disabled: bool = False

    def gate(self, name: str) -> bool:
        return dict(self.feature_gates).get(name, FEATURE_GATES.get(name, False))


@dataclass(frozen=True)
class NodeRegistration:
    name: str | None = None  # None: the host name, lower-cased
    cri_socket: str | None = None  # None: detected
    taints: tuple[Taint, ...] | None = None  # None: the role's default
    kubelet_extra_args: ExtraArgs = ()
    ignore_preflight_errors: tuple[str, ...] = ()
    image_pull_policy: str = "IfNotPresent"


@dataclass(frozen=True)
class InitConfig:
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    advertise_address: str | None = None  # None or 0.0.0.0: the default interface's address
    bind_port: int = DEFAULT_BIND_PORT
    node: NodeRegistration = field(default_factory=NodeRegistration)
    bootstrap_tokens: tuple[BootstrapTokenSpec, ...] = (BootstrapTokenSpec(),)
    skip_phases: tuple[str, ...] = ()
    timeouts: Timeouts = field(default_factory=Timeouts)
    # Extra documents given beside kubeadm's (KubeletConfiguration, KubeProxyConfiguration).
    kubelet_overrides: dict[str, Any] = field(default_factory=dict)
    kube_proxy_overrides: dict[str, Any] = field(default_factory=dict)
    source: str = "defaults"  # where this came from, for messages


@dataclass(frozen=True)
class JoinConfig:
    node: NodeRegistration = field(default_factory=NodeRegistration)
    ca_cert_path: str = f"{DEFAULT_CERT_DIR}/ca.crt"
    discovery_token: BootstrapToken | None = None
    api_server_endpoints: tuple[str, ...] = ()
    ca_cert_hashes: tuple[str, ...] = ()
    unsafe_skip_ca_verification: bool = False
    discovery_file: str | None = None
    tls_bootstrap_token: BootstrapToken | None = None
    skip_phases: tuple[str, ...] = ()
    timeouts: Timeouts = field(default_factory=Timeouts)
    source: str = "defaults"
