"""CRI socket detection and the runtime's configuration (containerd, CRI-O, kernel)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml

from kbootd import cri
from kbootd.config.model import ClusterConfig, InitConfig, JoinConfig, NodeRegistration
from kbootd.context import make_context
from kbootd.errors import ValidationError
from kbootd.hostio import CommandResult
from kbootd.report import RecordingReporter
from tests.conftest import tree_snapshot

# Python 3.11+ (Debian 12's 3.11 included); kbootd.cri itself falls back on 3.10.
tomllib = pytest.importorskip("tomllib", reason="parsing the TOML kbootd writes needs Python 3.11's tomllib")

CTD = "/var/run/containerd/containerd.sock"
CTD_RUN = "/run/containerd/containerd.sock"
CRIO = "/var/run/crio/crio.sock"
DOCKERD = "/var/run/cri-dockerd.sock"
PAUSE = "registry.k8s.io/pause:3.10"
ROOT_PATH = "/etc/containerd/config.toml"
DROPIN = "/etc/containerd/conf.d/10-kbootd.toml"
GLOB = "/etc/containerd/conf.d/*.toml"


def make(root: Path, *, init: InitConfig | None = None, join: JoinConfig | None = None, dry_run: bool = False,
         containerd: tuple[int, int, int] | None = None):
    ctx = make_context(root=str(root), reporter=RecordingReporter(), init=init, join=join, dry_run=dry_run)
    ctx.data.containerd_version = containerd  # as if `containerd --version` said so
    return ctx


def put(root: Path, host_path: str, text: str = "") -> None:
    p = root / host_path.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def read(root: Path, host_path: str) -> str:
    return (root / host_path.lstrip("/")).read_text()


def warnings(ctx) -> list[str]:
    return [m for kind, _, m in ctx.reporter.events if kind == "warn"]


def runs(ctx) -> list[str]:
    return [a.target for a in ctx.host.actions if a.kind == "run"]


# --- detection ---------------------------------------------------------------------------

@pytest.mark.parametrize("present, explicit, want, warns", [
    ([], None, "unix:///var/run/containerd/containerd.sock", True),
    ([CTD], None, f"unix://{CTD}", False),
    ([CTD_RUN], None, f"unix://{CTD_RUN}", False),
    ([CTD, CTD_RUN], None, f"unix://{CTD}", False),  # one runtime under both spellings of /run
    ([CRIO], None, f"unix://{CRIO}", False),
    ([DOCKERD], None, f"unix://{DOCKERD}", False),
    ([CTD, CRIO], "unix:///var/run/crio/crio.sock", f"unix://{CRIO}", False),
    ([], "unix:///custom/rt.sock", "unix:///custom/rt.sock", False),
])
def test_detect_socket(root: Path, present: list[str], explicit: str | None, want: str, warns: bool) -> None:
    for p in present:
        put(root, p)
    ctx = make(root, init=InitConfig(node=NodeRegistration(cri_socket=explicit)))
    assert ctx.data.cri_socket == want
    assert bool(warnings(ctx)) == warns
    assert ctx.data.cri_socket == want and len(warnings(ctx)) == int(warns)  # derived once per run


@pytest.mark.parametrize("present", [[CTD, CRIO], [CTD_RUN, DOCKERD], [CTD, CRIO, DOCKERD]])
def test_several_sockets_ask_for_cri_socket(root: Path, present: list[str]) -> None:
    for p in present:
        put(root, p)
    with pytest.raises(ValidationError, match="multiple CRI endpoints.*--cri-socket") as e:
        cri.detect_socket(make(root))
    for p in present:
        assert f"unix://{p}" in str(e.value)


def test_detect_finds_a_real_unix_socket_and_join_config(root: Path) -> None:
    path = root / CRIO.lstrip("/")
    path.parent.mkdir(parents=True)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.bind(str(path))
        assert cri.detect_socket(make(root, join=JoinConfig())) == f"unix://{CRIO}"
    finally:
        s.close()
    explicit = JoinConfig(node=NodeRegistration(cri_socket="unix:///run/containerd/containerd.sock"))
    assert cri.detect_socket(make(root, join=explicit)) == "unix:///run/containerd/containerd.sock"


@pytest.mark.parametrize("sock, kind", [
    (f"unix://{CTD}", "containerd"), (f"unix://{CTD_RUN}", "containerd"), (f"unix://{CRIO}", "cri-o"),
    (f"unix://{DOCKERD}", "cri-dockerd"), ("unix:///opt/k3s/containerd/containerd.sock", "containerd"),
    ("unix:///run/other/rt.sock", "unknown"),
])
def test_runtime_of(sock: str, kind: str) -> None:
    assert cri.runtime_of(sock) == kind


# --- TOML --------------------------------------------------------------------------------

@pytest.mark.parametrize("doc", [
    {"version": 2},
    {"version": 3, "imports": [GLOB], "plugins": {"io.containerd.cri.v1.images": {"pinned_images": {"sandbox": PAUSE}}}},
    {"a": {"b.c": {"d": True, "e": [1, 2], "f": {"g": "q\"uote\\d"}}}, "empty": {}},
    {"t": {"list": [{"x": 1}, {"y": "z"}], "n": 1.5}},
])
def test_toml_round_trip(doc: dict) -> None:
    assert tomllib.loads(cri.toml_dumps(doc)) == doc


# --- containerd planning -----------------------------------------------------------------

USER_V2 = """\
version = 2
root = "/var/lib/containerd"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.6"
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]
    endpoint = ["https://mirror.example"]
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
    SystemdCgroup = false
"""
USER_V3_IMPORTS = "version = 3\nimports = ['/etc/containerd/conf.d/*.toml']\n\n[grpc]\naddress = '/run/containerd/containerd.sock'\n"
USER_V3_OTHER = "version = 3\nimports = [\n  # theirs\n  \"/opt/extra.toml\",\n]\n[debug]\nlevel = 'info'\n"
DOCKER_STUB = "#   Copyright 2018-2022 Docker Inc.\n\ndisabled_plugins = [\"cri\"]\n"
V1_LEGACY = "[plugins.cri]\n  sandbox_image = \"k8s.gcr.io/pause:3.1\"\n"


def plan(root_text: str | None, version: tuple[int, int, int] | None, driver: str = "systemd") -> cri.ContainerdPlan:
    return cri.plan_containerd(root_text, version, pause_image=PAUSE, cgroup_driver=driver,
                               root_path=ROOT_PATH, dropin_path=DROPIN, dropin_glob=GLOB)


def sandbox(doc: dict) -> str:
    p = doc["plugins"]
    return p["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"] if "io.containerd.cri.v1.images" in p \
        else p["io.containerd.grpc.v1.cri"]["sandbox_image"]


def systemd_cgroup(doc: dict) -> bool:
    p = doc["plugins"]
    sect = p.get("io.containerd.cri.v1.runtime") or p["io.containerd.grpc.v1.cri"]
    return sect["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"]


@pytest.mark.parametrize("root_text, version, mode, schema, backup", [
    (None, None, "full", 2, False),  # unknown containerd: version 2 is read by 1.x and 2.x
    (None, (1, 7, 22), "full", 2, False),
    (None, (2, 0, 0), "full", 3, False),
    (DOCKER_STUB, (1, 6, 33), "full", 2, True),
    (V1_LEGACY, (1, 6, 33), "full", 2, True),
    (USER_V2, (1, 7, 22), "dropin", 2, False),
    (USER_V2, (2, 1, 0), "dropin", 2, False),  # a drop-in never outranks config.toml's version
    (USER_V3_IMPORTS, (2, 2, 0), "dropin", 3, False),
    (USER_V3_OTHER, None, "dropin", 3, False),
])
def test_plan_containerd(root_text: str | None, version, mode: str, schema: int, backup: bool) -> None:
    p = plan(root_text, version)
    assert (p.mode, p.schema, p.backup) == (mode, schema, backup)
    text = p.root if mode == "full" else p.dropin
    assert text is not None and text.startswith(cri.MARKER)
    doc = tomllib.loads(text)
    assert doc["version"] == schema
    assert sandbox(doc) == PAUSE
    assert systemd_cgroup(doc) is True
    if mode == "full":
        assert p.dropin is None
        assert (doc.get("imports") == [GLOB]) is (schema == 3)
    else:
        root_after = tomllib.loads(p.root if p.root is not None else root_text)
        assert any(i in (DROPIN, GLOB) for i in root_after["imports"])


def test_plan_keeps_the_users_config_and_only_adds_the_import() -> None:
    p = plan(USER_V3_OTHER, (2, 0, 0))
    assert p.root is not None
    assert tomllib.loads(p.root)["imports"] == ["/opt/extra.toml", DROPIN]
    assert "[debug]\nlevel = 'info'\n" in p.root
    assert plan(USER_V3_IMPORTS, (2, 2, 0)).root is None  # conf.d/*.toml already matches the drop-in
    inserted = plan(USER_V2, (1, 7, 22)).root
    assert inserted is not None and inserted.startswith(f'version = 2\nimports = ["{DROPIN}"]')
    assert tomllib.loads(inserted)["root"] == "/var/lib/containerd"


def test_containerd_1x_dropin_carries_the_cri_section_forward() -> None:
    p = plan(USER_V2, (1, 7, 22))
    doc = tomllib.loads(p.dropin or "")
    sect = doc["plugins"]["io.containerd.grpc.v1.cri"]
    assert sect["registry"]["mirrors"]["docker.io"]["endpoint"] == ["https://mirror.example"]
    assert (sect["sandbox_image"], systemd_cgroup(doc)) == (PAUSE, True)
    assert p.private
    not_copied = tomllib.loads(plan(USER_V2, (2, 1, 0)).dropin or "")  # 2.x merges sections itself
    assert "registry" not in not_copied["plugins"]["io.containerd.grpc.v1.cri"]


@pytest.mark.parametrize("driver, want", [("systemd", True), ("cgroupfs", False)])
def test_cgroup_driver_follows_the_kubelet(driver: str, want: bool) -> None:
    for version in (None, (2, 0, 0)):
        assert systemd_cgroup(tomllib.loads(plan(None, version, driver).root or "")) is want


def test_invalid_user_toml_is_an_error() -> None:
    with pytest.raises(ValidationError, match="/etc/containerd/config.toml: not valid TOML"):
        plan("version = \n", None)


@pytest.mark.parametrize("stdout, want", [
    ("containerd github.com/containerd/containerd/v2 v2.0.0 207ad711eabd375a01713109a8a197d197ff6542\n", (2, 0, 0)),
    ("containerd containerd.io 1.7.22 7f7fdf5fed64eb6a7caf99b3e12efcf9d60e311c\n", (1, 7, 22)),
    ("containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+b1\n", (1, 6, 20)),
    ("garbage\n", None),
])
def test_containerd_version(root: Path, monkeypatch: pytest.MonkeyPatch, stdout: str, want) -> None:
    ctx = make_context(root=str(root), reporter=RecordingReporter())
    monkeypatch.setattr(ctx.host, "query", lambda argv, timeout=10: CommandResult(tuple(argv), 0, stdout))
    assert ctx.data.containerd_version == want


# --- the phase ---------------------------------------------------------------------------

def test_containerd_restart_only_when_content_changed(root: Path) -> None:
    put(root, CTD)
    ctx = make(root, init=InitConfig(), containerd=(2, 0, 0))
    cri.configure(ctx)
    assert runs(ctx).count("systemctl restart containerd") == 1
    doc = tomllib.loads(read(root, ROOT_PATH))
    assert sandbox(doc) == PAUSE and doc["version"] == 3
    before = tree_snapshot(root)
    again = make(root, init=InitConfig(), containerd=(2, 0, 0))
    cri.configure(again)
    assert "systemctl restart containerd" not in runs(again)
    assert tree_snapshot(root) == before
    newer = make(root, init=InitConfig(cluster=ClusterConfig(kubernetes_version="v1.34.0")), containerd=(2, 0, 0))
    cri.configure(newer)
    assert "systemctl restart containerd" in runs(newer)
    assert sandbox(tomllib.loads(read(root, ROOT_PATH))) == "registry.k8s.io/pause:3.10.1"


def test_user_config_gets_dropin_and_backup_is_kept_for_stub(root: Path) -> None:
    put(root, CTD)
    put(root, ROOT_PATH, USER_V2)
    ctx = make(root, init=InitConfig(), containerd=(1, 7, 22))
    cri.configure(ctx)
    assert (root / DROPIN.lstrip("/")).stat().st_mode & 0o777 == 0o600  # may hold registry credentials
    assert tomllib.loads(read(root, ROOT_PATH))["imports"] == [DROPIN]
    assert "systemctl restart containerd" in runs(ctx)

    other = root / "other"
    other.mkdir()
    put(other, CTD)
    put(other, ROOT_PATH, DOCKER_STUB)
    ctx2 = make(other, init=InitConfig(), containerd=(1, 6, 33))
    cri.configure(ctx2)
    assert read(other, ROOT_PATH + cri.CONTAINERD_BACKUP_SUFFIX) == DOCKER_STUB
    assert "disabled_plugins" not in tomllib.loads(read(other, ROOT_PATH))


def test_crio_dropin_and_restart(root: Path) -> None:
    put(root, CRIO)
    ctx = make(root, init=InitConfig(kubelet_overrides={"cgroupDriver": "cgroupfs"}))
    cri.configure(ctx)
    doc = tomllib.loads(read(root, ctx.paths.crio_dropin))
    assert doc["crio"]["runtime"] == {"cgroup_manager": "cgroupfs", "conmon_cgroup": "pod"}
    assert doc["crio"]["image"]["pause_image"] == PAUSE
    assert "systemctl restart crio" in runs(ctx)
    assert not (root / ROOT_PATH.lstrip("/")).exists()
    again = make(root, init=InitConfig(kubelet_overrides={"cgroupDriver": "cgroupfs"}))
    cri.configure(again)
    assert "systemctl restart crio" not in runs(again)


@pytest.mark.parametrize("sock, needle", [(DOCKERD, "does not configure Docker"), ("/srv/rt.sock", "unknown runtime")])
def test_other_runtimes_get_advice_not_files(root: Path, sock: str, needle: str) -> None:
    put(root, sock)
    ctx = make(root, init=InitConfig(node=NodeRegistration(cri_socket=f"unix://{sock}")))
    cri.configure(ctx)
    assert any(needle in w for w in warnings(ctx))
    assert not any(t.startswith("systemctl restart") for t in runs(ctx))
    crictl = yaml.safe_load(read(root, ctx.paths.crictl_yaml))
    assert crictl["runtime-endpoint"] == crictl["image-endpoint"] == f"unix://{sock}"
    assert crictl["timeout"] == 10


def test_join_uses_stored_pause_image_and_driver(root: Path) -> None:
    put(root, CTD_RUN)
    ctx = make(root, join=JoinConfig(), containerd=(2, 1, 0))
    ctx.data.cluster_pause_image = "mirror.local/pause:3.9"
    ctx.data.cluster_cgroup_driver = "cgroupfs"
    cri.configure(ctx)
    doc = tomllib.loads(read(root, ROOT_PATH))
    assert (sandbox(doc), systemd_cgroup(doc)) == ("mirror.local/pause:3.9", False)
    # Nothing known about the cluster: the default Kubernetes version's pause image.
    assert cri.pause_image_for(make(root, join=JoinConfig())) == PAUSE


def test_bad_cgroup_driver(root: Path) -> None:
    with pytest.raises(ValidationError, match="cgroupDriver: 'cgroupv2'"):
        cri.cgroup_driver_for(make(root, init=InitConfig(kubelet_overrides={"cgroupDriver": "cgroupv2"})))


@pytest.mark.parametrize("loaded, live, want_runs", [
    (False, None, ["modprobe overlay", "modprobe br_netfilter", "sysctl -p /etc/sysctl.d/99-kbootd.conf"]),
    (True, "1", []),
    (True, "0", ["sysctl -p /etc/sysctl.d/99-kbootd.conf"]),
])
def test_kernel_modules_and_sysctls(root: Path, loaded: bool, live: str | None, want_runs: list[str]) -> None:
    ctx = make(root)
    if live is not None:  # a second run: the files are already there
        cri.configure_kernel(make(root))
        for f in (ctx.paths.proc_bridge_nf, cri.PROC_BRIDGE_NF6, ctx.paths.proc_ip_forward):
            put(root, f, live + "\n")
    if loaded:
        for m in cri.MODULES:
            (root / "sys/module" / m).mkdir(parents=True, exist_ok=True)
    cri.configure_kernel(ctx)
    assert runs(ctx) == want_runs
    assert read(root, ctx.paths.modules_load).splitlines()[1:] == ["overlay", "br_netfilter"]
    sysctls = dict(ln.split(" = ") for ln in read(root, ctx.paths.sysctl_conf).splitlines()[1:])
    assert sysctls == {"net.bridge.bridge-nf-call-iptables": "1", "net.bridge.bridge-nf-call-ip6tables": "1",
                       "net.ipv4.ip_forward": "1"}


def test_a_tunable_that_cannot_be_set_is_named(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where /proc/sys is read-only (a container), `sysctl -p` fails: each tunable still
    not at its value is named with its live value and sysctl's reason."""
    ctx = make(root)
    for f in (ctx.paths.proc_bridge_nf, cri.PROC_BRIDGE_NF6):
        put(root, f, "1\n")
    put(root, ctx.paths.proc_ip_forward, "0\n")
    for m in cri.MODULES:
        (root / "sys/module" / m).mkdir(parents=True, exist_ok=True)
    err = "sysctl: setting key \"net.ipv4.ip_forward\": Read-only file system\n"
    seen: list[list[str]] = []

    def run(argv, check=True, timeout=120):
        seen.append(list(argv))
        return CommandResult(tuple(argv), 255, "", err, ran=True)

    monkeypatch.setattr(ctx.host, "run", run)
    cri.configure_kernel(ctx)
    assert seen == [["sysctl", "-p", "/etc/sysctl.d/99-kbootd.conf"]]
    assert warnings(ctx) == ['cannot set net.ipv4.ip_forward = 1 (now 0): sysctl: setting key '
                             '"net.ipv4.ip_forward": Read-only file system; set it where the kernel '
                             'allows it (the host of a container)']


def test_spec_20_cri_dropin_is_warned_about_never_written(root: Path) -> None:
    put(root, CTD)
    spec = ('[Service]\nEnvironment="KUBELET_EXTRA_ARGS=--container-runtime=remote '
            '--container-runtime-endpoint=unix:///var/run/crio/crio.sock --feature-gates=AllAlpha=true"\n')
    put(root, "/etc/systemd/system/kubelet.service.d/20-cri.conf", spec)
    ctx = make(root, init=InitConfig())
    cri.configure(ctx)
    assert any("20-cri.conf" in w and "--container-runtime: removed in v1.27" in w for w in warnings(ctx))
    assert read(root, "/etc/systemd/system/kubelet.service.d/20-cri.conf") == spec
    clean = root / "clean"
    clean.mkdir()
    ctx2 = make(clean, init=InitConfig(node=NodeRegistration(cri_socket=f"unix://{CTD}")))
    cri.configure(ctx2)
    assert not (clean / "etc/systemd/system/kubelet.service.d").exists()
    assert not any("20-cri.conf" in w for w in warnings(ctx2))


def test_dry_run_writes_nothing_and_runs_nothing(root: Path) -> None:
    put(root, CTD)
    put(root, ROOT_PATH, DOCKER_STUB)
    before = tree_snapshot(root)
    ctx = make(root, init=InitConfig(), dry_run=True)
    cri.configure(ctx)
    assert tree_snapshot(root) == before
    out = ctx.reporter.text()
    assert "[dryrun] Would run: systemctl restart containerd" in out
    assert f'[dryrun] Would write file "{ROOT_PATH}{cri.CONTAINERD_BACKUP_SUFFIX}"' in out
    assert "content not shown" in out  # the backup may hold credentials
    assert "[host] Would run" not in out
