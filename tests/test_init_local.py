"""init's node-local half end to end in a temp root: files, modes, idempotence, crash/resume, dry-run, reset."""


import pytest

from kbootd import engine, workflow
from kbootd.config.load import load_file
from kbootd.phases import INIT, INIT_LOCAL
from kbootd.report import RecordingReporter
from kbootd.reset import ResetOptions
from tests.conftest import tree_snapshot
from tests.keycache import cached_keys
from tests.shared import INIT_BASIC

FIXTURE = INIT_BASIC / "config.yaml"
CFG_TEXT = """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint: {advertiseAddress: 10.0.0.10}
nodeRegistration: {name: cp-1, criSocket: unix:///run/containerd/containerd.sock}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
networking: {podSubnet: 10.244.0.0/16}
"""
EXPECTED = {
    "etc/kubernetes/pki/ca.key": 0o600, "etc/kubernetes/pki/ca.crt": 0o644,
    "etc/kubernetes/pki/apiserver.key": 0o600, "etc/kubernetes/pki/etcd/server.key": 0o600,
    "etc/kubernetes/pki/sa.key": 0o600, "etc/kubernetes/admin.conf": 0o600,
    "etc/kubernetes/super-admin.conf": 0o600, "etc/kubernetes/kubelet.conf": 0o600,
    "etc/kubernetes/controller-manager.conf": 0o600, "etc/kubernetes/scheduler.conf": 0o600,
    "etc/kubernetes/manifests/kube-apiserver.yaml": 0o600, "etc/kubernetes/manifests/etcd.yaml": 0o600,
    "var/lib/kubelet/config.yaml": 0o644, "var/lib/kubelet/kubeadm-flags.env": 0o644,
    "etc/systemd/system/kubelet.service.d/10-kbootd.conf": 0o644, "etc/crictl.yaml": 0o644,
    "etc/kubernetes/pki/": 0o700, "etc/kubernetes/pki/etcd/": 0o700,
}
LOCAL = list(INIT_LOCAL)
# This file is about the node-local half: no API server here.
CLUSTER = tuple(p.name for p in INIT if p.name not in INIT_LOCAL)


@pytest.fixture(autouse=True)
def _fast_keys():
    with cached_keys():
        yield


def cfg():
    return load_file("kubeadm.yaml", "init", print, text=CFG_TEXT)


def init(root, **kw):
    rep = RecordingReporter()
    kw.setdefault("ignore_preflight_errors", ("all",))  # the test machine is not a cluster node
    kw.setdefault("skip_phases", CLUSTER)
    ctx = engine.run("init", cfg(), reporter=rep, root=str(root), **kw)
    return ctx, rep


def test_init_writes_every_file_with_its_mode(root):
    ctx, rep = init(root)
    snap = tree_snapshot(root)
    for path, mode in EXPECTED.items():
        assert path in snap, path
        assert snap[path][0] == mode, path
    assert ctx.data.ca_pin.startswith("sha256:")
    assert ctx.data.endpoint == "10.0.0.10:6443"
    assert "PRIVATE KEY" not in rep.text()


def test_second_run_changes_nothing_and_restarts_nothing(root):
    init(root)
    before = tree_snapshot(root)
    ctx, rep = init(root)
    assert tree_snapshot(root) == before
    runs = [a.target for a in ctx.host.actions if a.kind == "run"]
    assert "systemctl restart kubelet" not in runs
    assert "Using existing ca certificate authority" in rep.text()


@pytest.mark.parametrize("crash_after", range(len(LOCAL)))
def test_crash_after_each_phase_then_rerun_converges(root, crash_after):
    # Run the phases up to the crash point, then the whole init again.
    from kbootd.context import make_context

    ctx = make_context(root=str(root), reporter=RecordingReporter(), init=cfg(), ignore_preflight_errors=("all",))
    for name in LOCAL[: crash_after + 1]:
        workflow.run(INIT, ctx, only=name)
    ca_before = (root / "etc/kubernetes/pki/ca.crt").read_bytes() if (root / "etc/kubernetes/pki/ca.crt").exists() else None
    init(root)
    snap = tree_snapshot(root)
    assert set(EXPECTED) <= set(snap)
    if ca_before is not None:
        assert (root / "etc/kubernetes/pki/ca.crt").read_bytes() == ca_before  # never regenerated
    # A third run is a no-op: converged.
    init(root)
    assert tree_snapshot(root) == snap


def test_dry_run_writes_nothing_and_prints_no_secret(root):
    before = tree_snapshot(root)
    ctx, rep = init(root, dry_run=True)
    assert tree_snapshot(root) == before
    text = rep.text()
    assert '[dryrun] Would write file "/etc/kubernetes/manifests/kube-apiserver.yaml"' in text
    assert "PRIVATE KEY" not in text and "client-key-data" not in text
    assert "Would run: systemctl restart kubelet" in text


def test_init_reset_init_gives_a_new_ca(root):
    init(root)
    first = (root / "etc/kubernetes/pki/ca.crt").read_bytes()
    engine.run_reset(ResetOptions(force=True, cri_socket="unix:///run/containerd/containerd.sock"),
                     reporter=RecordingReporter(), root=str(root))
    assert not (root / "etc/kubernetes/pki/ca.crt").exists()
    init(root)
    assert (root / "etc/kubernetes/pki/ca.crt").read_bytes() != first


def test_fixture_config_runs(root):
    rep = RecordingReporter()
    engine.run("init", load_file(str(FIXTURE), "init", print), reporter=rep, root=str(root),
               ignore_preflight_errors=("all",), skip_phases=CLUSTER)
    assert (root / "etc/kubernetes/manifests/kube-apiserver.yaml").exists()


def test_cli_full_dry_run_prints_objects_and_join_command_without_secrets(root, run_cli, tmp_path):
    conf = tmp_path / "k.yaml"
    conf.write_text(CFG_TEXT.replace("kind: InitConfiguration\n",
                                     "kind: InitConfiguration\nbootstrapTokens: [{token: abcdef.0123456789abcdef}]\n"))
    before = tree_snapshot(root)
    rc, out, err = run_cli("init", "--dry-run", "--root", str(root), "--config", str(conf),
                           "--ignore-preflight-errors=all")
    assert rc == 0, err
    assert tree_snapshot(root) == before
    assert "0123456789abcdef" not in out + err
    assert "MDEyMzQ1Njc4OWFiY2RlZg" not in out + err  # nor its base64 in the Secret
    assert 'Would perform action CREATE on resource "secrets"' in out
    assert "kbootd join 10.0.0.10:6443 --token abcdef.<redacted>" in out
    assert "--discovery-token-ca-cert-hash sha256:" in out
