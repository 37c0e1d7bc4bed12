"""Shared by the preflight tests: a Facts double and a root that passes every file check."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kbootd.config.model import ClusterConfig, InitConfig, JoinConfig, NodeRegistration
from kbootd.context import Context, make_context
from kbootd.preflight.facts import Lookup
from kbootd.report import RecordingReporter

SOCKET = "unix:///run/containerd/containerd.sock"


@dataclass
class FakeFacts:
    """A healthy control-plane host unless a test says otherwise; None means unknown."""

    on_host: bool = True
    uid: int | None = 0
    cpus: int | None = 4
    mem_mb: int | None = 4096
    busy_ports: set[int] = field(default_factory=set)
    ports_known: bool = True
    missing_binaries: set[str] = field(default_factory=set)
    lookup: Lookup | None = field(default_factory=lambda: Lookup(("10.0.0.10",)))
    kubelet: str | None = "Kubernetes v1.32.0"
    units: dict[str, str | None] = field(default_factory=lambda: {"kubelet": "enabled"})
    firewalld_active: bool | None = False
    cri: str | None = None  # the connect error, None when the runtime answers
    proxy: str | None = None
    cri_asked: list[str] = field(default_factory=list)

    def euid(self) -> int | None:
        return self.uid

    def cpu_count(self) -> int | None:
        return self.cpus

    def mem_total_mb(self) -> int | None:
        return self.mem_mb

    def port_in_use(self, port: int) -> bool | None:
        return (port in self.busy_ports) if self.ports_known else None

    def which(self, binary: str) -> str | None:
        return None if binary in self.missing_binaries else f"/usr/bin/{binary}"

    def lookup_host(self, name: str) -> Lookup | None:
        return self.lookup

    def kubelet_version(self) -> str | None:
        return self.kubelet

    def unit_state(self, unit: str) -> str | None:
        return self.units.get(unit, "not-found")

    def unit_active(self, unit: str) -> bool | None:
        return self.firewalld_active if unit == "firewalld" else False

    def cri_error(self, socket_uri: str) -> str | None:
        self.cri_asked.append(socket_uri)
        return self.cri

    def https_proxy(self, url: str) -> str | None:
        return self.proxy


def write(root: Path, host_path: str, content: str = "") -> None:
    p = root / host_path.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(content)


def healthy_root(root: Path) -> Path:
    """The files a good node has: forwarding on, cgroup v2 with every controller, no swap."""
    write(root, "/proc/sys/net/ipv4/ip_forward", "1\n")
    write(root, "/proc/sys/net/ipv6/conf/default/forwarding", "1\n")
    write(root, "/proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n")
    write(root, "/sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n")
    write(root, "/sys/fs/cgroup/init.scope/cgroup.freeze", "0\n")
    return root


def init_config(**kw) -> InitConfig:
    cluster = kw.pop("cluster", ClusterConfig())
    node = kw.pop("node", NodeRegistration(name="cp-1", cri_socket=SOCKET))
    return InitConfig(cluster=cluster, node=node, advertise_address=kw.pop("advertise_address", "10.0.0.10"),
                      **kw)


def join_config(**kw) -> JoinConfig:
    node = kw.pop("node", NodeRegistration(name="worker-1", cri_socket=SOCKET))
    return JoinConfig(node=node, api_server_endpoints=kw.pop("api_server_endpoints", ("10.0.0.10:6443",)), **kw)


def context(root: Path, facts: FakeFacts | None = None, *, init: InitConfig | None = None,
            join: JoinConfig | None = None, ignore: tuple[str, ...] = ()) -> Context:
    if init is None and join is None:
        init = init_config()
    ctx = make_context(root=str(root), reporter=RecordingReporter(), init=init, join=join,
                       ignore_preflight_errors=ignore)
    if facts is not None:
        ctx.seams.preflight_facts = facts
    return ctx
