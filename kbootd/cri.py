"""The container runtime side of a node: which CRI socket, and the runtime's configuration.

`detect_socket` is kubeadm's detection (explicit criSocket, else exactly one known socket).
Phase "cri" makes the runtime fit the kubelet: crictl's endpoints, the systemd cgroup
driver and the pause image for containerd or CRI-O, and the kernel modules and sysctls
every CNI plugin and kube-proxy need. The spec's 20-cri.conf kubelet drop-in
(`--container-runtime=remote ...`) is obsolete: kbootd never writes it and warns if found.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import PurePosixPath
from typing import Any

from kbootd.config.model import DEFAULT_CRI_SOCKET, ClusterConfig
from kbootd.errors import ValidationError
from kbootd.images import images_for
from kbootd.kubelet import DROPIN_DIRS, removed_flags

try:  # Python 3.11+; 3.10 falls back to reading only the top-level keys kbootd needs.
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - exercised on 3.10 only
    tomllib = None  # type: ignore[assignment]

PHASE = "cri"

# kubeadm's known sockets (constants CRISocketContainerd/CRIO/Docker), each also under /run:
# /var/run is a symlink to /run on every systemd host, but a test root may hold either.
KNOWN_RUNTIMES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("containerd", ("/var/run/containerd/containerd.sock", "/run/containerd/containerd.sock")),
    ("cri-o", ("/var/run/crio/crio.sock", "/run/crio/crio.sock")),
    ("cri-dockerd", ("/var/run/cri-dockerd.sock", "/run/cri-dockerd.sock")),
)
OBSOLETE_CRI_DROPIN = "20-cri.conf"
# New host paths (not in kbootd.paths): the backup of a config.toml kbootd replaces,
# and kernel facts read to avoid needless modprobe/sysctl runs.
CONTAINERD_BACKUP_SUFFIX = ".kbootd-orig"
SYS_MODULE_DIR = "/sys/module"
PROC_BRIDGE_NF6 = "/proc/sys/net/bridge/bridge-nf-call-ip6tables"

MODULES = ("overlay", "br_netfilter")
SYSCTLS = (("net.bridge.bridge-nf-call-iptables", "1"), ("net.bridge.bridge-nf-call-ip6tables", "1"),
           ("net.ipv4.ip_forward", "1"))
MARKER = "# Written by kbootd"
CGROUP_DRIVERS = ("systemd", "cgroupfs")


# --- which socket ------------------------------------------------------------------------

def runtime_of(socket: str) -> str:
    """containerd, cri-o, cri-dockerd or unknown, from a socket URL."""
    path = socket.removeprefix("unix://")
    for name, candidates in KNOWN_RUNTIMES:
        if path in candidates:
            return name
    base = PurePosixPath(path).name
    return {"containerd.sock": "containerd", "crio.sock": "cri-o",
            "cri-dockerd.sock": "cri-dockerd"}.get(base, "unknown")


def detect_socket(ctx: Any) -> str:
    """The CRI socket (ctx.data.cri_socket keeps it): nodeRegistration.criSocket or reset's
    --cri-socket if set, else the one known socket present.

    None present: containerd's default, with a warning (kubeadm falls back the same way;
    preflight then reports whether it answers). Several: an error asking for --cri-socket.
    """
    cfg = ctx.init or ctx.join
    configured = cfg.node.cri_socket if cfg is not None else (ctx.reset.cri_socket if ctx.reset else None)
    if configured:
        found = configured
    else:
        present = []
        for _name, candidates in KNOWN_RUNTIMES:
            hit = next((p for p in candidates if ctx.host.exists(p)), None)
            if hit:
                present.append(f"unix://{hit}")
        if len(present) > 1:
            raise ValidationError(
                f"found multiple CRI endpoints on the host: {', '.join(present)}; choose one with "
                "--cri-socket (or nodeRegistration.criSocket in the configuration file)")
        if present:
            found = present[0]
        else:
            found = DEFAULT_CRI_SOCKET
            ctx.reporter.warn(PHASE, "no known CRI socket found (containerd, CRI-O, cri-dockerd); "
                                     f"assuming {found}. Set --cri-socket if the runtime is elsewhere")
    return found


# --- inputs shared with join -----------------------------------------------------------

def pause_image_for(ctx: Any, pause_image: str | None = None) -> str:
    """Explicit, else what join stored from the cluster, else the init config's version, else default."""
    if pause_image:
        return pause_image
    if ctx.data.cluster_pause_image:
        return ctx.data.cluster_pause_image

    cluster = ctx.init.cluster if ctx.init is not None else ClusterConfig()
    return images_for(cluster, lambda m: ctx.reporter.warn(PHASE, m)).pause


def cgroup_driver_for(ctx: Any, cgroup_driver: str | None = None) -> str:
    """The kubelet's cgroupDriver; the runtime must use the same one."""
    driver = cgroup_driver or ctx.data.cluster_cgroup_driver
    if not driver and ctx.init is not None:
        driver = (ctx.init.kubelet_overrides or {}).get("cgroupDriver")
    driver = driver or "systemd"
    if driver not in CGROUP_DRIVERS:
        raise ValidationError(f"KubeletConfiguration cgroupDriver: {driver!r}; expected one of "
                              f"{', '.join(CGROUP_DRIVERS)}")
    return driver


# --- TOML (containerd and CRI-O configuration) -----------------------------------------

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_key(k: str) -> str:
    return k if _BARE_KEY.match(k) else json.dumps(k, ensure_ascii=False)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # JSON's escapes are TOML basic-string escapes
    if isinstance(v, (datetime, date, time)):
        return v.isoformat()
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def toml_dumps(data: Mapping[str, Any], _prefix: tuple[str, ...] = ()) -> str:
    """Nested mappings as TOML tables; scalars before sub-tables, insertion order kept."""
    lines: list[str] = []
    scalars = [(k, v) for k, v in data.items() if not isinstance(v, Mapping)]
    tables = [(k, v) for k, v in data.items() if isinstance(v, Mapping)]
    if _prefix and (scalars or not tables):
        lines += ["", "[" + ".".join(_toml_key(p) for p in _prefix) + "]"]
    lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in scalars]
    out = "\n".join(lines) + ("\n" if lines else "")
    for k, v in tables:
        out += toml_dumps(v, (*_prefix, k))
    return out


def _parse_toml(text: str, where: str) -> dict[str, Any]:
    if tomllib is not None:
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ValidationError(f"{where}: not valid TOML ({e}); containerd cannot start with it "
                                  "either: fix or remove it") from None
    head = re.split(r"^\s*\[", text, maxsplit=1, flags=re.M)[0]  # top-level keys only
    out: dict[str, Any] = {}
    if m := re.search(r"^\s*version\s*=\s*(\d+)", head, re.M):
        out["version"] = int(m.group(1))
    for key in ("imports", "disabled_plugins"):
        if m := re.search(rf"^\s*{key}\s*=\s*\[(.*?)\]", head, re.M | re.S):
            out[key] = re.findall(r"[\"']([^\"']*)[\"']", m.group(1))
    return out


# --- containerd --------------------------------------------------------------------------

def cri_settings(schema: int, pause_image: str, cgroup_driver: str) -> dict[str, Any]:
    """containerd's CRI settings in config `version` schema (2: containerd 1.x, 3: 2.x)."""
    runc = {"runtime_type": "io.containerd.runc.v2",
            "options": {"SystemdCgroup": cgroup_driver == "systemd"}}
    if schema >= 3:
        return {"plugins": {
            "io.containerd.cri.v1.images": {"pinned_images": {"sandbox": pause_image}},
            "io.containerd.cri.v1.runtime": {"containerd": {"runtimes": {"runc": runc}}},
        }}
    return {"plugins": {"io.containerd.grpc.v1.cri": {
        "sandbox_image": pause_image, "containerd": {"runtimes": {"runc": runc}}}}}


def _merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in top.items():
        out[k] = _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) else v
    return out


@dataclass(frozen=True)
class ContainerdPlan:
    mode: str  # "full": kbootd owns config.toml; "dropin": the user's config.toml imports ours
    schema: int
    root: str | None  # new config.toml content; None leaves it alone
    dropin: str | None
    backup: bool  # keep the replaced config.toml beside it first
    private: bool  # the drop-in copies the user's CRI section, which may hold registry credentials
    reason: str


def _imports_cover(imports: list[str], root_path: str, dropin_path: str) -> bool:
    parent = PurePosixPath(root_path).parent
    for pattern in imports:
        p = str(PurePosixPath(pattern) if pattern.startswith("/") else parent / pattern)
        # Like Go's filepath.Glob: `*` never crosses a "/".
        if (PurePosixPath(dropin_path).match(p) if "*" in p else p == dropin_path):
            return True
    return False


def _with_import(text: str, imports: list[str], dropin_path: str) -> str:
    """config.toml with dropin_path added to its top-level `imports`, all else kept as written."""
    lines = text.splitlines(keepends=True)
    first_table = next((i for i, ln in enumerate(lines) if re.match(r"\s*\[", ln)), len(lines))
    head, tail = "".join(lines[:first_table]), "".join(lines[first_table:])
    new = "imports = [" + ", ".join(json.dumps(p) for p in [*imports, dropin_path]) + "]"
    m = re.search(r"^[ \t]*imports[ \t]*=[ \t]*\[.*?\]", head, re.M | re.S)
    if m:
        head = head[:m.start()] + new + head[m.end():]
    else:
        # Top-level keys must precede the first table: right after `version`, else first.
        v = re.search(r"^[ \t]*version[ \t]*=.*$\n?", head, re.M)
        at = v.end() if v else 0
        prefix = head[:at] if head[:at].endswith("\n") or not at else head[:at] + "\n"
        head = prefix + new + "  # added by kbootd\n" + head[at:]
    return head + tail


def plan_containerd(root_text: str | None, version: tuple[int, ...] | None, *, pause_image: str,
                    cgroup_driver: str, root_path: str, dropin_path: str, dropin_glob: str) -> ContainerdPlan:
    """Decide how to configure containerd. Pure: tests drive it with a table.

    * No config.toml, kbootd's own, one with the CRI plugin disabled (Docker's containerd.io
      stub) or a legacy version-1 file: write a full config.toml (the replaced one is kept).
    * Otherwise the user's config.toml stays theirs: our settings go to a drop-in, and its
      `imports` gains the drop-in if it does not match already. containerd has read imports
      since 1.3; only 2.2's *default* config imports conf.d/*.toml, and an existing
      config.toml replaces that default, so the line must be checked, not assumed.
    * A drop-in may not have a higher `version` than config.toml (containerd refuses to
      load), so it takes config.toml's. containerd 1.x replaces a whole plugin section per
      imported file (containerd#5837; 2.0 merges them, containerd#9982): for 1.x (or an
      unknown version) the drop-in carries config.toml's CRI section with our keys merged in.
    * Schema for a full config: 3 only when containerd is known to be 2.x; version 2 is read
      by 1.x and migrated by 2.x, so it is the safe choice when the version is unknown.
    """
    major = version[0] if version else None
    root = _parse_toml(root_text, root_path) if root_text is not None else {}
    file_version = int(root.get("version", 1)) if root_text is not None else None
    disabled = {str(p) for p in root.get("disabled_plugins", [])}
    reason = ""
    if root_text is None:
        reason = f"{root_path} does not exist"
    elif root_text.startswith(MARKER):
        reason = f"{root_path} is kbootd's own"
    elif disabled & {"cri", "io.containerd.grpc.v1.cri"}:
        reason = f"{root_path} disables the CRI plugin (disabled_plugins), which the kubelet needs"
    elif file_version is not None and file_version < 2:
        reason = f"{root_path} is a version-1 configuration, which cannot import drop-ins"
    if reason:
        schema = 3 if major is not None and major >= 2 else 2
        body: dict[str, Any] = {"version": schema}
        if schema >= 3:
            body["imports"] = [dropin_glob]
        body.update(cri_settings(schema, pause_image, cgroup_driver))
        header = (f"{MARKER} (phase cri): containerd configured for Kubernetes.\n"
                  "# kbootd rewrites this file; delete its first line to take it over (kbootd then\n"
                  "# only adds a drop-in).\n")
        if schema >= 3:
            header += f"# Settings of your own can go in {dropin_glob}.\n"
        backup = root_text is not None and not root_text.startswith(MARKER)
        return ContainerdPlan("full", schema, header + toml_dumps(body), None, backup, False, reason)

    schema = min(file_version or 2, 3)
    ours = cri_settings(schema, pause_image, cgroup_driver)
    private = False
    if schema == 2 and (major is None or major < 2):
        section = root.get("plugins", {}).get("io.containerd.grpc.v1.cri")
        if isinstance(section, Mapping) and section:
            ours = {"plugins": {"io.containerd.grpc.v1.cri": _merge(section, ours["plugins"]["io.containerd.grpc.v1.cri"])}}
            private = True
    header = f"{MARKER} (phase cri): systemd cgroup driver and pause image for Kubernetes.\n"
    if private:
        header += (f"# Includes the CRI section of {root_path}: containerd 1.x replaces a whole plugin\n"
                   "# section with an imported file's, so it is carried over here.\n")
    dropin = header + toml_dumps({"version": schema, **ours})
    imports = [str(p) for p in root.get("imports", [])]
    new_root = None
    if not _imports_cover(imports, root_path, dropin_path):
        new_root = _with_import(root_text or "", imports, dropin_path)
    return ContainerdPlan("dropin", schema, new_root, dropin, False, private,
                          f"{root_path} is the user's; adding a drop-in")


def query_containerd_version(ctx: Any) -> tuple[int, int, int] | None:
    """containerd's version from `containerd --version` on the host; None if unknown."""
    res = ctx.host.query(["containerd", "--version"])
    found = None
    if res is not None and res.returncode == 0:
        # e.g. "containerd github.com/containerd/containerd/v2 v2.0.0 207ad71..."
        m = re.search(r"\sv?(\d+)\.(\d+)\.(\d+)", res.stdout)
        found = (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None
    return found


def configure_containerd(ctx: Any, *, pause_image: str, cgroup_driver: str) -> bool:
    """Apply plan_containerd through the I/O layer; restart containerd only if a file changed."""
    p = ctx.paths
    root_text = ctx.host.read_text(p.containerd_config)
    plan = plan_containerd(root_text, ctx.data.containerd_version, pause_image=pause_image,
                           cgroup_driver=cgroup_driver, root_path=p.containerd_config,
                           dropin_path=p.containerd_dropin,
                           dropin_glob=f"{p.containerd_dropin_dir}/*.toml")
    rep = ctx.reporter
    changed = False
    if plan.backup:
        backup = p.containerd_config + CONTAINERD_BACKUP_SUFFIX
        if not ctx.host.exists(backup):
            rep.info(PHASE, f'Saving the replaced containerd configuration as "{backup}"')
            ctx.host.write_file(backup, root_text or "", 0o600, sensitive=True)
    if plan.root is not None:
        what = "configuration" if plan.mode == "full" else "configuration (adding the kbootd drop-in to imports)"
        rep.info(PHASE, f'Writing containerd {what} to "{p.containerd_config}" ({plan.reason})')
        ctx.host.ensure_dir(PurePosixPath(p.containerd_config).parent.as_posix(), 0o755)
        changed |= ctx.host.write_file(p.containerd_config, plan.root, 0o644)
    if plan.dropin is not None:
        rep.info(PHASE, f'Writing containerd CRI drop-in to "{p.containerd_dropin}"')
        ctx.host.ensure_dir(p.containerd_dropin_dir, 0o755)
        changed |= ctx.host.write_file(p.containerd_dropin, plan.dropin, 0o600 if plan.private else 0o644,
                                       sensitive=plan.private)
    if changed:
        rep.info(PHASE, "Restarting containerd to apply its new configuration")
        ctx.host.systemctl("restart", "containerd")
    return changed


# --- CRI-O -------------------------------------------------------------------------------

def crio_dropin(pause_image: str, cgroup_driver: str) -> str:
    body = {"crio": {
        # conmon must live in the pod's cgroup with either manager (CRI-O's guidance).
        "runtime": {"cgroup_manager": cgroup_driver, "conmon_cgroup": "pod"},
        "image": {"pause_image": pause_image},
    }}
    return f"{MARKER} (phase cri): cgroup manager and pause image for Kubernetes.\n" + toml_dumps(body)


def configure_crio(ctx: Any, *, pause_image: str, cgroup_driver: str) -> bool:
    path = ctx.paths.crio_dropin
    ctx.reporter.info(PHASE, f'Writing CRI-O drop-in to "{path}"')
    ctx.host.ensure_dir(PurePosixPath(path).parent.as_posix(), 0o755)
    changed = ctx.host.write_file(path, crio_dropin(pause_image, cgroup_driver), 0o644)
    if changed:
        ctx.reporter.info(PHASE, "Restarting CRI-O to apply its new configuration")
        ctx.host.systemctl("restart", "crio")
    return changed


# --- crictl, kernel, leftovers -----------------------------------------------------------

def write_crictl(ctx: Any, socket: str) -> bool:
    path = ctx.paths.crictl_yaml
    ctx.reporter.info(PHASE, f'Writing crictl configuration to "{path}"')
    text = (f"{MARKER} (phase cri).\nruntime-endpoint: {socket}\nimage-endpoint: {socket}\n"
            "timeout: 10\ndebug: false\n")
    return ctx.host.write_file(path, text, 0o644)


def _live_sysctl_ok(ctx: Any) -> bool:
    files = (ctx.paths.proc_bridge_nf, PROC_BRIDGE_NF6, ctx.paths.proc_ip_forward)
    return all((ctx.host.read_text(f) or "").strip() == "1" for f in files)


def configure_kernel(ctx: Any) -> None:
    """Modules overlay and br_netfilter, and the forwarding/bridge sysctls, now and at boot."""
    p, rep = ctx.paths, ctx.reporter
    rep.info(PHASE, f'Writing kernel modules to load at boot to "{p.modules_load}"')
    ctx.host.write_file(p.modules_load, f"{MARKER} (phase cri): needed by the container runtime and "
                        "bridge CNI plugins.\n" + "".join(f"{m}\n" for m in MODULES), 0o644)
    for m in MODULES:
        if not ctx.host.exists(f"{SYS_MODULE_DIR}/{m}"):
            res = ctx.host.run(["modprobe", m], check=False)
            if res.returncode != 0:
                rep.warn(PHASE, f"modprobe {m} failed: {res.stderr.strip()[:300]}")
    rep.info(PHASE, f'Writing sysctl settings to "{p.sysctl_conf}"')
    changed = ctx.host.write_file(p.sysctl_conf, f"{MARKER} (phase cri): pod traffic must be forwarded "
                                  "and seen by iptables.\n" + "".join(f"{k} = {v}\n" for k, v in SYSCTLS),
                                  0o644)
    if changed or not _live_sysctl_ok(ctx):
        # Only kbootd's own file: `sysctl --system` would re-apply every sysctl.d file of
        # the machine, and fail on tunables that are none of kbootd's business.
        res = ctx.host.run(["sysctl", "-p", p.sysctl_conf], check=False)
        if res.ran:
            _report_unset_sysctls(ctx, res.stderr)


def _report_unset_sysctls(ctx: Any, stderr: str) -> None:
    """Name each tunable that is not at its value after `sysctl -p`, with its live value and
    why (sysctl's message); preflight then reports the ones the cluster cannot do without.
    E.g. a container whose /proc/sys is read-only: the host must set them."""
    for key, want in SYSCTLS:
        live = (ctx.host.read_text("/proc/sys/" + key.replace(".", "/")) or "").strip()
        if live == want:
            continue
        why = next((ln.strip() for ln in stderr.splitlines() if key in ln), "") or stderr.strip()
        ctx.reporter.warn(PHASE, f"cannot set {key} = {want} (now {live or 'absent'})"
                          + (f": {why[:200]}" if why else "")
                          + "; set it where the kernel allows it (the host of a container)")


def warn_obsolete_dropins(ctx: Any) -> None:
    """The spec's 20-cri.conf passes flags the kubelet refuses today; say so (never removed silently)."""

    for d in DROPIN_DIRS:
        path = f"{d}/{OBSOLETE_CRI_DROPIN}"
        text = ctx.host.read_text(path)
        if text is None:
            continue
        flags = removed_flags(re.findall(r"--[\w-]+(?:=\S*)?", text))
        detail = "; ".join(flags) if flags else "the spec's CRI settings now live in kubeadm-flags.env"
        ctx.reporter.warn(PHASE, f'"{path}" is the spec\'s CRI drop-in and holds removed kubelet flags '
                                 f"({detail}); the kubelet will not start with them: remove the file "
                                 "and run `systemctl daemon-reload`")


def configure(ctx: Any, *, pause_image: str | None = None, cgroup_driver: str | None = None) -> None:
    """Phase cri (init and join): runtime configuration for the detected CRI socket."""
    socket = ctx.data.cri_socket
    kind = runtime_of(socket)
    ctx.reporter.info(PHASE, f'Using CRI socket "{socket}" ({kind})')
    write_crictl(ctx, socket)
    pause = pause_image_for(ctx, pause_image)
    driver = cgroup_driver_for(ctx, cgroup_driver)
    if kind == "containerd":
        configure_containerd(ctx, pause_image=pause, cgroup_driver=driver)
    elif kind == "cri-o":
        configure_crio(ctx, pause_image=pause, cgroup_driver=driver)
    elif kind == "cri-dockerd":
        ctx.reporter.warn(PHASE, f"kbootd does not configure Docker: set its cgroup driver to {driver} "
                                 "(exec-opts native.cgroupdriver) and cri-dockerd's --pod-infra-container-image "
                                 f"to {pause}")
    else:
        ctx.reporter.warn(PHASE, f"unknown runtime behind {socket}: make sure it uses the {driver} cgroup "
                                 f"driver and pause image {pause}")
    configure_kernel(ctx)
    warn_obsolete_dropins(ctx)
