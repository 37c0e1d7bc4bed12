import pytest

from kbootd import engine
from kbootd.errors import KbootdError
from kbootd.report import RecordingReporter
from kbootd.reset import ResetOptions
from tests.conftest import tree_snapshot

SOCK = "unix:///run/containerd/containerd.sock"


def populate(root, etcd=True):
    files = ["etc/kubernetes/admin.conf", "etc/kubernetes/kubelet.conf", "etc/kubernetes/pki/ca.key",
             "etc/kubernetes/pki/etcd/ca.crt", "etc/kubernetes/manifests/kube-apiserver.yaml",
             "var/lib/kubelet/config.yaml", "var/lib/kubelet/pki/kubelet.crt", "var/lib/etcd/member/wal",
             "etc/systemd/system/kubelet.service.d/10-kbootd.conf", "etc/crictl.yaml",
             "var/lib/kbootd/state.json", "etc/cni/net.d/10-flannel.conflist", "etc/hostname"]
    if etcd:
        files.append("etc/kubernetes/manifests/etcd.yaml")
    for f in files:
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        (root / f).write_text("x")
    (root / "proc").mkdir()
    (root / "proc/mounts").write_text(
        "tmpfs /var/lib/kubelet/pods/abc/volumes/kubernetes.io~projected/kube-api-access tmpfs rw 0 0\n"
        "/dev/vda / ext4 rw 0 0\n"
        "tmpfs /var/lib/kubelet/pods/abc tmpfs rw 0 0\n")


def reset(root, **kw):
    rep = RecordingReporter()
    opts = ResetOptions(cri_socket=SOCK, force=True, **kw)
    ctx = engine.run_reset(opts, reporter=rep, root=str(root))
    return ctx, rep


def test_reset_removes_state_keeps_dirs_and_cni(root):
    populate(root)
    ctx, rep = reset(root)
    left = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    assert left == {"etc/cni/net.d/10-flannel.conflist", "etc/hostname", "proc/mounts"}
    for d in ("etc/kubernetes/manifests", "etc/kubernetes/pki", "var/lib/kubelet", "var/lib/etcd"):
        assert (root / d).is_dir()
    cmds = [a.target for a in ctx.host.actions if a.kind == "run"]
    assert cmds[:2] == ["systemctl stop kbootd", "systemctl stop kubelet"]
    # children unmounted before their parents
    assert cmds[2:4] == ["umount '/var/lib/kubelet/pods/abc/volumes/kubernetes.io~projected/kube-api-access'",
                         "umount /var/lib/kubelet/pods/abc"]
    assert f"crictl --runtime-endpoint {SOCK} pods --quiet" in cmds
    assert cmds[-1] == "systemctl daemon-reload"
    text = rep.text()
    assert "/etc/cni/net.d" in text and "iptables -F" in text and "$HOME/.kube/config" in text


def test_etcd_data_kept_without_local_etcd_manifest(root):
    populate(root, etcd=False)
    reset(root)
    assert (root / "var/lib/etcd/member/wal").exists()


def test_dry_run_changes_nothing(root):
    populate(root)
    before = tree_snapshot(root)
    rep = RecordingReporter()
    engine.run_reset(ResetOptions(cri_socket=SOCK), reporter=rep, root=str(root), dry_run=True)
    assert tree_snapshot(root) == before
    assert 'Would remove "/etc/kubernetes/admin.conf"' in rep.text()


def test_confirmation_required_without_force(root, monkeypatch):
    populate(root)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with pytest.raises(KbootdError, match="--force"):
        engine.run_reset(ResetOptions(cri_socket=SOCK), reporter=RecordingReporter(), root=str(root))
    assert (root / "etc/kubernetes/admin.conf").exists()


def test_cli_phase_reset_lists_and_runs_one(root, run_cli):
    populate(root)
    rc, out, _ = run_cli("phase", "reset")
    assert rc == 0 and "cleanup-node" in out and "remove-node" in out
    rc, out, err = run_cli("phase", "reset", "cleanup-node", "--root", str(root), "--cri-socket", SOCK)
    assert rc == 0, err
    assert not (root / "etc/kubernetes/admin.conf").exists()
