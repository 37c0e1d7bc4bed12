"""init's cluster phases run against an API: objects, idempotence, crash recovery, tokens.

The API is the HTTPS test server (tests/apiserver), the one API fake of the suite: it answers as
the recorded kube-apiserver does (AlreadyExists, 422 for a taken clusterIP, NotFound for missing
namespaces, conditional writes by resourceVersion, strategic-merge patches with atomic taint
lists, RBAC, server-side defaults) and runs the controllers kubeadm relies on. kbootd talks to it
through its own client and transport with admin.conf's identity; super-admin.conf is in the root,
so kubeadm:cluster-admins is made the way init makes it. Crashes are injected at the server
(`faults.after_write`: a write applied, its answer lost) and turned into the client process dying
by a thin wrapper around kbootd's transport (`Seam`).
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from kbootd import apiclient
from kbootd.apiclient import APITransport, Client, KubeConfig
from kbootd.cluster import addons, bootstraptoken, markcp, tokens, uploadconfig, waitcp
from kbootd.config.load import load_file
from kbootd.context import Seams, make_context
from kbootd.errors import KbootdError, ValidationError, WaitTimeout
from kbootd.report import RecordingReporter
from kbootd.token import BootstrapToken
from tests.apiserver import TestAPIServer, kubeadm, schema
from tests.apiserver.server import WriteFault
from tests.shared import FIXTURES

INIT = FIXTURES / "kubeadm/init-basic"
RECORDED = FIXTURES / "apiserver"
SECRET = "0123456789abcdef"
NOW = datetime(2026, 11, 24, 19, 1, 36, tzinfo=timezone.utc)
NODE = "cp-1"
NOT_READY = {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}
CP_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
SECRETS = "/api/v1/namespaces/kube-system/secrets"
# Bookkeeping the server adds; two clusters that converged differ only in these.
SERVER_FIELDS = ("resourceVersion", "uid", "creationTimestamp", "managedFields", "generation")

pytestmark = pytest.mark.skipif(not INIT.is_dir(), reason="shared kubeadm fixtures not present")


class Crash(Exception):
    """The process died: not a KbootdError, so nothing retries it."""


class Seam:
    """kbootd's transport with test hooks, in the place a client's transport goes.

    `before(method, path)` runs before a request leaves (e.g. another writer acting just then);
    with `crash`, the process dies as soon as that fault has fired: the request that saw its write
    applied and its answer lost raises Crash instead of returning, as does any request after it.
    """

    def __init__(self, transport: APITransport, *, before: Callable[[str, str], None] | None = None,
                 crash: WriteFault | None = None) -> None:
        self.transport = transport
        self.before = before
        self.crash = crash

    @property
    def server(self) -> str:  # ensure_cluster_admins builds the super-admin client for the same server
        return self.transport.server

    def _died(self) -> None:
        if self.crash is not None and self.crash.fired.is_set():
            raise Crash(f"crashed after write {self.crash.nth} ({self.crash.request})")

    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        self._died()
        if self.before is not None:
            self.before(method, path)
        try:
            return self.transport.request(method, path, body, content_type)
        finally:
            self._died()

    def close(self) -> None:
        self.transport.close()


@dataclasses.dataclass
class Cluster:
    srv: TestAPIServer
    root: Path
    admin: KubeConfig
    baseline: set[tuple[str, str, str]]
    clients: list[Client] = dataclasses.field(default_factory=list)

    def transport(self, kc: KubeConfig | None = None) -> APITransport:
        return APITransport(kc or self.admin)

    def client(self, transport: Any = None, **kw: Any) -> Client:
        kw = {"timeout": 5.0, "interval": 0.001, "sleep": lambda s: None, **kw}
        client = Client(transport or self.transport(), **kw)
        self.clients.append(client)  # closed after the test (each holds memfds)
        return client

    def get(self, kind: str, name: str, ns: str = "") -> dict[str, Any] | None:
        return self.srv.store.get(apiclient.resource(kind).plural, name, ns)

    def versions(self) -> dict[tuple[str, str, str], str]:
        return {k: o["metadata"]["resourceVersion"] for k, o in all_objects(self.srv).items()}

    def state(self) -> dict[tuple[str, str, str], dict[str, Any]]:
        """Objects without server bookkeeping, for comparing two clusters."""
        out = {}
        for k, o in all_objects(self.srv).items():
            o = copy.deepcopy(o)
            for f in SERVER_FIELDS:
                o["metadata"].pop(f, None)
            o.pop("status", None)
            out[k] = o
        return out

    def token_secrets(self) -> list[str]:
        return [s["metadata"]["name"] for s in self.srv.store.list("secrets", "kube-system")
                if s.get("type") == bootstraptoken.SECRET_TYPE]


def all_objects(srv: TestAPIServer) -> dict[tuple[str, str, str], dict[str, Any]]:
    out = {}
    for res in schema.BY_PLURAL.values():
        for o in srv.store.list(res):
            out[(res.plural, o["metadata"].get("namespace", ""), o["metadata"]["name"])] = o
    return out


@pytest.fixture(scope="module")
def cfg():
    return load_file(str(INIT / "config.yaml"), "init", lambda m: None)


def seed(root: Path) -> None:
    """CA and kubelet config.yaml as the earlier phases leave them (taken from kubeadm's dry-run)."""
    from tests.test_cluster_objects import attached_objects

    objs = attached_objects((INIT / "dryrun-stdout.txt").read_text())
    ci = next(o for o in objs if o["metadata"]["name"] == "cluster-info")
    ca = yaml.safe_load(ci["data"]["kubeconfig"])["clusters"][0]["cluster"]["certificate-authority-data"]
    (root / "etc/kubernetes/pki").mkdir(parents=True, exist_ok=True)
    (root / "etc/kubernetes/pki/ca.crt").write_bytes(base64.b64decode(ca))
    kubelet = next(o for o in objs if o["metadata"]["name"] == "kubelet-config")
    (root / "var/lib/kubelet").mkdir(parents=True, exist_ok=True)
    (root / "var/lib/kubelet/config.yaml").write_text(kubelet["data"]["kubelet"])


@pytest.fixture(scope="module")
def server() -> Iterator[TestAPIServer]:
    with TestAPIServer() as srv:
        yield srv
    assert not srv.internal_errors, srv.internal_errors
    assert not srv.controllers.errors, srv.controllers.errors


@pytest.fixture(scope="module")
def baseline(server: TestAPIServer) -> set[tuple[str, str, str]]:
    return set(all_objects(server))


@pytest.fixture(scope="module")
def admin_kc(server: TestAPIServer) -> KubeConfig:
    issued = server.issue_client_cert("admin")
    return KubeConfig(path="(admin.conf)", server=server.url, cluster={}, ca_pem=server.ca_pem,
                      cert_pem=issued.cert_pem, key_pem=issued.key_pem)


def wipe(c: Cluster, *, node: bool = True) -> None:
    """The server as it booted (at NOW, every controller on), with this node's Node registered."""
    srv = c.srv
    srv.faults.clear()
    srv.clock.freeze(NOW)  # the token's expiration is computed from NOW: the cleaner must leave it
    for k in srv.controllers.enabled:
        srv.controllers.enabled[k] = k != "tokencleaner" or srv.controllers.token_cleaner
    for (plural, ns, name) in set(all_objects(srv)) - c.baseline:
        srv.store.delete(plural, name, ns)
    if node:
        srv.store.create({"apiVersion": "v1", "kind": "Node",
                          "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE}},
                          "spec": {"taints": [NOT_READY]}}, manager="kubelet")


@pytest.fixture
def cluster(server, baseline, admin_kc, root) -> Iterator[Cluster]:
    seed(root)
    server.write_kubeconfig(root / "etc/kubernetes/super-admin.conf", "super-admin")
    c = Cluster(server, root, admin_kc, baseline)
    wipe(c)
    yield c
    for client in c.clients:
        client.close()
    wipe(c, node=False)


PHASES = (waitcp.wait_control_plane, uploadconfig.upload_all, markcp.mark_control_plane,
          bootstraptoken.bootstrap_token, addons.coredns, addons.kube_proxy)


def new_ctx(c: Cluster, cfg, *, client: Client | None = None, dry_run: bool = False, seams: dict | None = None):
    ctx = make_context(root=str(c.root), reporter=RecordingReporter(), init=cfg, dry_run=dry_run,
                       seams=Seams(**{"skip_kubelet_check": True, "now": lambda: NOW, **(seams or {})}))
    ctx.data.api_client = client or c.client()
    return ctx


def run_init(c: Cluster, cfg, **kw):
    """The cluster phases as one process runs them (a fresh context and client each time)."""
    ctx = new_ctx(c, cfg, **kw)
    try:
        for phase in PHASES:
            phase(ctx)
    finally:
        ctx.data.api_client.close()
    return ctx


def expected_objects(cfg, root) -> list[dict]:
    ctx = make_context(root=str(root), reporter=RecordingReporter(), init=cfg)
    kubelet = (root / "var/lib/kubelet/config.yaml").read_text()
    (spec,) = cfg.bootstrap_tokens
    out = [*uploadconfig.kubeadm_config_objects(cfg), *uploadconfig.kubelet_config_objects(kubelet),
           bootstraptoken.spec_secret(spec, spec.token, NOW)]
    for _, objs in bootstraptoken.rbac_steps():
        out += objs
    out += bootstraptoken.cluster_info_objects(bootstraptoken.cluster_info_kubeconfig(bootstraptoken.cluster_entry(ctx)))
    out += addons.coredns_objects(cfg) + addons.kube_proxy_objects(cfg, "https://10.0.0.10:6443")
    return out


# --- the phases --------------------------------------------------------------------------------

def test_every_object_is_created_as_built(cluster, cfg):
    run_init(cluster, cfg)
    want = expected_objects(cfg, cluster.root)
    assert len(want) == 27
    for obj in want:
        md = obj["metadata"]
        live = cluster.get(obj["kind"], md["name"], md.get("namespace", ""))
        assert live is not None, (obj["kind"], md)
        assert apiclient.contains(live, obj), (obj["kind"], md["name"])
    created = set(all_objects(cluster.srv)) - cluster.baseline
    assert len(created) == 27 + 2  # and the Node, and kubeadm:cluster-admins (made with super-admin.conf):
    crb = cluster.get("ClusterRoleBinding", "kubeadm:cluster-admins")
    assert crb["roleRef"]["name"] == "cluster-admin"
    assert crb["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                                "name": "kubeadm:cluster-admins"}]
    assert [(r.method, r.user, r.status) for r in cluster.srv.requests
            if r.path == "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"][:2] == [
        ("POST", "kubernetes-admin", 403), ("POST", "kubernetes-super-admin", 201)]


def test_node_is_marked_and_annotated_keeping_other_taints(cluster, cfg):
    run_init(cluster, cfg)
    node = cluster.get("Node", NODE)
    assert node["metadata"]["labels"] == {"kubernetes.io/hostname": NODE,
                                          "node-role.kubernetes.io/control-plane": "",
                                          "node.kubernetes.io/exclude-from-external-load-balancers": ""}
    assert node["metadata"]["annotations"] == {"kubeadm.alpha.kubernetes.io/cri-socket":
                                               "unix:///run/containerd/containerd.sock"}
    assert node["spec"]["taints"] == [NOT_READY, CP_TAINT]
    # A second run adds no second control-plane taint and sends no patch.
    patches = sum(r.method == "PATCH" for r in cluster.srv.requests)
    run_init(cluster, cfg)
    assert cluster.get("Node", NODE)["spec"]["taints"] == [NOT_READY, CP_TAINT]
    assert sum(r.method == "PATCH" for r in cluster.srv.requests) == patches


def test_a_taint_added_while_marking_is_kept(cluster, cfg):
    # Another controller taints the Node between kbootd's read and its patch. taints is an atomic
    # list (the server replaces it whole, fixture 20), so a patch built from the stale read would
    # drop that taint; the read resourceVersion makes the server refuse it (409) and kbootd retries.
    unreachable = {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}
    done = []

    def controller(method: str, path: str) -> None:
        if method == "PATCH" and path == f"/api/v1/nodes/{NODE}" and not done:
            done.append(path)
            cluster.srv.store.mutate("nodes", NODE, lambda n: n["spec"].update(taints=[NOT_READY, unreachable]),
                                     manager="kube-controller-manager")

    markcp.mark_control_plane(new_ctx(cluster, cfg, client=cluster.client(Seam(cluster.transport(),
                                                                                 before=controller))))
    assert done
    assert cluster.get("Node", NODE)["spec"]["taints"] == [NOT_READY, unreachable, CP_TAINT]
    assert [r.status for r in cluster.srv.requests if r.method == "PATCH"][-2:] == [409, 200]


def test_running_twice_changes_nothing(cluster, cfg):
    run_init(cluster, cfg)
    cluster.srv.settle()
    before, writes = cluster.versions(), cluster.srv.writes
    ctx = run_init(cluster, cfg)
    assert cluster.srv.writes == writes
    assert cluster.versions() == before
    assert str(ctx.data.token) == "abcdef.<redacted>"


@pytest.fixture
def reference(cluster, cfg) -> tuple[dict, int]:
    """The cluster after one uninterrupted run, and how many writes it took; then put back."""
    start = cluster.srv.writes
    run_init(cluster, cfg)
    cluster.srv.settle()
    total, want = cluster.srv.writes - start, cluster.state()
    wipe(cluster)
    return want, total


def test_a_crash_after_any_write_then_a_rerun_converges(cluster, cfg, reference):
    want, total = reference
    assert total >= 30
    for n in range(1, total + 1):
        fault = cluster.srv.faults.after_write(n)
        with pytest.raises(Crash):
            run_init(cluster, cfg, client=cluster.client(Seam(cluster.transport(), crash=fault)))
        run_init(cluster, cfg)  # a new process: fresh context and client
        cluster.srv.settle()
        assert cluster.state() == want, f"crash after write {n} ({fault.request})"
        wipe(cluster)


def test_a_lost_answer_after_any_write_is_ridden_out_in_the_same_run(cluster, cfg, reference):
    # The write happened but the connection broke before its answer: the retry must not turn
    # kbootd's own success into a failure (AlreadyExists, a stale resourceVersion...).
    want, total = reference
    for n in range(1, total + 1):
        fault = cluster.srv.faults.after_write(n)
        run_init(cluster, cfg)
        assert fault.fired.is_set()
        cluster.srv.settle()
        assert cluster.state() == want, f"answer lost after write {n} ({fault.request})"
        wipe(cluster)


def test_cluster_info_keeps_the_signers_jws_keys(cluster, cfg):
    run_init(cluster, cfg)
    cluster.srv.settle()
    cluster.srv.controllers.enabled["bootstrapsigner"] = False  # the key below is the signer's, not a real one

    def signer_was_here(cm: dict) -> None:
        cm["data"].update({"jws-kubeconfig-abcdef": "header..sig", "kubeconfig": "stale"})

    cluster.srv.store.mutate("configmaps", "cluster-info", signer_was_here, namespace="kube-public",
                             manager="kube-controller-manager")
    run_init(cluster, cfg)
    data = cluster.get("ConfigMap", "cluster-info", "kube-public")["data"]
    assert data["jws-kubeconfig-abcdef"] == "header..sig"
    kc = yaml.safe_load(data["kubeconfig"])
    assert kc["clusters"][0]["name"] == "" and kc["clusters"][0]["cluster"]["server"] == "https://10.0.0.10:6443"
    assert kc["users"] is None and kc["contexts"] is None


def test_mark_control_plane_waits_for_the_kubelet_to_register(cluster, cfg):
    cluster.srv.faults.fail_next(5, 404, method="GET", path=f"/api/v1/nodes/{NODE}",
                                 message=f'nodes "{NODE}" not found')
    ctx = new_ctx(cluster, cfg)
    markcp.mark_control_plane(ctx)
    assert cluster.srv.faults.pending == 0
    assert "node-role.kubernetes.io/control-plane" in cluster.get("Node", NODE)["metadata"]["labels"]
    assert any(e[0] == "retry" and "not registered" in e[2] for e in ctx.reporter.events)


def test_a_node_that_never_registers_times_out(cluster, cfg):
    cluster.srv.store.delete("nodes", NODE)
    ctx = new_ctx(cluster, cfg, client=cluster.client(timeout=0.05, interval=0.01, sleep=time.sleep))
    with pytest.raises(WaitTimeout, match=f'node "{NODE}" is not registered'):
        markcp.mark_control_plane(ctx)


def test_existing_token_with_another_secret_is_refused_without_showing_it(cluster, cfg):
    other = BootstrapToken.parse("abcdef.ffffffffffffffff")
    cluster.srv.store.create(bootstraptoken.token_secret(other, {"token-id": "abcdef", "token-secret": other.secret}))
    with pytest.raises(KbootdError, match="'abcdef' already exists .* different secret") as e:
        bootstraptoken.bootstrap_token(new_ctx(cluster, cfg))
    assert SECRET not in str(e.value) and "ffffffffffffffff" not in str(e.value) + str(e.value.hint)


def test_generated_token_is_reused_on_rerun(cluster, cfg):
    c = dataclasses.replace(cfg, bootstrap_tokens=(dataclasses.replace(cfg.bootstrap_tokens[0], token=None),))
    ctx = new_ctx(cluster, c)
    bootstraptoken.bootstrap_token(ctx)
    tok = ctx.data.token
    again = new_ctx(cluster, c)  # a new process: finds the token in the cluster
    bootstraptoken.bootstrap_token(again)
    assert again.data.token == tok
    assert cluster.token_secrets() == [tok.secret_name]
    assert tok.secret not in again.reporter.text() + ctx.reporter.text()


def test_dry_run_sends_nothing_to_a_server(cluster, cfg):
    before, logged = copy.deepcopy(all_objects(cluster.srv)), len(cluster.srv.requests)
    ctx = new_ctx(cluster, cfg, dry_run=True)
    for phase in PHASES:
        phase(ctx)
    assert len(cluster.srv.requests) == logged and all_objects(cluster.srv) == before
    assert "[dryrun] Would perform action CREATE" in ctx.reporter.text()


def test_missing_super_admin_conf_is_a_clear_error(cluster, cfg):
    # admin.conf's group is bound by nothing yet: its create of the binding is refused (403), and
    # without super-admin.conf nothing else can make it.
    (cluster.root / "etc/kubernetes/super-admin.conf").unlink()
    with pytest.raises(KbootdError, match="super-admin.conf") as e:
        uploadconfig.upload_kubeadm(new_ctx(cluster, cfg))
    assert "kubeadm:cluster-admins" in str(e.value)
    assert cluster.get("ConfigMap", "kubeadm-config", "kube-system") is None


def test_kubelet_config_comes_from_kubelet_start(cluster, cfg):
    (cluster.root / "var/lib/kubelet/config.yaml").unlink()
    ctx = new_ctx(cluster, cfg)
    with pytest.raises(KbootdError, match="config.yaml does not exist") as e:
        uploadconfig.upload_kubelet(ctx)
    assert "kubelet-start" in e.value.hint
    from kbootd.kubelet import kubelet_configuration, render_yaml

    doc = kubelet_configuration(cfg)
    ctx.host.write_file(ctx.paths.kubelet_config, render_yaml(doc), 0o644)
    uploadconfig.upload_kubelet(ctx)
    assert cluster.get("ConfigMap", "kubelet-config", "kube-system")["data"]["kubelet"] == render_yaml(doc)


# --- wait-control-plane ------------------------------------------------------------------------

class _Kubelet(BaseHTTPRequestHandler):
    def log_message(self, *a) -> None:
        pass

    def do_GET(self) -> None:
        body = self.server.answer[1].encode()
        self.send_response(self.server.answer[0])
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def kubelet():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Kubelet)
    srv.answer = (200, "ok")
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def fake_time(ctx) -> None:
    now = [0.0]
    ctx.seams.clock = lambda: now[0]
    ctx.seams.sleep = lambda s: now.__setitem__(0, now[0] + max(s, 10.0))  # few real polls


@pytest.mark.parametrize("answer,healthy", [((200, "ok"), True), ((500, "[-]ping failed"), False),
                                            ((200, "not ok"), False)])
def test_wait_for_kubelet_then_api(kubelet, cluster, cfg, answer, healthy):
    kubelet.answer = answer
    ctx = new_ctx(cluster, cfg, seams={"skip_kubelet_check": False,
                                       "kubelet_healthz_url": f"http://127.0.0.1:{kubelet.server_address[1]}/healthz"})
    fake_time(ctx)
    logged = len(cluster.srv.requests)
    if healthy:
        waitcp.wait_control_plane(ctx)
        assert "[kubelet-check] The kubelet is healthy after" in ctx.reporter.text()
        assert "[api-check] The API server is healthy after" in ctx.reporter.text()
        assert ("GET", "/healthz") in [(r.method, r.path) for r in list(cluster.srv.requests)[logged:]]
        return
    with pytest.raises(WaitTimeout, match="is not healthy after 4m0s") as e:
        waitcp.wait_control_plane(ctx)
    for needle in ("systemctl status kubelet", "journalctl -xeu kubelet",
                   "crictl --runtime-endpoint unix:///run/containerd/containerd.sock ps -a | grep kube | grep -v pause",
                   "crictl --runtime-endpoint unix:///run/containerd/containerd.sock logs CONTAINERID"):
        assert needle in e.value.hint
    assert "Still waiting for the kubelet" in ctx.reporter.text()
    assert len(cluster.srv.requests) == logged  # the API is not asked before the kubelet is healthy


def test_api_that_never_gets_healthy_times_out(cluster, cfg):
    srv = cluster.srv
    srv.set_ready(False)  # /healthz answers 500 `[-]etcd failed`
    try:
        ctx = new_ctx(cluster, cfg)
        fake_time(ctx)
        with pytest.raises(WaitTimeout, match="API server at https://10.0.0.10:6443 is not healthy") as e:
            waitcp.wait_control_plane(ctx)
    finally:
        srv.set_ready(True)
    assert "crictl" in e.value.hint
    assert "Skipping the kubelet health check" in ctx.reporter.text()


def test_wait_in_dry_run_only_says_what_it_would_wait_for(root, cfg):
    ctx = make_context(root=str(root), reporter=RecordingReporter(), init=cfg, dry_run=True)
    waitcp.wait_control_plane(ctx)
    assert ctx.reporter.text().splitlines()[1:] == [
        "[dryrun] Would make sure the kubelet returns 'ok' at http://127.0.0.1:10248/healthz",
        "[dryrun] Would wait for the API Server's /healthz endpoint to return 'ok'"]


# --- tokens ------------------------------------------------------------------------------------------

def token_ctx(c: Cluster):
    """`kbootd token` after init: admin.conf's group is bound to cluster-admin."""
    kubeadm.grant_cluster_admins(c.srv.store)
    ctx = make_context(root=str(c.root), reporter=RecordingReporter())
    ctx.data.api_client = c.client()
    return ctx


def recorded_secret() -> dict:
    text = (RECORDED / "22-admin-bootstrap-token-secret-get-200.http").read_text()
    return json.loads(text.split("\n\n", 1)[1])


@pytest.mark.skipif(not RECORDED.is_dir(), reason="recorded API fixtures not present")
def test_list_matches_kubeadms_table(cluster):
    s = recorded_secret()
    cluster.srv.store.create({k: s[k] for k in ("apiVersion", "kind", "type", "data")} |
                             {"metadata": {k: s["metadata"][k] for k in ("name", "namespace")}})
    now = datetime(2026, 11, 24, 19, 33, 50, tzinfo=timezone.utc)
    assert tokens.run_list(token_ctx(cluster), now=now) == (RECORDED / "36-kubeadm-token-list.txt").read_text()


@pytest.mark.skipif(not RECORDED.is_dir(), reason="recorded API fixtures not present")
def test_join_command_matches_kubeadms():
    text = (RECORDED / "08-cluster-info-anon-200.http").read_text()
    cm = json.loads(text.split("\n\n", 1)[1])
    ca = yaml.safe_load(cm["data"]["kubeconfig"])["clusters"][0]["cluster"]["certificate-authority-data"]
    kc = apiclient.KubeConfig(path="/etc/kubernetes/admin.conf", server="https://127.0.0.1:16443", cluster={},
                              ca_pem=base64.b64decode(ca))
    want = (RECORDED / "37-kubeadm-token-create-print-join-command.txt").read_text()
    tok = BootstrapToken.parse(want.split("--token ")[1].split()[0])
    assert tokens.join_command(kc, tok, "kubeadm") + "\n" == want
    assert want.endswith(" \n")


def test_create_list_delete_round_trip(cluster):
    ctx = token_ctx(cluster)
    out = tokens.run_create(ctx, token_text="abcdef." + SECRET, ttl=3600, description="for CI",
                            groups=["system:bootstrappers:ci"])
    assert out == f"abcdef.{SECRET}\n"
    generated = tokens.run_create(ctx, ttl=0).strip()
    BootstrapToken.parse(generated)
    listed = {t.token.full: t for t in tokens.list_tokens(ctx.data.api_client)}
    assert set(listed) == {f"abcdef.{SECRET}", generated}
    ci = listed[f"abcdef.{SECRET}"]
    assert (ci.usages, ci.groups, ci.description) == (("authentication", "signing"), ("system:bootstrappers:ci",),
                                                     "for CI")
    assert listed[generated].expires is None
    table = tokens.run_list(ctx)
    assert "<forever>" in table and "<never>" in table and "for CI" in table
    docs, text, dec = [], tokens.run_list(ctx, output="json"), json.JSONDecoder()
    while text.strip():
        doc, end = dec.raw_decode(text.strip())
        docs.append(doc)
        text = text.strip()[end:]
    assert sorted(d["token"] for d in docs) == sorted(listed)
    assert {d["apiVersion"] for d in docs} == {"output.kubeadm.k8s.io/v1alpha3"}
    assert [d["kind"] for d in yaml.safe_load_all(tokens.run_list(ctx, output="yaml"))] == ["BootstrapToken"] * 2
    with pytest.raises(KbootdError, match="'abcdef' already exists"):
        tokens.run_create(ctx, token_text="abcdef." + SECRET)
    assert tokens.run_delete(ctx, None, [f"abcdef.{SECRET}", generated.split(".")[0]]) == \
        f'bootstrap token "abcdef" deleted\nbootstrap token "{generated[:6]}" deleted\n'
    assert tokens.run_list(ctx) == "" and cluster.token_secrets() == []
    with pytest.raises(KbootdError, match='"abcdef" not found'):
        tokens.run_delete(ctx, None, ["abcdef"])


@pytest.mark.parametrize("offset,ttl", [(-3600, "<invalid>"), (-1.5, "0s"), (30, "30s"), (90, "1m"),
                                        (3 * 3600 + 5, "3h"), (3 * 86400, "3d"), (800 * 86400, "2y")])
def test_ttl_column(offset, ttl):
    now = NOW
    info = tokens.TokenInfo(BootstrapToken.parse("abcdef." + SECRET), now + timedelta(seconds=offset), "x",
                            ("signing",), (), "")
    assert tokens.ttl_text(info, now) == ttl
    assert tokens.format_table([info], now).splitlines()[1].split()[1] == ttl


def test_expired_token_listed_as_invalid(cluster):
    # Expired by kbootd's clock (NOW), not yet by the server's (an hour behind): the cleaner leaves it.
    cluster.srv.clock.set(NOW - timedelta(hours=1))
    ctx = token_ctx(cluster)
    tokens.create_token(ctx.data.api_client, BootstrapToken.parse("expire." + SECRET), ttl=5, now=NOW - timedelta(hours=1))
    cluster.srv.settle()
    row = tokens.run_list(ctx, now=NOW).splitlines()[1]
    assert row.split()[:3] == [f"expire.{SECRET}", "<invalid>", "2026-11-24T18:01:41Z"]


@pytest.mark.parametrize("kwargs,match", [
    ({"usages": ["signing", "bogus"]}, "unknown usage 'bogus'"),
    ({"groups": ["system:nodes"]}, "must start with system:bootstrappers:"),
    ({"usages": ["signing"]}, 'only valid with the "authentication" usage'),
    ({"ttl": -1}, "must not be negative"),
])
def test_create_rejects_bad_flags(cluster, kwargs, match):
    ctx, writes = token_ctx(cluster), cluster.srv.writes
    with pytest.raises(ValidationError, match=match):
        tokens.run_create(ctx, **kwargs)
    assert cluster.srv.writes == writes


def test_list_skips_malformed_secrets_with_a_warning(cluster):
    good = bootstraptoken.token_secret(BootstrapToken.parse("abcdef." + SECRET),
                                       {"token-id": "abcdef", "token-secret": SECRET})
    bad = copy.deepcopy(good)
    bad["metadata"]["name"] = "bootstrap-token-zzzzzz"
    for s in (good, bad):
        cluster.srv.store.create(s)
    ctx = token_ctx(cluster)
    out = tokens.run_list(ctx)
    assert out.count("\n") == 2 and f"abcdef.{SECRET}" in out
    assert any(e[0] == "warn" and "bootstrap-token-zzzzzz" in e[2] for e in ctx.reporter.events)
