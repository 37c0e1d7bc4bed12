"""kubeadm's preflight checks, one small function (or factory) each.

Each returns its problems as messages, in kubeadm's wording where kubeadm has one;
whether they are errors or warnings is the table's business (tables.py). Files are read
through ctx.host (so --root fakes them); everything else comes from the Facts object.
A check raises NotChecked when it cannot look.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING

from kbootd.errors import KbootdError
from kbootd.preflight.facts import ENABLED_STATES, Facts
from kbootd.preflight.runner import CheckFn, NotChecked

if TYPE_CHECKING:
    from kbootd.context import Context

CONTROL_PLANE_NUM_CPU = 2  # kubeadm's ControlPlaneNumCPU
CONTROL_PLANE_MEM_MB = 1700  # kubeadm's ControlPlaneMem
CGROUPS_V1_REQUIRED = ("cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids")
CGROUPS_V2_REQUIRED = ("cpu", "cpuset", "devices", "freezer", "memory", "pids")
CGROUPS_OPTIONAL = ("hugetlb",)
_VERSION_RE = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")


def path_label(kind: str, path: str) -> str:
    """kubeadm's check name for a path: DirAvailable + /var/lib/etcd -> DirAvailable--var-lib-etcd."""
    return f"{kind}-{path.replace('/', '-')}"


def off_host(ctx: Context) -> str:
    return f"--root is {ctx.paths.root}, not this machine"


# --- the user and the machine ----------------------------------------------------
def privileged_user(ctx: Context, facts: Facts) -> list[str]:
    uid = facts.euid()
    if uid is None:
        raise NotChecked(off_host(ctx))
    return [] if uid == 0 else ["user is not running as root"]


def num_cpu(required: int = CONTROL_PLANE_NUM_CPU) -> CheckFn:
    def check(ctx: Context, facts: Facts) -> list[str]:
        n = facts.cpu_count()
        if n is None:
            raise NotChecked(off_host(ctx))
        return [] if n >= required else [f"the number of available CPUs {n} is less than the required {required}"]
    return check


def memory(required_mb: int = CONTROL_PLANE_MEM_MB) -> CheckFn:
    def check(ctx: Context, facts: Facts) -> list[str]:
        mb = facts.mem_total_mb()
        if mb is None:
            if facts.on_host:
                return [f"cannot read MemTotal from {ctx.paths.proc_meminfo}"]
            raise NotChecked(off_host(ctx))
        return [] if mb >= required_mb else [f"the system RAM ({mb} MB) is less than the minimum {required_mb} MB"]
    return check


def port_free(port: int) -> CheckFn:
    def check(ctx: Context, facts: Facts) -> list[str]:
        used = facts.port_in_use(port)
        if used is None:
            raise NotChecked(off_host(ctx))
        return [f"Port {port} is in use"] if used else []
    return check


def firewalld(ports: tuple[int, ...]) -> CheckFn:
    def check(ctx: Context, facts: Facts) -> list[str]:
        active = facts.unit_active("firewalld")
        if active is None:
            raise NotChecked(off_host(ctx))
        if not active:
            return []
        shown = " ".join(str(p) for p in ports)
        return [f"firewalld is active, please ensure ports [{shown}] are open or your cluster may not "
                "function correctly"]
    return check


# --- files and directories ---------------------------------------------------------
def dir_available(path: str) -> CheckFn:
    """Absent or empty (kubeadm's DirAvailable)."""
    def check(ctx: Context, facts: Facts) -> list[str]:
        if not ctx.host.exists(path):
            return []
        if not ctx.host.is_dir(path):
            return [f"{path} is not a directory"]
        return [f"{path} is not empty"] if ctx.host.listdir(path) else []
    return check


def file_available(path: str) -> CheckFn:
    """Absent (kubeadm's FileAvailable): kbootd will write it."""
    def check(ctx: Context, facts: Facts) -> list[str]:
        return [f"{path} already exists"] if ctx.host.exists(path) else []
    return check


def file_existing(path: str) -> CheckFn:
    def check(ctx: Context, facts: Facts) -> list[str]:
        return [] if ctx.host.exists(path) else [f"{path} doesn't exist"]
    return check


def file_content(path: str, content: bytes = b"1") -> CheckFn:
    """The file starts with content (kubeadm reads only len(content) bytes)."""
    def check(ctx: Context, facts: Facts) -> list[str]:
        data = ctx.host.read_bytes(path)
        if data is None:
            if not facts.on_host and path.startswith(("/proc/", "/sys/")):
                # A root is a filesystem, not a running kernel: its /proc is usually empty, and
                # the host's /proc describes this machine, not the one that boots the root.
                raise NotChecked(off_host(ctx))
            return [f"{path} does not exist"]
        if data[:len(content)] != content:
            return [f"{path} contents are not set to {content.decode()}"]
        return []
    return check


def swap(ctx: Context, facts: Facts) -> list[str]:
    text = ctx.host.read_text(ctx.paths.proc_swaps)
    if text is None:
        return []  # no /proc/swaps: nothing to warn about (kubeadm)
    if len([ln for ln in text.splitlines() if ln.strip()]) > 1:  # a header, then one line per swap
        return ["swap is supported for cgroup v2 only. The kubelet must be properly configured to use swap. "
                "Please refer to https://kubernetes.io/docs/concepts/architecture/nodes/#swap-memory, "
                "or disable swap on the node"]
    return []


# --- programs and services -----------------------------------------------------------
def in_path(binary: str, suggestion: str = "") -> CheckFn:
    def check(ctx: Context, facts: Facts) -> list[str]:
        if facts.which(binary):
            return []
        if not facts.on_host:
            # Under --root nothing runs here, and the root may be a bare tree: a program it
            # lacks is not known to be missing from the machine that will boot it.
            raise NotChecked(off_host(ctx))
        return [f"{binary} not found in system path" + (f"\nSuggestion: {suggestion}" if suggestion else "")]
    return check


def parse_version(text: str) -> tuple[int, int, int] | None:
    m = _VERSION_RE.search(text)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def kubelet_version(control_plane: str | None, min_minor: int) -> CheckFn:
    """Installed kubelet: not newer than the control plane, not older than min_minor.

    control_plane is None on join, where the cluster's version is not known yet.
    """
    def check(ctx: Context, facts: Facts) -> list[str]:
        out = facts.kubelet_version()
        if out is None:
            if not facts.on_host:
                raise NotChecked(f"couldn't get kubelet version: `kubelet --version` is not run when "
                                 f"{off_host(ctx)}", warn=True)
            why = ": executable file not found in $PATH" if not facts.which("kubelet") else ""
            return [f"couldn't get kubelet version: cannot execute 'kubelet --version'{why}"]
        v = parse_version(out)
        if v is None:
            return [f"couldn't get kubelet version: cannot parse {out[:80]!r} from 'kubelet --version'"]
        shown = "v{}.{}.{}".format(*v)
        if v[0] != 1 or v[1] < min_minor:
            return [f'Kubelet version "{shown}" is lower than kubeadm can support. Please upgrade kubelet '
                    f"(the oldest supported here is v1.{min_minor})"]
        cp = parse_version(control_plane) if control_plane else None
        if cp is not None and v[:2] > cp[:2]:
            return ["the kubelet version is higher than the control plane version. This is not a supported "
                    f'version skew and may lead to a malfunctional cluster. Kubelet version: "{shown}" '
                    'Control plane version: "v{}.{}.{}"'.format(*cp)]
        return []
    return check


def service_enabled(unit: str) -> CheckFn:
    def check(ctx: Context, facts: Facts) -> list[str]:
        state = facts.unit_state(unit)
        if state is None:
            return ["no supported init system detected, skipping checking for services"]
        if state == "not-found":
            return [f"{unit} service does not exist"]
        if state not in ENABLED_STATES:
            return [f"{unit} service is not enabled, please run 'systemctl enable {unit}.service'"]
        return []
    return check


def container_runtime(ctx: Context, facts: Facts) -> list[str]:
    uri = ctx.data.cri_socket
    err = facts.cri_error(uri)
    if err is None:
        return []
    return [f'container runtime is not running: cannot connect to "{uri}": {err}; start the runtime '
            "(e.g. systemctl start containerd) or point --cri-socket at the right socket"]


# --- kernel --------------------------------------------------------------------------
def _cgroups(ctx: Context) -> tuple[int, set[str]] | None:
    """(cgroup version, available controllers), as system-validators sees them; None if unreadable."""
    root = ctx.paths.cgroup_root
    text = ctx.host.read_text(f"{root}/cgroup.controllers")
    if text is not None:
        # devices is always there on v2; freezer is there when cgroups have cgroup.freeze.
        found = {"devices", *text.split()}
        if _v2_freezer(ctx, root):
            found.add("freezer")
        return 2, found
    text = ctx.host.read_text(ctx.paths.proc_cgroups)
    if text is None:
        return None
    found = set()
    for line in text.splitlines():
        f = line.split()
        if line and not line.startswith("#") and len(f) >= 4 and f[3] != "0":
            found.add(f[0])
    return 1, found


def _v2_freezer(ctx: Context, root: str) -> bool:
    # kubeadm creates a test cgroup to look for cgroup.freeze; preflight changes nothing,
    # so look in the cgroups that exist. With none to look at, do not claim it is missing.
    children = [n for n in ctx.host.listdir(root) if ctx.host.is_dir(f"{root}/{n}")]
    return not children or any(ctx.host.exists(f"{root}/{n}/cgroup.freeze") for n in children)


def cgroups_required(ctx: Context, facts: Facts) -> list[str]:
    found = _cgroups(ctx)
    if found is None:
        if not facts.on_host:
            raise NotChecked(off_host(ctx))
        return [f"cannot find the cgroup controllers: neither {ctx.paths.cgroup_root}/cgroup.controllers "
                f"nor {ctx.paths.proc_cgroups} can be read"]
    version, have = found
    required = CGROUPS_V2_REQUIRED if version == 2 else CGROUPS_V1_REQUIRED
    missing = [c for c in required if c not in have]
    return [f"missing required cgroups: {' '.join(missing)}"] if missing else []


def cgroups_advice(ctx: Context, facts: Facts) -> list[str]:
    found = _cgroups(ctx)
    if found is None:
        return []  # cgroups_required reports it
    version, have = found
    out = ["cgroups v1 support is in maintenance mode, please migrate to cgroups v2"] if version == 1 else []
    missing = [c for c in CGROUPS_OPTIONAL if c not in have]
    if missing:
        out.append(f"missing optional cgroups: {' '.join(missing)}")
    return out


# --- names and networks ----------------------------------------------------------------
def hostname(ctx: Context, facts: Facts) -> list[str]:
    name = ctx.data.node_name  # a bad name raises ValidationError: the runner reports it
    found = facts.lookup_host(name)
    if found is None:
        raise NotChecked(off_host(ctx))
    out = []
    if not found.addresses:
        out.append(f'hostname "{name}" could not be reached')
    if found.error:
        out.append(f'hostname "{name}": {found.error}')
    return out


def http_proxy(host_of: str | None) -> CheckFn:
    """Warn when https to the API server would go through a proxy. host_of None: the advertise address."""
    def check(ctx: Context, facts: Facts) -> list[str]:
        host = host_of
        if host is None:
            try:
                host = ctx.data.advertise_address
            except KbootdError as e:
                raise NotChecked("the advertise address is not known yet") from e
        url = f"https://[{host}]:1234" if ":" in host else f"https://{host}"
        proxy = facts.https_proxy(url)
        if proxy is None:
            return []
        return [f'Connection to "{url}" uses proxy "{proxy}". If that is not intended, adjust your proxy settings']
    return check


def http_proxy_cidr(cidr: str) -> CheckFn:
    """Warn when the first address of a service or pod range would go through a proxy."""
    def check(ctx: Context, facts: Facts) -> list[str]:
        net = ipaddress.ip_network(cidr, strict=False)
        first = net.network_address + 1
        host = f"[{first}]" if net.version == 6 else str(first)
        proxy = facts.https_proxy(f"https://{host}:1234/")
        if proxy is None:
            return []
        return [f'connection to "{cidr}" uses proxy "{proxy}". This may lead to malfunctional cluster setup. '
                "Make sure that Pod and Services IP ranges specified correctly as exceptions in proxy "
                "configuration"]
    return check
