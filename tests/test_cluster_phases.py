"""init's cluster phases run against an API: objects, idempotence, crash recovery, tokens.

FakeAPI below is a small in-memory API server behind kbootd.apiclient's transport
interface, with the REST semantics these phases rely on (AlreadyExists, NotFound for
missing namespaces, conditional PUT/PATCH by resourceVersion, atomic taints, field
selectors, server-side defaults) and crash injection. RBAC (anonymous may read only
cluster-info, a bootstrap token may only create CSRs and read kubelet-config) needs the
in-repo HTTPS test server (tests/apiserver), which had no server yet when this was
written.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest
import yaml

from kbootd import apiclient
from kbootd.apiclient import Client
from kbootd.cluster import addons, bootstraptoken, markcp, tokens, uploadconfig, waitcp
from kbootd.config.load import load_file
from kbootd.context import Seams, make_context
from kbootd.errors import KbootdError, ValidationError, WaitTimeout
from kbootd.report import RecordingReporter
from kbootd.token import BootstrapToken
from tests.shared import FIXTURES

INIT = FIXTURES / "kubeadm/init-basic"
RECORDED = FIXTURES / "apiserver"
SECRET = "0123456789abcdef"
NOW = datetime(2026, 11, 24, 19, 1, 36, tzinfo=timezone.utc)

pytestmark = pytest.mark.skipif(not INIT.is_dir(), reason="shared kubeadm fixtures not present")


class Crash(Exception):
    """The process died: not a KbootdError, so nothing retries it."""


_RBAC = "rbac.authorization.k8s.io"


class FakeAPI:
    def __init__(self, namespaces=("default", "kube-system", "kube-public", "kube-node-lease")) -> None:
        self.namespaces = set(namespaces)
        self.objects: dict[tuple[str, str], dict] = {}  # (collection path, name) -> object
        self.rv = 100
        self.writes = 0
        self.requests: list[tuple[str, str]] = []
        self.crash_at: int | None = None
        self.hide_node_for = 0  # GETs of a Node that 404 before it "registers"
        self.forbid: set[tuple[str, str]] = set()  # (method, path) answered 403

    # --- helpers
    @staticmethod
    def split(path: str) -> tuple[str, str | None, str | None]:
        """(collection path, namespace, name) of a resource path."""
        parts = path.strip("/").split("/")
        base = 2 if parts[0] == "api" else 3
        ns = None
        rest = parts[base:]
        if rest[0] == "namespaces" and len(rest) >= 3:
            ns, rest = rest[1], rest[2:]
        coll = "/" + "/".join(parts[:base] + (["namespaces", ns] if ns else []) + [rest[0]])
        return coll, ns, unquote(rest[1]) if len(rest) > 1 else None

    def status(self, code: int, reason: str, message: str, kind: str = "") -> tuple[int, bytes]:
        return code, json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
                                 "reason": reason, "code": code, "details": {"kind": kind}}).encode()

    def ok(self, code: int, obj: dict) -> tuple[int, bytes]:
        return code, json.dumps(obj).encode()

    def _stamp(self, obj: dict, old: dict | None = None) -> dict:
        self.rv += 1
        md = obj.setdefault("metadata", {})
        md["resourceVersion"] = str(self.rv)
        md["uid"] = (old or {}).get("metadata", {}).get("uid") or f"uid-{self.rv}"
        md["creationTimestamp"] = (old or {}).get("metadata", {}).get("creationTimestamp") or "2026-11-24T19:00:00Z"
        # Defaults a real API server adds, so "unchanged" must look past them.
        for s in obj.get("subjects") or []:
            if s.get("kind") in ("Group", "User"):
                s.setdefault("apiGroup", _RBAC)
        if obj.get("kind") == "Service":
            obj["spec"].setdefault("type", "ClusterIP")
            obj["spec"].setdefault("sessionAffinity", "None")
            obj["spec"]["clusterIPs"] = [obj["spec"]["clusterIP"]]
        if obj.get("kind") in ("Deployment", "DaemonSet"):
            obj["spec"].setdefault("revisionHistoryLimit", 10)
            for c in obj["spec"]["template"]["spec"]["containers"]:
                c.setdefault("terminationMessagePath", "/dev/termination-log")
            obj["status"] = {}
        return obj

    def _write(self) -> None:
        self.writes += 1

    def _maybe_crash(self) -> None:
        if self.crash_at is not None and self.writes >= self.crash_at:
            self.crash_at = None
            raise Crash(f"crashed after write {self.writes}")

    def add_node(self, name: str = "cp-1") -> None:
        self.objects[("/api/v1/nodes", name)] = self._stamp({
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "spec": {"taints": [{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]}})

    # --- the transport interface
    def request(self, method: str, path: str, body=None, content_type: str = "application/json"):
        self.requests.append((method, path))
        path, _, query = path.partition("?")
        if path in ("/healthz", "/livez", "/readyz"):
            return 200, b"ok"
        if (method, path) in self.forbid:
            return self.status(403, "Forbidden", f"{method} {path} is forbidden")
        coll, ns, name = self.split(path)
        plural = coll.rsplit("/", 1)[1]
        if ns and ns not in self.namespaces:
            return self.status(404, "NotFound", f'namespaces "{ns}" not found', "namespaces")
        key = (coll, name or "")
        cur = self.objects.get(key)
        if method == "GET" and name is None:
            items = [o for (c, _), o in self.objects.items() if c == coll]
            for sel in (dict(q.split("=", 1) for q in query.split("&") if q).get("fieldSelector") or "").split(","):
                if sel:
                    f, v = unquote(sel).split("=", 1)
                    items = [o for o in items if o.get(f) == v]
            return self.ok(200, {"kind": "List", "items": copy.deepcopy(items)})
        if method == "GET":
            if plural == "nodes" and self.hide_node_for > 0:
                self.hide_node_for -= 1
                return self.status(404, "NotFound", f'nodes "{name}" not found', "nodes")
            return self.ok(200, copy.deepcopy(cur)) if cur else self.status(404, "NotFound", f"{name} not found", plural)
        if method == "POST":
            name = body["metadata"]["name"]
            key = (coll, name)
            if key in self.objects:
                return self.status(409, "AlreadyExists", f'{plural} "{name}" already exists', plural)
            self._write()
            self.objects[key] = self._stamp(copy.deepcopy(body))
            self._maybe_crash()
            return self.ok(201, self.objects[key])
        if cur is None:
            return self.status(404, "NotFound", f'{plural} "{name}" not found', plural)
        if method == "PUT":
            rv = (body.get("metadata") or {}).get("resourceVersion")
            if rv and rv != cur["metadata"]["resourceVersion"]:
                return self.status(409, "Conflict", "the object has been modified", plural)
            self._write()
            self.objects[key] = self._stamp(copy.deepcopy(body), cur)
            self._maybe_crash()
            return self.ok(200, self.objects[key])
        if method == "PATCH":
            patch = copy.deepcopy(body)
            rv = (patch.get("metadata") or {}).pop("resourceVersion", None)
            if rv and rv != cur["metadata"]["resourceVersion"]:
                return self.status(409, "Conflict", "the object has been modified", plural)
            self._write()
            self.objects[key] = self._stamp(apiclient.merge_patch_apply(cur, patch), cur)  # lists (taints) replaced whole
            self._maybe_crash()
            return self.ok(200, self.objects[key])
        if method == "DELETE":
            self._write()
            del self.objects[key]
            return self.ok(200, {"kind": "Status", "status": "Success"})
        raise AssertionError(method)

    def get(self, kind: str, name: str, ns: str | None = None) -> dict | None:
        return self.objects.get((apiclient.resource(kind).path(ns), name))

    def state(self) -> dict:
        """Objects without server bookkeeping, for comparing two clusters."""
        out = {}
        for k, o in self.objects.items():
            o = copy.deepcopy(o)
            for f in ("resourceVersion", "uid", "creationTimestamp"):
                o["metadata"].pop(f, None)
            out[k] = o
        return out


def fast_client(api) -> Client:
    return Client(api, timeout=5.0, interval=0.001, sleep=lambda s: None)


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


PHASES = (waitcp.wait_control_plane, uploadconfig.upload_all, markcp.mark_control_plane,
          bootstraptoken.bootstrap_token, addons.coredns, addons.kube_proxy)


def new_ctx(root: Path, cfg, api, *, dry_run: bool = False, seams: dict | None = None):
    ctx = make_context(root=str(root), reporter=RecordingReporter(), init=cfg, dry_run=dry_run,
                       seams=Seams(**{"skip_kubelet_check": True, "now": lambda: NOW, **(seams or {})}))
    ctx.data.api_client = fast_client(api)
    return ctx


def run_init(root: Path, cfg, api, **kw):
    ctx = new_ctx(root, cfg, api, **kw)
    for phase in PHASES:
        phase(ctx)
    return ctx


@pytest.fixture
def cluster(root, cfg):
    seed(root)
    api = FakeAPI()
    api.add_node()
    return api


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

def test_every_object_is_created_as_built(cluster, root, cfg):
    run_init(root, cfg, cluster)
    want = expected_objects(cfg, root)
    assert len(want) == 27
    for obj in want:
        md = obj["metadata"]
        live = cluster.get(obj["kind"], md["name"], md.get("namespace"))
        assert live is not None, (obj["kind"], md)
        assert apiclient.contains(live, obj), (obj["kind"], md["name"])
    crb = cluster.get("ClusterRoleBinding", "kubeadm:cluster-admins")
    assert crb["roleRef"]["name"] == "cluster-admin"
    assert crb["subjects"] == [{"apiGroup": _RBAC, "kind": "Group", "name": "kubeadm:cluster-admins"}]


def test_node_is_marked_and_annotated_keeping_other_taints(cluster, root, cfg):
    run_init(root, cfg, cluster)
    node = cluster.get("Node", "cp-1")
    assert node["metadata"]["labels"] == {"kubernetes.io/hostname": "cp-1",
                                          "node-role.kubernetes.io/control-plane": "",
                                          "node.kubernetes.io/exclude-from-external-load-balancers": ""}
    assert node["metadata"]["annotations"] == {"kubeadm.alpha.kubernetes.io/cri-socket":
                                               "unix:///run/containerd/containerd.sock"}
    assert node["spec"]["taints"] == [{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"},
                                      {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]


def test_running_twice_changes_nothing(cluster, root, cfg):
    run_init(root, cfg, cluster)
    before, writes = copy.deepcopy(cluster.objects), cluster.writes
    ctx = run_init(root, cfg, cluster)
    assert cluster.writes == writes
    assert cluster.objects == before
    assert str(ctx.data.token) == "abcdef.<redacted>"


def test_a_crash_after_any_write_then_a_rerun_converges(root, cfg):
    seed(root)
    clean = FakeAPI()
    clean.add_node()
    run_init(root, cfg, clean)
    total = clean.writes
    assert total >= 30
    for n in range(1, total + 1):
        api = FakeAPI()
        api.add_node()
        api.crash_at = n
        with pytest.raises(Crash):
            run_init(root, cfg, api)
        run_init(root, cfg, api)  # a new process: fresh context
        assert api.state() == clean.state(), f"crash after write {n}"


def test_cluster_info_keeps_the_signers_jws_keys(cluster, root, cfg):
    run_init(root, cfg, cluster)
    ci = cluster.get("ConfigMap", "cluster-info", "kube-public")
    ci["data"]["jws-kubeconfig-abcdef"] = "header..sig"  # what the bootstrap signer adds
    ci["data"]["kubeconfig"] = "stale"
    run_init(root, cfg, cluster)
    data = cluster.get("ConfigMap", "cluster-info", "kube-public")["data"]
    assert data["jws-kubeconfig-abcdef"] == "header..sig"
    kc = yaml.safe_load(data["kubeconfig"])
    assert kc["clusters"][0]["name"] == "" and kc["clusters"][0]["cluster"]["server"] == "https://10.0.0.10:6443"
    assert kc["users"] is None and kc["contexts"] is None


def test_mark_control_plane_waits_for_the_kubelet_to_register(cluster, root, cfg):
    cluster.hide_node_for = 5
    ctx = new_ctx(root, cfg, cluster)
    markcp.mark_control_plane(ctx)
    assert "node-role.kubernetes.io/control-plane" in cluster.get("Node", "cp-1")["metadata"]["labels"]
    assert any(e[0] == "retry" and "not registered" in e[2] for e in ctx.reporter.events)


def test_a_node_that_never_registers_times_out(root, cfg):
    api = FakeAPI()
    ctx = new_ctx(root, cfg, api)
    ctx.data.api_client = Client(api, timeout=0.05, interval=0.01)
    with pytest.raises(WaitTimeout, match='node "cp-1" is not registered'):
        markcp.mark_control_plane(ctx)


def test_existing_token_with_another_secret_is_refused_without_showing_it(cluster, root, cfg):
    other = BootstrapToken.parse("abcdef.ffffffffffffffff")
    cluster.objects[("/api/v1/namespaces/kube-system/secrets", "bootstrap-token-abcdef")] = cluster._stamp(
        bootstraptoken.token_secret(other, {"token-id": "abcdef", "token-secret": other.secret}))
    with pytest.raises(KbootdError, match="'abcdef' already exists .* different secret") as e:
        bootstraptoken.bootstrap_token(new_ctx(root, cfg, cluster))
    assert SECRET not in str(e.value) and "ffffffffffffffff" not in str(e.value) + str(e.value.hint)


def test_generated_token_is_reused_on_rerun(cluster, root, cfg):
    c = dataclasses.replace(cfg, bootstrap_tokens=(dataclasses.replace(cfg.bootstrap_tokens[0], token=None),))
    ctx = new_ctx(root, c, cluster)
    bootstraptoken.bootstrap_token(ctx)
    tok = ctx.data.token
    again = new_ctx(root, c, cluster)  # a new process: finds the token in the cluster
    bootstraptoken.bootstrap_token(again)
    assert again.data.token == tok
    secrets = [k for k in cluster.objects if k[0].endswith("/secrets")]
    assert secrets == [("/api/v1/namespaces/kube-system/secrets", tok.secret_name)]
    assert tok.secret not in new_ctx(root, c, cluster).reporter.text() + ctx.reporter.text()


def test_dry_run_sends_nothing_to_a_server(cluster, root, cfg):
    before = copy.deepcopy(cluster.objects)
    ctx = new_ctx(root, cfg, cluster, dry_run=True)
    for phase in PHASES:
        phase(ctx)
    assert cluster.requests == [] and cluster.objects == before
    assert "[dryrun] Would perform action CREATE" in ctx.reporter.text()


def test_missing_super_admin_conf_is_a_clear_error(cluster, root, cfg):
    cluster.forbid.add(("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"))
    with pytest.raises(KbootdError, match="super-admin.conf") as e:
        uploadconfig.upload_kubeadm(new_ctx(root, cfg, cluster))
    assert "kubeadm:cluster-admins" in str(e.value)


def test_kubelet_config_comes_from_kubelet_start(cluster, root, cfg):
    (root / "var/lib/kubelet/config.yaml").unlink()
    ctx = new_ctx(root, cfg, cluster)
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
def test_wait_for_kubelet_then_api(kubelet, cluster, root, cfg, answer, healthy):
    kubelet.answer = answer
    ctx = new_ctx(root, cfg, cluster, seams={"skip_kubelet_check": False,
                                             "kubelet_healthz_url": f"http://127.0.0.1:{kubelet.server_address[1]}/healthz"})
    fake_time(ctx)
    if healthy:
        waitcp.wait_control_plane(ctx)
        assert "[kubelet-check] The kubelet is healthy after" in ctx.reporter.text()
        assert "[api-check] The API server is healthy after" in ctx.reporter.text()
        assert ("GET", "/healthz") in cluster.requests
        return
    with pytest.raises(WaitTimeout, match="is not healthy after 4m0s") as e:
        waitcp.wait_control_plane(ctx)
    for needle in ("systemctl status kubelet", "journalctl -xeu kubelet",
                   "crictl --runtime-endpoint unix:///run/containerd/containerd.sock ps -a | grep kube | grep -v pause",
                   "crictl --runtime-endpoint unix:///run/containerd/containerd.sock logs CONTAINERID"):
        assert needle in e.value.hint
    assert "Still waiting for the kubelet" in ctx.reporter.text()


def test_api_that_never_gets_healthy_times_out(root, cfg):
    class Down(FakeAPI):
        def request(self, method, path, body=None, content_type="application/json"):
            raise apiclient.APIUnavailable("connection refused")

    ctx = new_ctx(root, cfg, Down())
    fake_time(ctx)
    with pytest.raises(WaitTimeout, match="API server at https://10.0.0.10:6443 is not healthy") as e:
        waitcp.wait_control_plane(ctx)
    assert "crictl" in e.value.hint
    assert "Skipping the kubelet health check" in ctx.reporter.text()


def test_wait_in_dry_run_only_says_what_it_would_wait_for(root, cfg):
    ctx = make_context(root=str(root), reporter=RecordingReporter(), init=cfg, dry_run=True)
    waitcp.wait_control_plane(ctx)
    assert ctx.reporter.text().splitlines()[1:] == [
        "[dryrun] Would make sure the kubelet returns 'ok' at http://127.0.0.1:10248/healthz",
        "[dryrun] Would wait for the API Server's /healthz endpoint to return 'ok'"]


# --- tokens ------------------------------------------------------------------------------------------

def token_ctx(root, api):
    ctx = make_context(root=str(root), reporter=RecordingReporter())
    ctx.data.api_client = fast_client(api)
    return ctx


def recorded_secret() -> dict:
    text = (RECORDED / "22-admin-bootstrap-token-secret-get-200.http").read_text()
    return json.loads(text.split("\n\n", 1)[1])


@pytest.mark.skipif(not RECORDED.is_dir(), reason="recorded API fixtures not present")
def test_list_matches_kubeadms_table(root):
    api = FakeAPI()
    s = recorded_secret()
    api.objects[("/api/v1/namespaces/kube-system/secrets", s["metadata"]["name"])] = s
    now = datetime(2026, 11, 24, 19, 33, 50, tzinfo=timezone.utc)
    assert tokens.run_list(token_ctx(root, api), now=now) == (RECORDED / "36-kubeadm-token-list.txt").read_text()


@pytest.mark.skipif(not RECORDED.is_dir(), reason="recorded API fixtures not present")
def test_join_command_matches_kubeadms(root):
    text = (RECORDED / "08-cluster-info-anon-200.http").read_text()
    cm = json.loads(text.split("\n\n", 1)[1])
    ca = yaml.safe_load(cm["data"]["kubeconfig"])["clusters"][0]["cluster"]["certificate-authority-data"]
    kc = apiclient.KubeConfig(path="/etc/kubernetes/admin.conf", server="https://127.0.0.1:16443", cluster={},
                              ca_pem=base64.b64decode(ca))
    want = (RECORDED / "37-kubeadm-token-create-print-join-command.txt").read_text()
    tok = BootstrapToken.parse(want.split("--token ")[1].split()[0])
    assert tokens.join_command(kc, tok, "kubeadm") + "\n" == want
    assert want.endswith(" \n")


def test_create_list_delete_round_trip(root):
    api = FakeAPI()
    ctx = token_ctx(root, api)
    out = tokens.run_create(ctx, token_text="abcdef." + SECRET, ttl=3600, description="for CI",
                            groups=["system:bootstrappers:ci"])
    assert out == f"abcdef.{SECRET}\n"
    generated = tokens.run_create(ctx, ttl=0).strip()
    BootstrapToken.parse(generated)
    listed = {t.token.full: t for t in tokens.list_tokens(fast_client(api))}
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
    assert tokens.run_list(ctx) == ""
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


def test_expired_token_listed_as_invalid(root):
    api = FakeAPI()
    ctx = token_ctx(root, api)
    tokens.create_token(fast_client(api), BootstrapToken.parse("expire." + SECRET), ttl=5, now=NOW - timedelta(hours=1))
    row = tokens.run_list(ctx, now=NOW).splitlines()[1]
    assert row.split()[:3] == [f"expire.{SECRET}", "<invalid>", "2026-11-24T18:01:41Z"]


@pytest.mark.parametrize("kwargs,match", [
    ({"usages": ["signing", "bogus"]}, "unknown usage 'bogus'"),
    ({"groups": ["system:nodes"]}, "must start with system:bootstrappers:"),
    ({"usages": ["signing"]}, 'only valid with the "authentication" usage'),
    ({"ttl": -1}, "must not be negative"),
])
def test_create_rejects_bad_flags(root, kwargs, match):
    api = FakeAPI()
    with pytest.raises(ValidationError, match=match):
        tokens.run_create(token_ctx(root, api), **kwargs)
    assert api.writes == 0


def test_list_skips_malformed_secrets_with_a_warning(root):
    api = FakeAPI()
    good = bootstraptoken.token_secret(BootstrapToken.parse("abcdef." + SECRET),
                                       {"token-id": "abcdef", "token-secret": SECRET})
    bad = copy.deepcopy(good)
    bad["metadata"]["name"] = "bootstrap-token-zzzzzz"
    for s in (good, bad):
        api.objects[("/api/v1/namespaces/kube-system/secrets", s["metadata"]["name"])] = s
    ctx = token_ctx(root, api)
    out = tokens.run_list(ctx)
    assert out.count("\n") == 2 and f"abcdef.{SECRET}" in out
    assert any(e[0] == "warn" and "bootstrap-token-zzzzzz" in e[2] for e in ctx.reporter.events)
