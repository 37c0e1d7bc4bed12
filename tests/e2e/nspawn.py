"""Boot real systemd + cloud-init "hosts" under systemd-nspawn for kbootd's e2e tests.

Works where the machine's PID 1 is not systemd (CI VMs, sandboxes): nspawn runs with
--register=no --keep-unit from a private cgroup per container (no machined, no D-Bus),
and commands run inside with nsenter(1). A host's root is an overlay of the read-only
base image (image.py) and a per-host upper dir, mounted by nspawn in its own mount
namespace, so there is nothing to unmount afterwards.

    with Network() as net, Host(net, name="cp", ip="10.213.0.10", image=root,
                                seed=Seed(user_data={...}), install=[kbootd]) as cp:
        cp.run(["kbootd", "version"])

Everything a run creates (cgroups, network namespaces, work dirs) is named after the run
(pid + start time of the test process), so reap_leftovers() can remove what dead runs left
behind without touching a concurrent run of another engineer on the same machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SUBNET = "10.213.0"          # the only addresses test traffic may go to (inside our netns)
CGROUP_TOP = "kbootd-e2e"
NETNS_PREFIX = "kbe2e-"
WORK_ROOT = Path(os.environ.get("KBOOTD_E2E_WORKDIR", "/var/tmp/kbootd-e2e"))
ARTEFACT_ROOT = Path(os.environ.get("KBOOTD_E2E_ARTEFACTS", str(WORK_ROOT / "artefacts")))
ARTEFACT_DAYS = 14          # failed runs' journals are kept this long
SYSTEMD_IS_PID1 = Path("/run/systemd/system").is_dir()

# Commands inside a host get a fixed environment, not the test runner's (venv PATH, CI vars).
CLEAN_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "TERM": "dumb",
    "SYSTEMD_PAGER": "",
    "SYSTEMD_COLORS": "0",
}
SHOW_PROPS = ("ActiveState", "SubState", "StatusText", "Result", "ExecMainStatus")

Installer = Callable[["Host"], None]   # runs after the overlay is prepared, before boot


def sh(*cmd: object, check: bool = True, timeout: float = 60, **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run a host-side tool with a bounded wait; output captured as text."""
    return subprocess.run([str(c) for c in cmd], check=check, timeout=timeout,
                          capture_output=True, text=True, **kw)


# ---------------------------------------------------------------------------- run identity

def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]          # field 22: start time in ticks


RUN_ID = f"{os.getpid()}.{_start_time(os.getpid())}"


def _run_alive(run_id: str) -> bool:
    """A run id names its test process; pid + start time survive pid reuse."""
    pid, _, start = run_id.partition(".")
    return pid.isdigit() and _start_time(int(pid)) == start


# ---------------------------------------------------------------------------------- cgroups

def _cgroup_roots() -> list[Path]:
    """Hierarchies nspawn --keep-unit uses: hybrid -> name=systemd + unified; else v2 only."""
    if Path("/sys/fs/cgroup/unified").is_dir():
        return [Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/unified")]
    return [Path("/sys/fs/cgroup")]


def _cgroup_pids(rel: str) -> list[int]:
    pids: set[int] = set()
    for root in _cgroup_roots():
        d = root / rel
        if d.is_dir():
            for procs in d.rglob("cgroup.procs"):
                with contextlib.suppress(OSError):
                    pids.update(int(p) for p in procs.read_text().split())
    return sorted(pids)


def _rmdir_tree(d: Path) -> None:
    if not d.is_dir():
        return
    for sub in sorted((p for p in d.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            sub.rmdir()
    with contextlib.suppress(OSError):
        d.rmdir()


def kill_cgroup(rel: str, timeout: float = 10) -> None:
    """Kill every process of one of our cgroups (nspawn and its whole container), then
    remove it. A container whose nspawn died keeps running, reparented to PID 1."""
    for root in _cgroup_roots():
        kill = root / rel / "cgroup.kill"
        if kill.exists():                               # cgroup v2, kernel >= 5.14
            with contextlib.suppress(OSError):
                kill.write_text("1")
    deadline = time.monotonic() + timeout
    while (pids := _cgroup_pids(rel)) and time.monotonic() < deadline:
        for pid in pids:                                # v1-only hosts, or stragglers
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    for root in _cgroup_roots():
        _rmdir_tree(root / rel)


# ------------------------------------------------------------------------------- reaping

def reap_leftovers(include_own: bool = False) -> list[str]:
    """Remove cgroups, network namespaces and work dirs of e2e runs whose test process is
    gone (and of this run too when include_own). Returns what was reaped."""
    if os.geteuid() != 0:
        return []

    def dead(run_id: str) -> bool:
        return (include_own and run_id == RUN_ID) or (run_id != RUN_ID and not _run_alive(run_id))

    reaped: list[str] = []
    if not SYSTEMD_IS_PID1:
        for root in _cgroup_roots():
            top = root / CGROUP_TOP
            for d in sorted(top.iterdir()) if top.is_dir() else []:
                if d.is_dir() and dead(d.name):
                    kill_cgroup(f"{CGROUP_TOP}/{d.name}")
                    reaped.append(f"cgroup {d}")
            with contextlib.suppress(OSError):
                top.rmdir()                             # only when no run is left
    netns_dir = Path("/run/netns")
    for ns in sorted(netns_dir.iterdir()) if netns_dir.is_dir() else []:
        if ns.name.startswith(NETNS_PREFIX) and dead(ns.name[len(NETNS_PREFIX):].split("-")[0]):
            sh("ip", "netns", "del", ns.name, check=False)
            reaped.append(f"netns {ns.name}")
    runs = WORK_ROOT / "runs"
    for d in sorted(runs.iterdir()) if runs.is_dir() else []:
        if dead(d.name):
            shutil.rmtree(d, ignore_errors=True)
            reaped.append(f"workdir {d}")
    too_old = time.time() - ARTEFACT_DAYS * 86400
    for d in sorted(ARTEFACT_ROOT.iterdir()) if ARTEFACT_ROOT.is_dir() else []:
        if d.is_dir() and d.name != RUN_ID and d.stat().st_mtime < too_old:
            shutil.rmtree(d, ignore_errors=True)
    return reaped


# ------------------------------------------------------------------------------- network

class Network:
    """An L2 segment (10.213.0.0/24) that exists only inside namespaces we create: a
    "switch" netns holding a bridge, and per host a netns wired to it by a veth whose
    inner end is eth0. Nothing is added to or routed from the root namespace."""

    def __init__(self, tag: str = "") -> None:
        # netns names are free-form; interface names (<= 15 chars) live in private netns.
        self.prefix = f"{NETNS_PREFIX}{RUN_ID}-{tag or uuid.uuid4().hex[:6]}"
        self.switch = f"{self.prefix}-sw"
        self._netns: list[str] = []
        try:
            self._add_netns(self.switch)
            sh("ip", "-n", self.switch, "link", "add", "br0", "type", "bridge")
            sh("ip", "-n", self.switch, "link", "set", "br0", "up")
        except BaseException:
            self.close()
            raise

    def _add_netns(self, name: str) -> None:
        sh("ip", "netns", "add", name)
        self._netns.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")

    def attach(self, name: str, ip: str) -> str:
        """Create `name`'s netns with eth0 = ip/24 on the bridge; returns the netns name."""
        if not ip.startswith(SUBNET + "."):
            raise ValueError(f"{ip}: e2e hosts live in {SUBNET}.0/24 only")
        ns = f"{self.prefix}-{name}"
        self._add_netns(ns)
        port = f"p{len(self._netns)}"
        sh("ip", "-n", self.switch, "link", "add", port, "type", "veth",
           "peer", "name", "eth0", "netns", ns)
        sh("ip", "-n", self.switch, "link", "set", port, "master", "br0", "up")
        sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        # A node forwards pod traffic (kbootd's preflight requires it). A new netns starts
        # with ip_forward=0, and the container cannot change it: nspawn sharing a netns it
        # did not create keeps /proc/sys read-only (systemd 257 under kbootd's sandbox too).
        # Preset it here, as a cloud image's sysctl.d would on a real machine.
        sh("nsenter", f"--net=/run/netns/{ns}", "--", "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        return ns

    def detach(self, ns: str) -> None:
        if ns in self._netns:                            # deleting it also removes the veth
            sh("ip", "netns", "del", ns, check=False)
            self._netns.remove(ns)

    def close(self) -> None:
        for ns in reversed(self._netns):
            sh("ip", "netns", "del", ns, check=False)
        self._netns.clear()

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------------- seed

@dataclass
class Seed:
    """A NoCloud seed. user_data: a dict (written as #cloud-config) or raw text; meta_data
    extends the generated instance-id (unique per boot) and local-hostname."""

    user_data: dict[str, Any] | str = field(default_factory=dict)
    meta_data: dict[str, Any] = field(default_factory=dict)
    network_config: str | None = None

    def write(self, upper: Path, hostname: str) -> str:
        d = upper / "var/lib/cloud/seed/nocloud"
        d.mkdir(parents=True, exist_ok=True)
        iid = f"iid-{hostname}-{uuid.uuid4().hex[:12]}"
        meta = {"instance-id": iid, "local-hostname": hostname, **self.meta_data}
        (d / "meta-data").write_text(yaml.safe_dump(meta, sort_keys=False))
        ud = self.user_data
        if not isinstance(ud, str):
            ud = "#cloud-config\n" + yaml.safe_dump(ud, sort_keys=False)
        (d / "user-data").write_text(ud)
        if self.network_config is not None:
            (d / "network-config").write_text(self.network_config)
        return iid


# ---------------------------------------------------------------------------------- host

class HostError(RuntimeError):
    pass


class Host:
    """One booted container. As a context manager: boots on enter; on exit stops it,
    keeps journal + console log as artefacts if the block raised, and removes it."""

    def __init__(self, net: Network | None, *, name: str, image: Path, ip: str | None = None,
                 seed: Seed | None = None, install: Sequence[Installer] = (),
                 boot_timeout: float = 120) -> None:
        if (net is None) != (ip is None):
            raise ValueError("give both net and ip, or neither (then: loopback only)")
        self.name, self.ip, self.net, self.image = name, ip, net, Path(image)
        self.seed = seed or Seed()
        self.install = list(install)
        self.boot_timeout = boot_timeout
        self.dir = WORK_ROOT / "runs" / RUN_ID / f"{name}-{uuid.uuid4().hex[:6]}"
        self.upper = self.dir / "upper"
        self.console_log = self.dir / "console.log"
        self.machine = f"{name}-{self.dir.name[-6:]}"   # unique among parallel runs
        self.instance_id = ""
        self.netns: str | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.failed = False          # set True to keep its journal/console log on close()
        self.artefacts: Path | None = None
        self._cg = f"{CGROUP_TOP}/{RUN_ID}/{self.machine}"

    # ------------------------------------------------------------------------ lifecycle
    def __enter__(self) -> Host:
        try:
            self.start()
        except BaseException:
            self.close(failed=True)
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.close(failed=exc_type is not None)

    def start(self) -> str:
        """Prepare, boot, wait until booted and cloud-init is done; returns the system state."""
        self.prepare()
        self.launch()
        return self.wait_ready()

    def prepare(self) -> None:
        """Overlay upper dir with hostname and seed; then the installers (offline)."""
        self.upper.mkdir(parents=True)
        (self.upper / "etc").mkdir()
        (self.upper / "etc/hostname").write_text(self.name + "\n")
        self.instance_id = self.seed.write(self.upper, self.name)
        for install in self.install:
            install(self)

    def _nspawn(self) -> list[str]:
        # With no systemd host nspawn cannot get a scope unit: --keep-unit makes it use
        # its own cgroup (it adds payload/ and supervisor/ below it), so every container
        # must be started from a cgroup of its own (_enter_own_cgroup).
        keep = [] if SYSTEMD_IS_PID1 else ["--keep-unit"]
        return ["systemd-nspawn", "-q", "-D", str(self.image), "-M", self.machine,
                f"--hostname={self.name}", f"--overlay={self.image}:{self.upper}:/",
                "--register=no", *keep]

    def _enter_own_cgroup(self) -> None:
        """preexec_fn: move the child that is about to exec nspawn into our cgroup."""
        if SYSTEMD_IS_PID1:
            return
        for root in _cgroup_roots():
            d = root / self._cg
            d.mkdir(parents=True, exist_ok=True)
            (d / "cgroup.procs").write_text(str(os.getpid()))

    def run_offline(self, cmd: Sequence[str], binds: Sequence[tuple[Path, str]] = (),
                    timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run a command in the not-yet-booted root (e.g. apt-get install ./x.deb):
        postinst runs, units get enabled; nothing is started. No network. binds are
        (host file, path inside) pairs, read-only; nspawn puts a tmpfs on /tmp."""
        if self.proc is not None:
            raise HostError("run_offline() is for a host that is not booted")
        args = [*self._nspawn(), "--private-network", "--pipe",
                "--setenv=DEBIAN_FRONTEND=noninteractive",
                *(f"--bind-ro={Path(src).resolve()}:{dst}" for src, dst in binds),
                *cmd]
        try:
            return sh(*args, check=False, timeout=timeout, stdin=subprocess.DEVNULL,
                      preexec_fn=self._enter_own_cgroup)
        finally:
            kill_cgroup(self._cg)

    def launch(self) -> None:
        """Start booting (returns at once; see wait_ready). After stop(), boots the same
        overlay again: same seed and instance-id, so cloud-init sees the same instance."""
        if self.net is not None and self.ip is not None:
            if self.netns is None:                      # a reboot keeps its netns
                self.netns = self.net.attach(self.name, self.ip)
            # Start nspawn inside the host's netns and share it. Not --network-namespace-
            # path: with it the container's /sys/class/net shows the machine's NICs, which
            # confuses cloud-init. Sharing drops CAP_NET_ADMIN, so give it back.
            pre = ["nsenter", f"--net=/run/netns/{self.netns}", "--"]
            net = ["--capability=CAP_NET_ADMIN"]
        else:
            pre, net = [], ["--private-network"]           # loopback only
        with open(self.console_log, "wb") as log:          # nsenter execs nspawn: same pid
            self.proc = subprocess.Popen(
                [*pre, *self._nspawn(), "-b", "--console=read-only", *net],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=self._enter_own_cgroup)

    @property
    def leader(self) -> int:
        """Host pid of the container's systemd: nspawn's only child once it has exec'd."""
        if self.proc is None:
            raise HostError(f"{self.name}: not launched")
        if self.proc.poll() is not None:
            raise HostError(f"{self.name}: nspawn exited rc={self.proc.returncode}; "
                            f"console: {self.console_log}")
        with contextlib.suppress(OSError):
            for kid in Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split():
                if Path(f"/proc/{kid}/comm").read_text().strip() == "systemd":
                    return int(kid)
        raise HostError(f"{self.name}: container's systemd not running yet")

    def wait_booted(self, timeout: float | None = None, target: str | None = None) -> str:
        """`systemctl is-system-running --wait` inside; returns running/degraded. With a
        target (e.g. multi-user.target): until that target is active, returns "active";
        for hosts whose boot job queue holds a long start job (a Type=notify unit that
        waits before READY=1 keeps the system "starting")."""
        deadline = time.monotonic() + (timeout or self.boot_timeout)
        state = ""
        while time.monotonic() < deadline:
            try:
                if target:
                    state = self.run(["systemctl", "is-active", target], check=False,
                                     timeout=max(1.0, deadline - time.monotonic())).stdout.strip()
                    if state == "active":
                        return state
                    time.sleep(0.2)
                    continue
                r = self.run(["systemctl", "is-system-running", "--wait"], check=False,
                             timeout=max(1.0, deadline - time.monotonic()))
                state = r.stdout.strip()
                if state in ("running", "degraded"):
                    return state
            except subprocess.TimeoutExpired:
                break
            except HostError:
                if self.proc is not None and self.proc.poll() is not None:
                    raise
            time.sleep(0.2)                             # early boot: no systemd/bus yet
        raise TimeoutError(f"{self.name}: not booted after {timeout or self.boot_timeout}s "
                           f"(state {state!r}); console: {self.console_log}")

    def wait_cloud_init(self, timeout: float | None = None) -> str:
        """`cloud-init status --wait`; returns the status word (done, error, ...)."""
        r = self.run(["cloud-init", "status", "--wait"], check=False,
                     timeout=timeout or self.boot_timeout)
        for line in r.stdout.splitlines():
            if line.startswith("status:"):
                return line.split(":", 1)[1].strip()
        raise HostError(f"{self.name}: no cloud-init status in {r.stdout!r} {r.stderr!r}")

    def wait_ready(self, timeout: float | None = None, target: str | None = None) -> str:
        """Booted (or `target` reached, see wait_booted) and cloud-init finished, within
        one deadline; returns the system state measured after cloud-init (its final stage
        runs late in boot)."""
        deadline = time.monotonic() + (timeout or self.boot_timeout)
        self.wait_booted(deadline - time.monotonic(), target)
        self.wait_cloud_init(max(1.0, deadline - time.monotonic()))
        return self.run(["systemctl", "is-system-running"], check=False).stdout.strip()

    # ------------------------------------------------------------------------- inside
    def run(self, cmd: Sequence[str], *, check: bool = True, timeout: float = 60,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run a command inside the container, in all namespaces of its PID 1."""
        r = subprocess.run(
            ["nsenter", "-t", str(self.leader), "-m", "-u", "-i", "-n", "-p", "-C", "--",
             *map(str, cmd)],
            timeout=timeout, input=input, env=CLEAN_ENV, capture_output=True,
            text=True, check=False)
        if check and r.returncode != 0:
            raise HostError(f"{self.name}: {list(cmd)} exited {r.returncode}\n"
                            f"stdout: {r.stdout}\nstderr: {r.stderr}")
        return r

    def show(self, unit: str, *props: str) -> dict[str, str]:
        """`systemctl show UNIT -p ...` as a dict (default: state, status text, result)."""
        args = [a for p in (props or SHOW_PROPS) for a in ("-p", p)]
        out = self.run(["systemctl", "show", unit, *args]).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, unit: str | None = None, *extra: str) -> list[dict[str, Any]]:
        """Journal entries (journalctl -o json), optionally of one unit."""
        args = ["journalctl", "-o", "json", "--no-pager", *extra]
        if unit:
            args += ["-u", unit]
        return [json.loads(line) for line in self.run(args).stdout.splitlines() if line.strip()]

    def read_file(self, path: str) -> str:
        return self.run(["cat", path]).stdout

    # ----------------------------------------------------------------------- teardown
    def stop(self, timeout: float = 30) -> int | None:
        """Orderly poweroff (nspawn turns SIGTERM into SIGRTMIN+3 for the container);
        kills the cgroup if that takes longer than timeout. Returns nspawn's exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        kill_cgroup(self._cg)                           # no-op after a clean exit
        return self.proc.returncode

    def kill(self) -> None:
        """Kill nspawn and every process of the container at once (cgroup.kill)."""
        kill_cgroup(self._cg)
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)

    def save_artefacts(self, dest: Path | None = None) -> Path:
        """Copy the console log and the journal (binary, plus a text rendering) of a
        stopped host to dest; prints the path so it shows in the test output."""
        dest = dest or ARTEFACT_ROOT / RUN_ID / self.machine
        dest.mkdir(parents=True, exist_ok=True)
        if self.console_log.exists():
            shutil.copy2(self.console_log, dest / "console.log")
        journals = self.upper / "var/log/journal"
        if journals.is_dir():
            shutil.copytree(journals, dest / "journal", dirs_exist_ok=True)
            if shutil.which("journalctl"):
                for mid in (d for d in (dest / "journal").iterdir() if d.is_dir()):
                    r = sh("journalctl", "-D", mid, "--no-pager", "-o", "short-precise",
                           check=False, timeout=60)
                    (dest / f"journal-{mid.name}.txt").write_text(r.stdout + r.stderr)
        self.artefacts = dest
        print(f"\n[e2e] {self.name}: journal and console log kept in {dest}")
        return dest

    def close(self, failed: bool = False) -> None:
        """Stop, keep artefacts if this host failed, remove the container and its netns."""
        try:
            self.stop()
            if failed or self.failed:
                self.save_artefacts()
        finally:
            kill_cgroup(self._cg)
            if self.netns and self.net is not None:
                self.net.detach(self.netns)
                self.netns = None
            shutil.rmtree(self.dir, ignore_errors=True)
            self.proc = None


@contextlib.contextmanager
def booted(*hosts: Host) -> Iterator[tuple[Host, ...]]:
    """Boot several hosts in parallel (launch all, then wait for each); close them all."""
    try:
        for h in hosts:
            h.prepare()
            h.launch()
        for h in hosts:
            h.wait_ready()
    except BaseException:
        for h in hosts:
            h.close(failed=True)
        raise
    failed = True
    try:
        yield hosts
        failed = False
    finally:
        for h in hosts:
            h.close(failed=failed)
