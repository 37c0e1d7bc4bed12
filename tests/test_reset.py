import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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


# --- remove-etcd-member against a stand-in of etcd's v3 JSON gateway -------------------------------


class FakeEtcd:
    """HTTPS on 127.0.0.1 with etcd's certs from a kbootd init: member/list and member/remove."""

    def __init__(self, pki, members):
        self.members = members
        self.removed: list[str] = []
        self.client_cns: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                fake.client_cns.append(dict(x[0] for x in self.connection.getpeercert()["subject"])["commonName"])
                if self.path == "/v3/cluster/member/list":
                    out = {"members": fake.members}
                elif self.path == "/v3/cluster/member/remove":
                    fake.removed.append(body["ID"])
                    fake.members = [m for m in fake.members if m["ID"] != body["ID"]]
                    out = {"members": fake.members}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(out).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pki / "etcd/server.crt", pki / "etcd/server.key")
        ctx.load_verify_locations(pki / "etcd/ca.crt")
        ctx.verify_mode = ssl.CERT_REQUIRED
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def initialised(root):
    from kbootd.config.load import load_file
    from kbootd.phases import INIT, INIT_LOCAL
    from tests.keycache import cached_keys

    text = ("apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n"
            "localAPIEndpoint: {advertiseAddress: 10.0.0.10}\nnodeRegistration: {name: cp-1}\n")
    with cached_keys():
        engine.run("init", load_file("k.yaml", "init", print, text=text), reporter=RecordingReporter(),
                   root=str(root), ignore_preflight_errors=("all",),
                   skip_phases=tuple(p.name for p in INIT if p.name not in INIT_LOCAL))
    return root


@pytest.mark.parametrize("members,removed,message", [
    ([{"ID": "11", "name": "cp-1"}, {"ID": "22", "name": "cp-2"}], ["11"], "Removed etcd member 'cp-1' (ID 11)"),
    ([{"ID": "11", "name": "cp-1"}], [], "the only etcd member"),
    ([{"ID": "22", "name": "cp-2"}, {"ID": "33", "name": "cp-3"}], [], "no member named 'cp-1'"),
])
def test_remove_etcd_member(initialised, members, removed, message):
    etcd = FakeEtcd(initialised / "etc/kubernetes/pki", members)
    try:
        rep = RecordingReporter()
        engine.run_reset(ResetOptions(force=True, remove_node=True, cri_socket=SOCK, etcd_endpoint=etcd.url,
                                      node_name="cp-1"),
                         reporter=rep, root=str(initialised), only="remove-etcd-member")
    finally:
        etcd.close()
    assert etcd.removed == removed
    assert message in rep.text()
    assert set(etcd.client_cns) == {"kube-apiserver-etcd-client"}  # authenticated as kubeadm does


def test_remove_etcd_member_is_opt_in(initialised):
    rep = RecordingReporter()
    engine.run_reset(ResetOptions(force=True, cri_socket=SOCK, etcd_endpoint="https://127.0.0.1:9"),
                     reporter=rep, root=str(initialised), only="remove-etcd-member")
    assert ("skipped", "remove-etcd-member", "pass --remove-node to remove this node's etcd member") in rep.events
