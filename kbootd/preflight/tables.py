"""Which checks init and join run, with kubeadm's names and severities, in kubeadm's order.

The binaries follow kubeadm's history so a cluster version gets the checks its kubeadm
ran: crictl was mandatory until v1.31 (kubeadm talks CRI itself since), conntrack until
v1.32 (kube-proxy no longer needs it), ip/iptables errors and ethtool/tc warnings until
v1.33; socat and ebtables are gone for every supported version. kbootd keeps a crictl
warning past v1.31: it writes crictl's config (paths.crictl_yaml) for the operator.
bridge-nf-call-iptables is not checked: kubeadm dropped it in v1.30 (CNI plugins own it).
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from kbootd.config.validate import version_minor
from kbootd.node import endpoint_host
from kbootd.preflight import checks as c
from kbootd.preflight.runner import ERROR, WARNING, Check, Severity
from kbootd.version import DEFAULT_KUBERNETES_VERSION, MAX_KUBELET_SKEW

if TYPE_CHECKING:
    from kbootd.context import Context

# Host path not in paths.py: IPv6's counterpart of paths.proc_ip_forward.
PROC_IPV6_FORWARDING = "/proc/sys/net/ipv6/conf/default/forwarding"

KUBE_SCHEDULER_PORT = 10259
KUBE_CONTROLLER_MANAGER_PORT = 10257
KUBELET_PORT = 10250
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
STATIC_PODS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd")
CRICTL_SUGGESTION = "install cri-tools to inspect the container runtime (crictl ps, crictl images)"


def port(n: int) -> Check:
    return Check(f"Port-{n}", c.port_free(n), ERROR)


def file_available(path: str) -> Check:
    return Check(c.path_label("FileAvailable", path), c.file_available(path), ERROR)


def exec_checks(kubernetes_version: str) -> list[Check]:
    minor = version_minor(kubernetes_version)

    def binary(name: str, severity: Severity, suggestion: str = "") -> Check:
        return Check(f"FileExisting-{name}", c.in_path(name, suggestion), severity)

    rows = [binary("crictl", ERROR) if minor < 31 else binary("crictl", WARNING, CRICTL_SUGGESTION)]
    if minor < 32:
        rows.append(binary("conntrack", ERROR))
    if minor < 33:
        rows += [binary("ip", ERROR), binary("iptables", ERROR)]
    rows += [binary("mount", ERROR), binary("nsenter", ERROR)]
    if minor < 33:
        rows += [binary("ethtool", WARNING), binary("tc", WARNING)]
    rows.append(binary("touch", WARNING))
    return rows


def common_checks(ctx: Context, control_plane_version: str | None) -> list[Check]:
    """kubeadm's addCommonChecks: what any node needs, control plane or worker."""
    version = control_plane_version or DEFAULT_KUBERNETES_VERSION
    min_kubelet_minor = version_minor(version) - MAX_KUBELET_SKEW
    return [
        Check("CRI", c.container_runtime, ERROR),
        Check("Swap", c.swap, WARNING),
        *exec_checks(version),
        Check("SystemVerification", c.cgroups_required, ERROR),
        Check("SystemVerification", c.cgroups_advice, WARNING),
        Check("Hostname", c.hostname, WARNING),
        Check("KubeletVersion", c.kubelet_version(control_plane_version, min_kubelet_minor), ERROR),
        Check("Service-Kubelet", c.service_enabled("kubelet"), WARNING),
        port(KUBELET_PORT),
    ]


def forwarding_checks(ctx: Context, families: set[int]) -> list[Check]:
    rows = []
    for family, path in ((4, ctx.paths.proc_ip_forward), (6, PROC_IPV6_FORWARDING)):
        if family in families:
            rows.append(Check(c.path_label("FileContent", path), c.file_content(path, b"1"), ERROR))
    return rows


def _family(value: str | None) -> int | None:
    """4 or 6 for an IP or CIDR, None for anything else (a DNS name, nothing)."""
    if not value:
        return None
    try:
        return ipaddress.ip_network(value.strip().strip("[]"), strict=False).version
    except ValueError:
        return None


def _explicit_address(addr: str | None) -> str | None:
    return addr if addr and addr not in ("0.0.0.0", "::") else None


def init_checks(ctx: Context) -> list[Check]:
    cfg = ctx.cfg
    cluster, paths = cfg.cluster, ctx.paths
    net = cluster.networking
    cidrs = [x.strip() for x in f"{net.service_subnet},{net.pod_subnet or ''}".split(",") if x.strip()]
    advertise = _explicit_address(cfg.advertise_address)
    families = {f for f in (*map(_family, cidrs), _family(advertise)) if f}

    rows = [
        Check("IsPrivilegedUser", c.privileged_user, ERROR),
        Check("NumCPU", c.num_cpu(), ERROR),
        Check("Mem", c.memory(), ERROR),
        Check("Firewalld", c.firewalld((cfg.bind_port, KUBELET_PORT)), WARNING),
        port(cfg.bind_port),
        port(KUBE_SCHEDULER_PORT),
        port(KUBE_CONTROLLER_MANAGER_PORT),
        *(file_available(paths.manifest(name)) for name in STATIC_PODS),
        # Existing kubeconfig files are not a preflight matter (kubeadm has no such check):
        # the kubeconfig phase reuses a valid one and rejects a mismatched one by name.
        Check("HTTPProxy", c.http_proxy(advertise), WARNING),
        *(Check("HTTPProxyCIDR", c.http_proxy_cidr(x), WARNING) for x in cidrs),
        *common_checks(ctx, cluster.kubernetes_version),
        *forwarding_checks(ctx, families),
    ]
    if cluster.etcd_local is not None:
        data_dir = cluster.etcd_local.data_dir
        rows += [port(ETCD_CLIENT_PORT), port(ETCD_PEER_PORT),
                 Check(c.path_label("DirAvailable", data_dir), c.dir_available(data_dir), ERROR)]
    elif cluster.etcd_external is not None:
        ext = cluster.etcd_external
        rows += [Check("ExternalEtcdClientCertificates", c.file_existing(f), ERROR)
                 for f in (ext.ca_file, ext.cert_file, ext.key_file) if f]
    return rows


def control_plane_join_checks(ctx: Context) -> list[Check]:
    """kubeadm's RunInitNodeChecks for a secondary control plane: what init checks about this node
    (ports, static Pod manifests, etcd's data directory), without what join's own checks covered.
    ctx.cfg is the joining node's init view (kbootd.join.controlplane.init_view)."""
    cfg = ctx.cfg
    cluster, paths = cfg.cluster, ctx.paths
    rows = [
        Check("Firewalld", c.firewalld((cfg.bind_port, KUBELET_PORT)), WARNING),
        port(cfg.bind_port),
        port(KUBE_SCHEDULER_PORT),
        port(KUBE_CONTROLLER_MANAGER_PORT),
        *(file_available(paths.manifest(name)) for name in STATIC_PODS),
    ]
    if cluster.etcd_local is not None:
        data_dir = cluster.etcd_local.data_dir
        rows += [port(ETCD_CLIENT_PORT), port(ETCD_PEER_PORT),
                 Check(c.path_label("DirAvailable", data_dir), c.dir_available(data_dir), ERROR)]
    return rows


def join_checks(ctx: Context) -> list[Check]:
    cfg = ctx.join
    if cfg is None:
        raise RuntimeError("join preflight needs a join configuration")

    host = endpoint_host(cfg.api_server_endpoints[0]) if cfg.api_server_endpoints else None
    # kubeadm checks forwarding only for an IP endpoint; a worker needs it either way.
    families = {_family(host) or 4}
    rows = [
        Check("IsPrivilegedUser", c.privileged_user, ERROR),
        file_available(ctx.paths.kubelet_conf),
        file_available(ctx.paths.bootstrap_kubelet_conf),
        *common_checks(ctx, None),
    ]
    if cfg.control_plane is None:
        # kubeadm checks ca.crt only for a worker: a joining control plane may hold the cluster's
        # pre-shared CA there already (checked against the cluster in its download-certs phase).
        rows.append(file_available(cfg.ca_cert_path))
    if host is not None:
        rows.append(Check("HTTPProxy", c.http_proxy(host), WARNING))
    return rows + forwarding_checks(ctx, families)
