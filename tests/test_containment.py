"""--root containment (issue 11 #3): every host path resolves inside the root as in a chroot
(absolute symlinks start again at the root, `..` is clamped there); relative or escaping path
settings are refused (exit 3, naming the flag or field); nothing outside the root is touched.

Every victim here is a directory of the test's own outside the root, never the machine's
/run or /etc: a failing test must not damage the host.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import pytest

from kbootd import workflow
from kbootd.cli.main import main
from kbootd.hostio import Host
from kbootd.paths import Paths, PathSettingError
from tests.conftest import tree_snapshot
from tests.test_crash import CLUSTER_HALF, CONFIG


def cli(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, err.getvalue()


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """tmp/a/b/R (the root) and tmp/victim (outside it, with a kubernetes dir and files)."""
    root = tmp_path / "a/b/R"
    root.mkdir(parents=True)
    victim = tmp_path / "victim"
    for d in ("", "kubernetes", "pki", "etcd"):
        (victim / d).mkdir(parents=True, exist_ok=True)
        (victim / d / "precious").write_text("keep me\n")
    (tmp_path / "a/victim").mkdir()
    (tmp_path / "a/victim/precious").write_text("keep me\n")
    return root, victim


def snap(tmp_path: Path) -> dict:
    return {k: v for k, v in tree_snapshot(tmp_path).items() if not k.startswith("a/b/R")}


# --- the resolver ---------------------------------------------------------------------------------

def test_absolute_symlinks_resolve_inside_the_root(tmp_path: Path) -> None:
    (tmp_path / "var").mkdir()
    os.symlink("/run", tmp_path / "var/run")  # as on every Debian image
    p = Paths.rooted(tmp_path)
    assert p.at("/var/run/kubernetes") == tmp_path / "run/kubernetes"
    assert p.at("/var/run", follow=False) == tmp_path / "var/run"


def test_dotdot_in_symlinks_is_clamped_at_the_root(tmp_path: Path) -> None:
    (tmp_path / "etc/kubernetes").mkdir(parents=True)
    os.symlink("../../../../../../../victim", tmp_path / "etc/kubernetes/pki")
    os.symlink("/etc/kubernetes/../x", tmp_path / "link")
    os.symlink("/etc/kubernetes/pki/../../../x", tmp_path / "link2")  # pki is /victim: .. of it is /
    p = Paths.rooted(tmp_path)
    assert p.at("/etc/kubernetes/pki/ca.key") == tmp_path / "victim/ca.key"
    assert p.at("/link/y") == tmp_path / "etc/x/y"
    assert p.at("/link2/y") == tmp_path / "x/y"


def test_a_symlink_loop_is_an_error(tmp_path: Path) -> None:
    os.symlink("/b", tmp_path / "a")
    os.symlink("/a", tmp_path / "b")
    with pytest.raises(PathSettingError.__mro__[1], match="too many levels"):
        Paths.rooted(tmp_path).at("/a/x")


@pytest.mark.parametrize("bad", ["etc/kubernetes", "", "/../victim", "/etc/../../victim", "/a/../../b"])
def test_relative_or_escaping_host_paths_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(PathSettingError):
        Paths.rooted(tmp_path).at(bad)


def test_remove_never_follows_a_symlink_out(tmp_path: Path) -> None:
    root, outside = tmp_path / "R", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "f").write_text("x")
    os.symlink(str(outside), root / "link")  # absolute host path: means R/<outside> inside the root
    host = Host(Paths.rooted(root), say=lambda s: None)
    assert host.remove("/link") is True
    assert (outside / "f").exists() and not (root / "link").is_symlink()


# --- reset ------------------------------------------------------------------------------------------

def test_reset_cert_dir_climbing_out_is_refused(tmp_path: Path, layout) -> None:  # noqa: ANN001
    root, _ = layout
    before = snap(tmp_path)
    code, err = cli("reset", "-f", "--root", str(root), "--cert-dir", "/../../victim")
    assert code == 3, err
    assert "--cert-dir: '/../../victim': the path climbs above /" in err
    assert snap(tmp_path) == before


def test_reset_follows_symlinks_only_inside_the_root(tmp_path: Path, layout) -> None:  # noqa: ANN001
    root, victim = layout
    (root / "var").mkdir()
    os.symlink(str(victim), root / "var/run")  # an absolute link: R/<victim>, not the victim
    (root / "etc/kubernetes").mkdir(parents=True)
    os.symlink(str(victim / "pki"), root / "etc/kubernetes/pki")
    os.symlink("../../../../../../../../..", root / "var/lib")  # clamped: R itself
    inside = root / str(victim).lstrip("/")
    (inside / "kubernetes").mkdir(parents=True)
    (inside / "pki").mkdir(parents=True)
    (inside / "pki/ca.crt").write_text("rooted")
    before = snap(tmp_path)
    code, err = cli("reset", "-f", "--root", str(root))
    assert code == 0, err
    assert snap(tmp_path) == before
    assert not (inside / "kubernetes").exists()  # /var/run/kubernetes, inside the root
    assert not (inside / "pki/ca.crt").exists()  # /etc/kubernetes/pki, emptied inside the root


# --- init -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("field,value,named", [
    ("certificatesDir", "/../../victim", "certificatesDir"),
    ("certificatesDir", "etc/pki", "certificatesDir"),
    ("etcd", "{local: {dataDir: /var/lib/../../../victim/etcd}}", "etcd.local.dataDir"),
    ("etcd", "{local: {dataDir: var/lib/etcd}}", "etcd.local.dataDir"),
    ("etcd", "{external: {endpoints: [https://e:2379], caFile: /../victim/ca.crt, certFile: /c, keyFile: /k}}",
     "etcd.external.caFile"),
])
def test_init_refuses_escaping_path_settings(tmp_path: Path, layout, field: str, value: str,  # noqa: ANN001
                                             named: str) -> None:
    root, _ = layout
    cfg = tmp_path / "kubeadm.yaml"
    cfg.write_text(CONFIG + f"{field}: {value}\n")
    before = snap(tmp_path)
    code, err = cli("init", "--config", str(cfg), "--root", str(root), "--skip-phases", CLUSTER_HALF,
                    "--ignore-preflight-errors", "all")
    assert code == 3, err
    assert named in err and "error" in err
    assert {k: v for k, v in snap(tmp_path).items() if k != "kubeadm.yaml"} == \
        {k: v for k, v in before.items() if k != "kubeadm.yaml"}
    assert not any(root.rglob("*.key"))


def test_init_cert_dir_flag_climbing_out_is_refused(tmp_path: Path, layout) -> None:  # noqa: ANN001
    root, _ = layout
    code, err = cli("init", "--root", str(root), "--cert-dir", "/../../victim", "--ignore-preflight-errors", "all",
                    "--skip-phases", CLUSTER_HALF)
    assert code == 3 and "--cert-dir" in err, err


def test_init_writes_through_symlinks_only_inside_the_root(tmp_path: Path, layout) -> None:  # noqa: ANN001
    root, victim = layout
    (root / "etc").mkdir()
    os.symlink(str(victim / "kubernetes"), root / "etc/kubernetes")
    (root / "var/lib").mkdir(parents=True)
    os.symlink(str(victim / "etcd"), root / "var/lib/etcd")
    os.symlink("/../../../..", root / "var/lib/kubelet")  # clamped at R
    cfg = tmp_path / "kubeadm.yaml"
    cfg.write_text(CONFIG)
    before = snap(tmp_path)
    code, err = cli("init", "--config", str(cfg), "--root", str(root), "--skip-phases", CLUSTER_HALF,
                    "--ignore-preflight-errors", "all")
    assert code == 0, err
    assert snap(tmp_path) == before
    inside = root / str(victim).lstrip("/")
    assert (inside / "kubernetes/pki/ca.key").is_file()
    assert (inside / "kubernetes/manifests/etcd.yaml").is_file()
    assert (root / "config.yaml").is_file()  # /var/lib/kubelet -> / (clamped) -> R
    # a second run reads back through the same links and converges
    assert cli("init", "--config", str(cfg), "--root", str(root), "--skip-phases", CLUSTER_HALF,
               "--ignore-preflight-errors", "all")[0] == 0


# --- join -------------------------------------------------------------------------------------------

def test_join_discovery_file_outside_the_root_is_not_read(tmp_path: Path, layout) -> None:  # noqa: ANN001
    root, victim = layout
    (victim / "discovery.conf").write_text("apiVersion: v1\nkind: Config\n")
    (root / "etc").mkdir()
    os.symlink(str(victim / "discovery.conf"), root / "etc/discovery.conf")
    code, err = cli("join", "--root", str(root), "--discovery-file", "/etc/discovery.conf", "--token",
                    "abcdef.0123456789abcdef", "--skip-phases", "preflight,cri", "--discovery-timeout", "1s")
    assert code != 0
    assert "/etc/discovery.conf: no such file" in err, err
    code, err = cli("join", "--root", str(root), "--discovery-file", "/../victim/discovery.conf", "--token",
                    "abcdef.0123456789abcdef")
    assert code == 3 and "--discovery-file" in err, err


def test_join_host_writes_stay_inside_the_root(tmp_path: Path, layout) -> None:  # noqa: ANN001
    from tests.apiserver import TestAPIServer
    from tests.test_join_support import init_control_plane, join_context, pinned, wait_signed

    root, victim = layout
    (root / "etc").mkdir()
    os.symlink(str(victim / "kubernetes"), root / "etc/kubernetes")
    os.symlink(str(victim), root / "etc/systemd")
    os.symlink(str(victim / "precious"), root / "etc/crictl.yaml")
    with TestAPIServer() as srv:
        init_control_plane(srv, tmp_path / "cp")
        wait_signed(srv)
        before = snap(tmp_path)
        workflow.run(workflow_join(), join_context(root, pinned(srv)), skip=("wait-tls-bootstrap",))
    after = snap(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith("cp/")} == \
        {k: v for k, v in before.items() if not k.startswith("cp/")}
    inside = root / str(victim).lstrip("/")
    assert (inside / "kubernetes/bootstrap-kubelet.conf").is_file()
    assert (inside / "system/kubelet.service.d/10-kbootd.conf").is_file()
    assert (inside / "precious").is_file()  # /etc/crictl.yaml, written through the link inside the root


def workflow_join():
    from kbootd.phases import JOIN

    return JOIN


@pytest.mark.parametrize("argv,named", [
    (["reset", "-f", "--kubeconfig", "/../victim/admin.conf", "--remove-node"], "--kubeconfig"),
    (["reset", "-f", "--kubeconfig", "admin.conf"], "--kubeconfig"),
])
def test_reset_path_flags_are_checked(tmp_path: Path, layout, argv: list[str], named: str) -> None:  # noqa: ANN001
    root, _ = layout
    before = snap(tmp_path)
    code, err = cli(*argv, "--root", str(root))
    assert code == 3 and named in err, err
    assert snap(tmp_path) == before


def test_kube_kubernetes_dir_climbing_out_is_refused(tmp_path: Path, layout, monkeypatch) -> None:  # noqa: ANN001
    root, _ = layout
    monkeypatch.setenv("KUBE_KUBERNETES_DIR", "/../../victim")
    code, err = cli("init", "--root", str(root), "--ignore-preflight-errors", "all", "--skip-phases", CLUSTER_HALF)
    assert code == 3 and "KUBE_KUBERNETES_DIR" in err, err
    assert not (root / "etc").exists()
