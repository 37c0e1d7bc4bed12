"""What preflight asks of the machine itself, behind one injectable object.

Files (/proc, /sys/fs/cgroup, /etc/kubernetes, unit files) are read through ctx.host, so
a --root fakes them. The facts a root cannot fake (the user, CPUs, listening ports, DNS,
`kubelet --version`, systemctl) are only probed on the real host ("/"); under any other
root they come out None ("unknown") and the checks say they were not checked, instead of
quietly describing the machine kbootd happens to run on. Tests inject their own Facts.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import shutil
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from kbootd.context import Context

# Host paths that paths.py does not hold (read only, under --root like every other).
BIN_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
SYSTEMD_UNIT_DIR = "/etc/systemd/system"  # where `systemctl enable` puts *.wants/ links

# `systemctl is-enabled` exits 0 for these, and kubeadm takes exit 0 as enabled.
ENABLED_STATES = frozenset({"enabled", "enabled-runtime", "alias", "static", "indirect",
                            "generated", "transient"})
CRI_CONNECT_TIMEOUT = 3.0
_SUN_PATH_MAX = 107  # sockaddr_un.sun_path is 108 bytes with the NUL


@dataclass(frozen=True)
class Lookup:
    """A DNS answer: the addresses, or why there are none."""

    addresses: tuple[str, ...]
    error: str = ""


class Facts(Protocol):
    """Every probe preflight makes; None means unknown (not on the host)."""

    @property
    def on_host(self) -> bool: ...
    def euid(self) -> int | None: ...
    def cpu_count(self) -> int | None: ...
    def mem_total_mb(self) -> int | None: ...
    def port_in_use(self, port: int) -> bool | None: ...
    def which(self, binary: str) -> str | None: ...
    def lookup_host(self, name: str) -> Lookup | None: ...
    def kubelet_version(self) -> str | None: ...
    def unit_state(self, unit: str) -> str | None: ...
    def unit_active(self, unit: str) -> bool | None: ...
    def cri_error(self, socket_uri: str) -> str | None: ...
    def https_proxy(self, url: str) -> str | None: ...


class HostFacts:
    """The real probes. Read-only: nothing here changes the host."""

    def __init__(self, ctx: Context, env: Mapping[str, str] | None = None) -> None:
        self.ctx = ctx
        self.env = os.environ if env is None else env

    @property
    def on_host(self) -> bool:
        return self.ctx.paths.is_host

    def euid(self) -> int | None:
        return os.geteuid() if self.on_host else None

    def cpu_count(self) -> int | None:
        if not self.on_host:
            return None
        try:  # the CPUs this process may use, as Go's runtime.NumCPU counts them
            return len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            return os.cpu_count()

    def mem_total_mb(self) -> int | None:
        text = self.ctx.host.read_text(self.ctx.paths.proc_meminfo)
        for line in (text or "").splitlines():
            key, _, rest = line.partition(":")
            if key == "MemTotal" and rest.split():
                return int(rest.split()[0]) // 1024  # kB -> MiB
        return None

    def port_in_use(self, port: int) -> bool | None:
        """Try to listen on every address, as kubeadm does; any failure means in use."""
        if not self.on_host:
            return None
        for family, addr in ((socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0")):
            try:
                s = socket.socket(family, socket.SOCK_STREAM)
            except OSError:
                continue  # no IPv6 here: the IPv4 listen decides
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                s.bind((addr, port))
                s.listen(1)
                return False
            except OSError as e:
                if family == socket.AF_INET6 and e.errno == errno.EADDRNOTAVAIL:
                    continue
                return True
            finally:
                s.close()
        return True

    def which(self, binary: str) -> str | None:
        if self.on_host:
            return shutil.which(binary)
        for d in BIN_DIRS:  # a root has no $PATH of its own: look where packages install
            if self.ctx.host.exists(f"{d}/{binary}"):
                return f"{d}/{binary}"
        return None

    def lookup_host(self, name: str) -> Lookup | None:
        if not self.on_host:
            return None
        try:
            infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
        except (socket.gaierror, UnicodeError) as e:
            return Lookup((), f"lookup {name}: {getattr(e, 'strerror', None) or e}")
        return Lookup(tuple(dict.fromkeys(str(i[4][0]) for i in infos)))

    def kubelet_version(self) -> str | None:
        res = self.ctx.host.query(["kubelet", "--version"])
        if res is None or res.returncode != 0:
            return None
        return res.stdout.strip()

    def unit_state(self, unit: str) -> str | None:
        """`systemctl is-enabled`'s answer, or "not-found". Under a root: from the unit files."""
        if not self.on_host:
            return self._rooted_unit_state(unit)
        res = self.ctx.host.query(["systemctl", "is-enabled", f"{unit}.service"])
        if res is None:
            return None
        out = res.stdout.strip()
        state = out.splitlines()[0] if out else ""
        if state == "not-found" or "No such file" in res.stderr or "not found" in res.stderr:
            return "not-found"
        return state or "unknown"

    def _rooted_unit_state(self, unit: str) -> str:
        host = self.ctx.host
        name = f"{unit}.service"
        unit_dirs = dict.fromkeys(c.rsplit("/", 1)[0] for c in self.ctx.paths.kubelet_unit_candidates)
        if not any(host.exists(f"{d}/{name}") for d in unit_dirs):
            return "not-found"
        for entry in host.listdir(SYSTEMD_UNIT_DIR):
            if entry.endswith(".wants") and host.exists(f"{SYSTEMD_UNIT_DIR}/{entry}/{name}"):
                return "enabled"
        return "disabled"

    def unit_active(self, unit: str) -> bool | None:
        if not self.on_host:
            return None
        res = self.ctx.host.query(["systemctl", "is-active", f"{unit}.service"])
        return None if res is None else res.stdout.strip() == "active"

    def cri_error(self, socket_uri: str) -> str | None:
        """Connect to the runtime's unix socket (under the root); None when it answers."""
        real = str(self.ctx.paths.at(socket_uri.removeprefix("unix://")))
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(CRI_CONNECT_TIMEOUT)
        dir_fd = None
        try:
            target = real
            if len(real.encode()) > _SUN_PATH_MAX:  # a deep --root: reach it through a dir fd
                dir_fd = os.open(os.path.dirname(real), os.O_RDONLY | os.O_DIRECTORY)
                target = f"/proc/self/fd/{dir_fd}/{os.path.basename(real)}"
            s.connect(target)
            return None
        except OSError as e:
            return (e.strerror or str(e)).lower()
        finally:
            s.close()
            if dir_fd is not None:
                os.close(dir_fd)

    def https_proxy(self, url: str) -> str | None:
        """The proxy an https request to url would use (HTTPS_PROXY minus NO_PROXY), without credentials."""
        proxy = self.env.get("HTTPS_PROXY") or self.env.get("https_proxy") or ""
        no_proxy = self.env.get("NO_PROXY") or self.env.get("no_proxy") or ""
        if not proxy or bypasses_proxy(urlsplit(url).hostname or "", no_proxy):
            return None
        return without_credentials(proxy)


def bypasses_proxy(host: str, no_proxy: str) -> bool:
    """Go's NO_PROXY rules, which kubeadm and the API server follow: *, IPs, CIDRs, domains."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if host == "localhost" or (ip is not None and ip.is_loopback):
        return True
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if entry == "*":
            return True
        if not entry:
            continue
        if "/" in entry:
            try:
                if ip is not None and ip in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        entry = _without_port(entry)
        if ip is not None:
            try:
                if ip == ipaddress.ip_address(entry):
                    return True
            except ValueError:
                pass
            continue
        domain, h = entry.lstrip("."), host.lower()
        if h == domain or h.endswith("." + domain):
            return True
    return False


def _without_port(entry: str) -> str:
    if entry.startswith("["):
        return entry[1:].split("]", 1)[0]
    return entry.split(":", 1)[0] if entry.count(":") == 1 else entry


def without_credentials(url: str) -> str:
    """A proxy URL fit for a message: any user:password@ removed."""
    parts = urlsplit(url if "://" in url else "http://" + url)
    if parts.username is None and parts.password is None:
        return url
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parts.port:
        netloc += f":{parts.port}"
    return parts._replace(netloc=netloc).geturl()
