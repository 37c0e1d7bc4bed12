"""The whole join (discovery, cri, preflight, kubelet-start, wait-tls-bootstrap) against the test
API server, with tests/kubelet_double.py playing the kubelet's TLS bootstrap.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from kbootd import workflow
from kbootd.errors import PhaseError
from kbootd.phases import JOIN as PHASES
from kbootd.pin import pin_of
from tests.apiserver import TestAPIServer
from tests.conftest import tree_snapshot
from tests.kubelet_double import KubeletDouble
from tests.test_join_support import (
    NODE,
    SECRET,
    SOCKET,
    TOKEN,
    WRONG_SECRET_TOKEN,
    Background,
    RawReporter,
    init_control_plane,
    join_config,
    join_context,
    pinned,
    wait_signed,
)

ANNOTATION = "kubeadm.alpha.kubernetes.io/cri-socket"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[TestAPIServer]:
    with TestAPIServer() as srv:
        init_control_plane(srv, tmp_path / "cp")
        wait_signed(srv)
        yield srv


@pytest.fixture
def kubelet(root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[KubeletDouble]:
    dbl = KubeletDouble(root, NODE)
    with dbl.install(monkeypatch):
        yield dbl


def requests_by(srv: TestAPIServer, user: str) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in srv.requests if r.user == user]


def test_join_end_to_end(cluster: TestAPIServer, root: Path, kubelet: KubeletDouble) -> None:
    ctx = join_context(root, pinned(cluster))
    workflow.run(PHASES, ctx)
    kubelet.wait()
    # The kubelet got bootstrap-kubelet.conf as kubeadm writes it, mode 0600.
    boot = kubelet.bootstrap_conf
    assert kubelet.bootstrap_conf_mode == 0o600
    assert (boot.server, boot.ca_pem, boot.token, boot.user_name) == (cluster.url, cluster.ca_pem, TOKEN,
                                                                      "tls-bootstrap-token-user")
    # ... and join removed it once the TLS bootstrap was done (the token leaves the disk).
    assert not (root / "etc/kubernetes/bootstrap-kubelet.conf").exists()
    snap = tree_snapshot(root)
    assert snap["etc/kubernetes/pki/ca.crt"] == (0o644, cluster.ca_pem)
    kubelet_cfg = yaml.safe_load(snap["var/lib/kubelet/config.yaml"][1])
    assert kubelet_cfg["kind"] == "KubeletConfiguration" and kubelet_cfg["cgroupDriver"] == "systemd"
    flags = snap["var/lib/kubelet/kubeadm-flags.env"][1].decode()
    assert f"--container-runtime-endpoint={SOCKET}" in flags and "--pod-infra-container-image=" in flags
    assert ("run", "systemctl restart kubelet") in [(a.kind, a.target) for a in ctx.host.actions]
    # The cluster's configuration was read with the bootstrap token, the annotation written by the node itself.
    assert ("GET", "/api/v1/namespaces/kube-system/configmaps/kubelet-config") in \
        requests_by(cluster, "system:bootstrap:abcdef")
    assert ("GET", "/api/v1/nodes/worker-1") in requests_by(cluster, "system:bootstrap:abcdef")
    assert ("PATCH", "/api/v1/nodes/worker-1") in requests_by(cluster, "system:node:worker-1")
    node = cluster.store.get("nodes", NODE)
    assert node["metadata"]["annotations"][ANNOTATION] == SOCKET
    csrs = cluster.store.list("certificatesigningrequests")
    assert [c["metadata"]["name"] for c in csrs] == [kubelet.csr_name]
    out = ctx.reporter.stdout.getvalue()
    assert "This node has joined the cluster:" in out
    assert "Run 'kubectl get nodes' on the control-plane to see this node join the cluster." in out
    assert SECRET not in ctx.reporter.text()


def test_manual_csr_approval_blocks_the_join_until_an_admin_approves(tmp_path: Path, root: Path,
                                                                     kubelet: KubeletDouble) -> None:
    from kubernetes import client as k8s

    with TestAPIServer() as srv:
        init_control_plane(srv, tmp_path / "cp", auto_approve=False)
        wait_signed(srv)
        kubelet.timeout = 30
        ctx = join_context(root, pinned(srv, tls_bootstrap=30))
        job = Background(lambda: workflow.run(PHASES, ctx))
        rep: RawReporter = ctx.reporter
        srv.wait_for(lambda: "is waiting for approval" in rep.text(), timeout=15)
        name = kubelet.csr_name
        assert name and name.startswith("csr-")
        text = rep.text()
        assert f'certificate signing request "{name}" (node "worker-1") is waiting for approval' in text
        assert "`kubectl get csr`" in text and f"`kubectl certificate approve {name}`" in text
        polls = len(rep.retries)
        srv.wait_for(lambda: len(rep.retries) >= polls + 2, timeout=15)  # two more polls, still pending
        # Said once, not at every poll (the retry lines carry the state in short).
        assert rep.text().count('(node "worker-1") is waiting for approval') == 1
        assert job.running and not (root / "etc/kubernetes/kubelet.conf").exists()
        assert any("is waiting for approval" in c for c in rep.causes())
        admin = srv.api_client("admin")
        certs = k8s.CertificatesV1Api(admin)
        body = admin.sanitize_for_serialization(certs.read_certificate_signing_request(name))
        body["status"]["conditions"] = [{"type": "Approved", "status": "True", "reason": "KubectlApprove",
                                         "message": "This CSR was approved by kubectl certificate approve."}]
        certs.replace_certificate_signing_request_approval(name, body)
        job.result(timeout=30)
        kubelet.wait()
        assert srv.store.get("nodes", NODE)["metadata"]["annotations"][ANNOTATION] == SOCKET
    assert "This node has joined the cluster:" in rep.stdout.getvalue()


def test_dry_run_writes_and_creates_nothing_and_prints_no_secret(cluster: TestAPIServer, root: Path,
                                                                 kubelet: KubeletDouble) -> None:
    ctx = join_context(root, pinned(cluster), dry_run=True)
    before = tree_snapshot(root)
    objects = {k: len(cluster.store.list(k)) for k in ("nodes", "certificatesigningrequests")}
    workflow.run(PHASES, ctx)  # nothing runs on after it returns: the kubelet is never started
    assert tree_snapshot(root) == before
    assert {k: len(cluster.store.list(k)) for k in objects} == objects
    assert {r.method for r in cluster.requests if r.user.startswith("system:bootstrap")} <= {"GET"}
    assert kubelet.starts == 0
    text = ctx.reporter.text()
    assert SECRET not in text and "0123456789abcdef" not in text
    assert '[dryrun] Would write file "/etc/kubernetes/bootstrap-kubelet.conf" (mode 0600); content not shown' \
        in text
    assert "[dryrun] Would run: systemctl restart kubelet" in text
    assert "[dryrun] Would wait for the kubelet to perform the TLS Bootstrap" in text


def test_an_existing_ready_node_of_the_same_name_is_refused(cluster: TestAPIServer, root: Path,
                                                            kubelet: KubeletDouble) -> None:
    cluster.store.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE},
                          "status": {"conditions": [{"type": "Ready", "status": "True"}]}}, manager="kubelet")
    ctx = join_context(root, pinned(cluster))
    with pytest.raises(PhaseError) as e:
        workflow.run(PHASES, ctx)
    assert e.value.phase == "kubelet-start"
    assert 'a Node with name "worker-1" and status "Ready" already exists in the cluster' in str(e.value)
    assert kubelet.starts == 0 and not (root / "etc/kubernetes/bootstrap-kubelet.conf").exists()


def test_an_existing_node_that_is_not_ready_is_taken_over(cluster: TestAPIServer, root: Path,
                                                          kubelet: KubeletDouble) -> None:
    cluster.store.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE},
                          "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}, manager="kubelet")
    workflow.run(PHASES, join_context(root, pinned(cluster)))
    kubelet.wait()


def test_rerunning_join_on_the_joined_node_converges(cluster: TestAPIServer, root: Path,
                                                     kubelet: KubeletDouble) -> None:
    kubelet.ready = True
    workflow.run(PHASES, join_context(root, pinned(cluster)))
    kubelet.wait()
    assert cluster.store.get("nodes", NODE)["status"]["conditions"][0]["status"] == "True"
    ctx = join_context(root, pinned(cluster))
    workflow.run(PHASES, ctx)
    assert "continuing a join that already happened" in ctx.reporter.text()
    assert len(cluster.store.list("certificatesigningrequests")) == 1
    assert kubelet.starts == 1  # nothing changed: the kubelet was not restarted


def test_no_kubelet_times_out_with_a_hint_and_removes_the_bootstrap_token(cluster: TestAPIServer,
                                                                          root: Path) -> None:
    ctx = join_context(root, pinned(cluster, tls_bootstrap=0.5))
    with pytest.raises(PhaseError) as e:
        workflow.run(PHASES, ctx)
    err = e.value
    assert err.phase == "wait-tls-bootstrap" and err.exit_code == 5
    assert "has not written /etc/kubernetes/kubelet.conf yet" in str(err)
    assert "journalctl -xeu kubelet" in err.hint
    assert not (root / "etc/kubernetes/bootstrap-kubelet.conf").exists()


def test_separate_tls_bootstrap_token(cluster: TestAPIServer, root: Path, kubelet: KubeletDouble,
                                      tmp_path: Path) -> None:
    from kbootd.cluster import admin_client, tokens
    from kbootd.token import BootstrapToken

    cp = init_control_plane(cluster, tmp_path / "cp2", token=None)
    tokens.create_token(admin_client(cp), BootstrapToken.parse("tlsboo.0123456789abcdef"),
                        usages=("authentication",))
    ctx = join_context(root, pinned(cluster, tls_token="tlsboo.0123456789abcdef"))
    workflow.run(PHASES, ctx)
    kubelet.wait()
    assert kubelet.bootstrap_conf.token == "tlsboo.0123456789abcdef"
    csr = cluster.store.list("certificatesigningrequests")[0]
    assert csr["spec"]["username"] == "system:bootstrap:tlsboo"


# --- through the CLI ---------------------------------------------------------------------------------

@pytest.fixture
def cli_join() -> None:
    """The CLI runs kbootd.phases.JOIN (kept as a fixture so the tests read as before)."""


def _cli_args(root: Path, srv: TestAPIServer, token: str, *extra: str) -> list[str]:
    return ["join", srv.server_address, "--token", token, "--discovery-token-ca-cert-hash", pin_of(srv.ca_pem),
            "--root", str(root), "--node-name", NODE, "--cri-socket", SOCKET, "--skip-phases", "preflight",
            "--discovery-timeout", "5s", *extra]


def test_cli_wrong_token_exits_4_without_the_secret(cluster: TestAPIServer, root: Path, run_cli,
                                                    cli_join: None) -> None:
    code, out, err = run_cli(*_cli_args(root, cluster, WRONG_SECRET_TOKEN))
    assert code == 4
    assert "JWS signature of cluster-info for token id 'abcdef' does not verify" in err
    assert "0000000000000000" not in out + err
    assert not (root / "etc/kubernetes/bootstrap-kubelet.conf").exists()


def test_cli_join(cluster: TestAPIServer, root: Path, run_cli, cli_join: None, kubelet: KubeletDouble) -> None:
    code, out, err = run_cli(*_cli_args(root, cluster, TOKEN))
    assert code == 0, err
    kubelet.wait()
    assert "This node has joined the cluster:" in out
    assert SECRET not in out + err


def test_cli_unreachable_exits_5_naming_the_last_cause(root: Path, run_cli, cli_join: None) -> None:
    from tests.test_join_support import free_port

    port = free_port()
    code, out, err = run_cli("join", f"127.0.0.1:{port}", "--token", TOKEN,
                             "--discovery-token-unsafe-skip-ca-verification", "--root", str(root), "--node-name",
                             NODE, "--cri-socket", SOCKET, "--skip-phases", "preflight", "--discovery-timeout", "1s")
    assert code == 5
    assert f"last error: waiting for https://127.0.0.1:{port}: connection refused" in err
    assert f"[discovery] waiting for https://127.0.0.1:{port}: connection refused, attempt 1, next in" in out
    assert SECRET not in out + err


def test_cli_plain_http_discovery_url_exits_4(root: Path, run_cli, cli_join: None) -> None:
    code, _out, err = run_cli("join", "--discovery-file", "http://127.0.0.1:1/cluster-info.yaml", "--tls-bootstrap-token",
                              TOKEN, "--root", str(root), "--node-name", NODE, "--skip-phases", "preflight")
    assert "plain-HTTP" in err
    assert code == 4


def test_join_config_for_file_discovery_without_token_uses_the_tls_token(cluster: TestAPIServer, root: Path,
                                                                        kubelet: KubeletDouble) -> None:
    text = cluster.store.get("configmaps", "cluster-info", "kube-public")["data"]["kubeconfig"]
    (root / "d.yaml").write_text(text)
    cfg = join_config(discovery_file="/d.yaml", token=None, tls_token=TOKEN)
    workflow.run(PHASES, join_context(root, cfg))
    kubelet.wait()
    assert kubelet.bootstrap_conf.token == TOKEN


def test_a_resumed_join_discovers_again_when_discovery_was_done_by_an_earlier_process(
        cluster: TestAPIServer, root: Path, kubelet: KubeletDouble) -> None:
    """The daemon resumes by skipping finished phases; what the earlier run discovered is gone."""
    ctx = join_context(root, pinned(cluster))
    workflow.run(PHASES, ctx, skip=("cri", "preflight", "discovery"))
    kubelet.wait()
    assert "discovering it again" in ctx.reporter.text()
    assert ctx.data.endpoint == cluster.url
    assert cluster.store.get("nodes", NODE)["metadata"]["annotations"][ANNOTATION] == SOCKET


# --- trust before host changes (issue 11 #13) ----------------------------------------------------

def test_cli_join_with_a_wrong_pin_changes_nothing_and_runs_no_command(cluster: TestAPIServer, root: Path,
                                                                       run_cli, cli_join: None) -> None:
    """kubeadm join does not touch the runtime before it trusts the cluster: a wrong pin exits 4
    with the root exactly as it was (no containerd config, crictl.yaml, modules, sysctls) and
    no command run or printed (no modprobe, sysctl or containerd restart)."""
    (root / "etc/containerd").mkdir(parents=True)
    (root / "etc/containerd/config.toml").write_text("version = 2\n")
    before = tree_snapshot(root)
    wrong = "sha256:" + "ab" * 32
    code, out, err = run_cli("join", cluster.server_address, "--token", TOKEN, "--discovery-token-ca-cert-hash",
                             wrong, "--root", str(root), "--node-name", NODE, "--cri-socket", SOCKET,
                             "--discovery-timeout", "5s", "--ignore-preflight-errors", "all")
    assert code == 4, err
    assert "pin" in err.lower() or "hash" in err.lower()
    assert tree_snapshot(root) == before
    assert "Would run" not in out + err


def test_join_runs_discovery_before_any_phase_that_changes_the_host() -> None:
    names = [p.name for p in PHASES]
    assert names.index("discovery") < names.index("cri") < names.index("kubelet-start")
    assert names.index("discovery") < names.index("preflight")
