"""init end to end against the HTTPS test API server (tests/apiserver), and what joining nodes may see.

One temp root gets init's node-local phases; one TestAPIServer serves that root's CA and
apiserver.crt on the port its kubeconfigs name. Every test starts from the server as it
booted (objects kbootd wrote are deleted again) with the Node registered by its own
kubelet.conf identity, as the kubelet would. Nothing here fakes kbootd's client: requests go
through admin.conf, super-admin.conf, the server's RBAC and admission, and its controllers
(bootstrap signer, token cleaner, CSR approver and signer).
"""

from __future__ import annotations

import base64
import copy
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from kbootd import apiclient, engine, jws, workflow
from kbootd.apiclient import APIError, Client, KubeConfig, KubernetesTransport
from kbootd.cluster import addons, bootstraptoken, cluster_admins_binding, uploadconfig
from kbootd.config.load import load_file
from kbootd.context import Context, Seams, make_context
from kbootd.errors import KbootdError, PhaseError, WaitTimeout
from kbootd.phases import INIT, INIT_LOCAL
from kbootd.pin import pin_of
from kbootd.report import RecordingReporter
from tests.apiserver import TestAPIServer, kubeadm, pki, schema
from tests.keycache import cached_keys
from tests.shared import FIXTURES

DRYRUN = FIXTURES / "kubeadm/init-basic/dryrun-stdout.txt"
RECORDED = FIXTURES / "apiserver"
TOKEN_ID, SECRET = "abcdef", "0123456789abcdef"  # the fixtures' test token
TOKEN = f"{TOKEN_ID}.{SECRET}"
NODE = "cp-1"
CRI = "unix:///run/containerd/containerd.sock"
CLUSTER_PHASES = tuple(p.name for p in INIT if p.name not in INIT_LOCAL)
# Every phase path of the cluster half (parents before children).
CLUSTER_PATHS = tuple(path for path, _ in workflow.all_phases(INIT) if path.split("/")[0] in CLUSTER_PHASES)
BOOTSTRAP_GROUP = "system:bootstrappers:kubeadm:default-node-token"
# Bookkeeping the server adds; two clusters that converged differ only in these.
SERVER_FIELDS = ("resourceVersion", "uid", "creationTimestamp", "managedFields", "generation")
NOW = datetime.now(timezone.utc).replace(microsecond=0)  # one token expiration for the runs compared

pytestmark = pytest.mark.skipif(not DRYRUN.is_file(), reason="shared kubeadm fixtures not present")

CFG_TEXT = """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens:
- token: {token}
  ttl: 24h0m0s
localAPIEndpoint: {{advertiseAddress: 127.0.0.1, bindPort: {port}}}
nodeRegistration: {{name: {node}, criSocket: {cri}}}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.32.0
networking: {{podSubnet: 10.244.0.0/16, serviceSubnet: 10.96.0.0/12, dnsDomain: cluster.local}}
"""


class Crash(Exception):
    """The process died: not a KbootdError, so nothing in kbootd retries or reports it."""


@dataclass
class Cluster:
    root: Path
    port: int
    cfg: Any
    config_file: Path
    srv: TestAPIServer
    baseline: set[tuple[str, str, str]] = field(default_factory=set)
    wipes: int = 0  # how often the server was put back; fixtures that share one init compare it
    shared_init_at: int = -1
    reference: dict[tuple[str, str, str], dict[str, Any]] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"


def config_text(port: int, token: str = TOKEN) -> str:
    return CFG_TEXT.format(token=token, port=port, node=NODE, cri=CRI)


def all_objects(srv: TestAPIServer) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(resource plural, namespace, name) -> object, over every resource the server knows."""
    out = {}
    for res in schema.BY_PLURAL.values():
        for o in srv.store.list(res):
            out[(res.plural, o["metadata"].get("namespace", ""), o["metadata"]["name"])] = o
    return out


def versions(srv: TestAPIServer) -> dict[tuple[str, str, str], str]:
    return {k: o["metadata"]["resourceVersion"] for k, o in all_objects(srv).items()}


def normalized(srv: TestAPIServer) -> dict[tuple[str, str, str], dict[str, Any]]:
    out = {}
    for k, o in all_objects(srv).items():
        o = copy.deepcopy(o)
        for f in SERVER_FIELDS:
            o["metadata"].pop(f, None)
        o.pop("status", None)
        out[k] = o
    return out


def kubeconfig_client(kc: KubeConfig, timeout: float = 5.0) -> Client:
    return Client(KubernetesTransport(kc), timeout=timeout, interval=0.05)


def file_client(c: Cluster, path: str) -> Client:
    ctx = make_context(root=str(c.root), reporter=RecordingReporter())
    return kubeconfig_client(apiclient.load_kubeconfig(ctx, path))


def ca_pem(c: Cluster) -> bytes:
    return (c.root / "etc/kubernetes/pki/ca.crt").read_bytes()


def token_client(c: Cluster, token: str | None) -> Client:
    """A client with only the CA: anonymous (token None) or a bearer token, as a joining node has."""
    return kubeconfig_client(KubeConfig(path="(test)", server=c.url, cluster={}, ca_pem=ca_pem(c), token=token))


def register_node(c: Cluster) -> dict[str, Any]:
    """The kubelet's registration, with its kubelet.conf identity (admission adds the not-ready taint)."""
    node = {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE, "kubernetes.io/os": "linux"}}}
    client = file_client(c, "/etc/kubernetes/kubelet.conf")
    try:
        return client.create(node)
    finally:
        client.close()


def wipe(c: Cluster) -> None:
    """Back to the server as it booted: delete everything a test wrote, put the clock and faults back."""
    c.srv.faults.clear()
    c.srv.clock.unfreeze()
    c.srv.clock.set(datetime.now(timezone.utc))
    c.srv.set_ready(True)
    for (plural, ns, name) in set(all_objects(c.srv)) - c.baseline:
        c.srv.store.delete(plural, name, ns)
    c.wipes += 1


def run_init(c: Cluster, *, reporter: RecordingReporter | None = None, **kw: Any) -> Context:
    """init's cluster half, as a new process would run it (fresh context, client from admin.conf)."""
    kw.setdefault("skip_phases", tuple(INIT_LOCAL))
    seams = Seams(skip_kubelet_check=True, **kw.pop("seams", {}))
    # The engine closes the client it built from admin.conf when the run ends.
    return engine.run("init", kw.pop("cfg", c.cfg), reporter=reporter or RecordingReporter(), root=str(c.root),
                      ignore_preflight_errors=("all",), seams=seams, **kw)


def signed(c: Cluster, token_id: str = TOKEN_ID) -> dict[str, str]:
    """cluster-info's data once the bootstrap signer has signed it for token_id."""
    def get() -> dict[str, str] | None:
        cm = c.srv.store.get("configmaps", "cluster-info", "kube-public")
        data = (cm or {}).get("data") or {}
        return data if f"jws-kubeconfig-{token_id}" in data else None

    return c.srv.wait_for(get, timeout=5)


def settled(c: Cluster) -> None:
    """Wait until the controllers have nothing left to do (e.g. the signer's keys match the live tokens)."""
    c.srv.settle()


def request_count(srv: TestAPIServer) -> int:
    """How many requests the server has logged (it logs each before answering it)."""
    return len(srv.requests)


def dryrun_objects() -> list[dict[str, Any]]:
    from tests.test_cluster_objects import attached_objects

    return [o for o in attached_objects(DRYRUN.read_text()) if o["kind"] != "Node"]


def key_of(obj: dict[str, Any]) -> tuple[str, str, str]:
    return apiclient.resource(obj["kind"]).plural, obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


# --- the cluster ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("init-cluster") / "root"
    root.mkdir()
    with cached_keys():
        # The CA first, so the server can start on a port of its own choosing (no free-port race);
        # the kubeconfigs are then written for that port (certificates do not depend on it).
        first = load_file("kubeadm.yaml", "init", lambda m: None, text=config_text(6443))
        engine.run("init", first, reporter=RecordingReporter(), root=str(root), only="certs",
                   ignore_preflight_errors=("all",))
        srv = TestAPIServer(cert_dir=root / "etc/kubernetes/pki", port=0).start()
        try:
            text = config_text(srv.port)
            cfg = load_file("kubeadm.yaml", "init", lambda m: None, text=text)
            engine.run("init", cfg, reporter=RecordingReporter(), root=str(root), ignore_preflight_errors=("all",),
                       skip_phases=CLUSTER_PHASES)
            config_file = root.parent / "kubeadm.yaml"
            config_file.write_text(text)
            c = Cluster(root, srv.port, cfg, config_file, srv)
            c.baseline = set(all_objects(srv))
            yield c
        finally:
            srv.close()
    assert not srv.internal_errors, srv.internal_errors
    assert not srv.controllers.errors, srv.controllers.errors


@pytest.fixture
def cluster(cluster_env: Cluster) -> Iterator[Cluster]:
    """The server as it booted, with this node's Node registered."""
    wipe(cluster_env)
    register_node(cluster_env)
    yield cluster_env
    wipe(cluster_env)


@pytest.fixture
def initialized(cluster: Cluster) -> Cluster:
    run_init(cluster)
    signed(cluster)
    return cluster


# --- init end to end -----------------------------------------------------------------------------

def expected_objects(c: Cluster) -> list[dict[str, Any]]:
    """What kbootd.cluster builds for this configuration (the token Secret's expiration aside)."""
    ctx = make_context(root=str(c.root), reporter=RecordingReporter(), init=c.cfg)
    kubelet = (c.root / "var/lib/kubelet/config.yaml").read_text()
    out = [cluster_admins_binding(), *uploadconfig.kubeadm_config_objects(c.cfg),
           *uploadconfig.kubelet_config_objects(kubelet)]
    (spec,) = c.cfg.bootstrap_tokens
    secret = bootstraptoken.spec_secret(spec, spec.token, datetime.now(timezone.utc))
    del secret["data"]["expiration"]
    out.append(secret)
    for _, objs in bootstraptoken.rbac_steps():
        out += objs
    out += bootstraptoken.cluster_info_objects(bootstraptoken.cluster_info_kubeconfig(bootstraptoken.cluster_entry(ctx)))
    out += addons.coredns_objects(c.cfg) + addons.kube_proxy_objects(c.cfg, c.url)
    return out


def test_init_creates_every_object_as_built(cluster: Cluster) -> None:
    before = time.time()
    ctx = run_init(cluster)
    created = {k: o for k, o in all_objects(cluster.srv).items() if k not in cluster.baseline}
    want = expected_objects(cluster)
    assert {key_of(o) for o in want} | {("nodes", "", NODE)} == set(created)
    for obj in want:
        live = created[key_of(obj)]
        assert apiclient.contains(live, obj), key_of(obj)
        # kbootd's writes carry its field manager (the User-Agent up to the first "/"); a bare
        # ServiceAccount has no fields to own, hence no entry; the signer co-owns cluster-info.
        managers = {m["manager"] for m in live["metadata"].get("managedFields") or ()} - {"kube-controller-manager"}
        assert managers == ({"kbootd"} if obj["kind"] != "ServiceAccount" else set()), key_of(obj)
    # The token's expiration: the configured 24h from when init ran.
    secret = created[("secrets", "kube-system", f"bootstrap-token-{TOKEN_ID}")]
    exp = datetime.fromisoformat(base64.b64decode(secret["data"]["expiration"]).decode().replace("Z", "+00:00"))
    assert before + 86400 - 2 <= exp.timestamp() <= time.time() + 86400 + 1
    assert secret["type"] == "bootstrap.kubernetes.io/token"
    # The console story: super-admin.conf made the admins binding, then every phase ran.
    text = ctx.reporter.text()
    assert "Creating ClusterRoleBinding kubeadm:cluster-admins with /etc/kubernetes/super-admin.conf" in text
    assert sorted(e[1] for e in ctx.reporter.events if e[0] == "done") == sorted(CLUSTER_PATHS)


def test_object_names_match_kubeadms_dry_run(initialized: Cluster) -> None:
    created = set(all_objects(initialized.srv)) - initialized.baseline
    kubeadm_names = {key_of(o) for o in dryrun_objects()}
    # kubeadm makes kubeadm:cluster-admins outside its dry-run only; the Node is the kubelet's.
    assert created - kubeadm_names == {("clusterrolebindings", "", "kubeadm:cluster-admins"), ("nodes", "", NODE)}
    assert kubeadm_names <= created


def _kubeadm_rbac_and_labels() -> list[dict[str, Any]]:
    out = []
    for o in dryrun_objects():
        part = {"kind": o["kind"], "metadata": {k: v for k, v in o["metadata"].items()
                                                  if k in ("name", "namespace", "labels")}}
        for k in ("rules", "roleRef", "subjects", "type"):
            if k in o:
                part[k] = o[k]
        out.append(part)
    return out


@pytest.mark.parametrize("want", _kubeadm_rbac_and_labels() if DRYRUN.is_file() else [],
                         ids=lambda o: f"{o['kind']}/{o['metadata']['name']}")
def test_rbac_and_labels_are_kubeadms(initialized: Cluster, want: dict[str, Any]) -> None:
    # Rules, roleRefs, subjects, labels and Secret type do not depend on the configuration:
    # the live objects must hold kubeadm's exactly (the server adds apiGroup to subjects).
    live = all_objects(initialized.srv)[key_of(want)]
    assert apiclient.contains(live, want), (live, want)
    if "subjects" in want:
        assert [(s["kind"], s["name"]) for s in live["subjects"]] == [(s["kind"], s["name"]) for s in want["subjects"]]


def test_node_is_marked_keeping_the_kubelets_taint(initialized: Cluster) -> None:
    node = initialized.srv.store.get("nodes", NODE)
    assert node["metadata"]["labels"] == {"kubernetes.io/hostname": NODE, "kubernetes.io/os": "linux",
                                          "node-role.kubernetes.io/control-plane": "",
                                          "node.kubernetes.io/exclude-from-external-load-balancers": ""}
    assert node["metadata"]["annotations"] == {"kubeadm.alpha.kubernetes.io/cri-socket": CRI}
    assert [(t["key"], t["effect"]) for t in node["spec"]["taints"]] == [
        ("node.kubernetes.io/not-ready", "NoSchedule"), ("node-role.kubernetes.io/control-plane", "NoSchedule")]


def test_cluster_info_is_signed_and_verifies(initialized: Cluster) -> None:
    data = signed(initialized)
    assert set(data) == {"kubeconfig", f"jws-kubeconfig-{TOKEN_ID}"}
    assert jws.verify(data["kubeconfig"], data[f"jws-kubeconfig-{TOKEN_ID}"], TOKEN_ID, SECRET)
    assert not jws.verify(data["kubeconfig"], data[f"jws-kubeconfig-{TOKEN_ID}"], TOKEN_ID, "f" * 16)
    kc = yaml.safe_load(data["kubeconfig"])
    assert kc["clusters"] == [{"cluster": {"certificate-authority-data": base64.b64encode(ca_pem(initialized)).decode(),
                                           "server": initialized.url}, "name": ""}]
    # What `join` does: read it anonymously over TLS and pin the CA.
    anon = token_client(initialized, None)
    try:
        cm = anon.get("ConfigMap", "cluster-info", "kube-public")
    finally:
        anon.close()
    assert cm["data"] == data
    ca = x509.load_pem_x509_certificate(base64.b64decode(kc["clusters"][0]["cluster"]["certificate-authority-data"]))
    assert pin_of(ca) == pin_of(x509.load_pem_x509_certificate(ca_pem(initialized)))


def test_second_init_changes_nothing(initialized: Cluster) -> None:
    settled(initialized)
    before = versions(initialized.srv)
    first_request = request_count(initialized.srv)
    run_init(initialized)
    sent = list(initialized.srv.requests)[first_request:request_count(initialized.srv)]
    assert versions(initialized.srv) == before
    assert [r for r in sent if r.method in ("PUT", "PATCH", "DELETE") or (r.method == "POST" and r.status < 300)] == []
    tokens = [s["metadata"]["name"] for s in initialized.srv.store.list("secrets", "kube-system")
              if s.get("type") == bootstraptoken.SECRET_TYPE]
    assert tokens == [f"bootstrap-token-{TOKEN_ID}"]


def test_a_changed_configuration_is_applied_on_rerun_then_converges(initialized: Cluster) -> None:
    srv = initialized.srv
    cfg = load_file("kubeadm.yaml", "init", lambda m: None,
                    text=config_text(initialized.port).replace("10.244.0.0/16", "10.32.0.0/12"))
    settled(initialized)
    before = versions(srv)
    run_init(initialized, cfg=cfg)
    after = versions(srv)
    changed = {k for k in after if after[k] != before.get(k)}
    assert changed == {("configmaps", "kube-system", "kubeadm-config"), ("configmaps", "kube-system", "kube-proxy")}
    proxy = srv.store.get("configmaps", "kube-proxy", "kube-system")
    assert yaml.safe_load(proxy["data"]["config.conf"])["clusterCIDR"] == "10.32.0.0/12"
    assert proxy["metadata"]["annotations"][uploadconfig.HASH_ANNOTATION] == uploadconfig.checksum(proxy["data"])
    assert "podSubnet: 10.32.0.0/12" in srv.store.get("configmaps", "kubeadm-config", "kube-system")["data"][
        "ClusterConfiguration"]
    run_init(initialized, cfg=cfg)
    assert versions(srv) == after


def test_cluster_info_is_forbidden_to_anonymous_until_it_exists(cluster: Cluster) -> None:
    # Fixture 06: RBAC answers first, so an anonymous client sees 403 (never 404) before init;
    # admin sees 404 (fixture 07).
    anon, admin = token_client(cluster, None), file_client(cluster, "/etc/kubernetes/super-admin.conf")
    try:
        with pytest.raises(APIError) as e:
            anon.get("ConfigMap", "cluster-info", "kube-public")
        assert e.value.status == 403
        assert admin.get("ConfigMap", "cluster-info", "kube-public") is None
        run_init(cluster)
        assert anon.get("ConfigMap", "cluster-info", "kube-public")["data"]["kubeconfig"]
    finally:
        anon.close()
        admin.close()


def test_rerun_with_a_generated_token_mints_no_second_token(cluster: Cluster) -> None:
    import dataclasses

    spec = dataclasses.replace(cluster.cfg.bootstrap_tokens[0], token=None)
    cfg = dataclasses.replace(cluster.cfg, bootstrap_tokens=(spec,))

    def tokens() -> list[dict[str, Any]]:
        return [s for s in cluster.srv.store.list("secrets", "kube-system")
                if s.get("type") == bootstraptoken.SECRET_TYPE]

    first = run_init(cluster, cfg=cfg).data.token
    again = run_init(cluster, cfg=cfg).data.token  # a new process: found in the cluster
    assert first is not None and again == first and len(tokens()) == 1
    # Once it has expired, init makes a fresh one rather than printing a dead token.
    later = datetime.now(timezone.utc) + timedelta(seconds=spec.ttl + 60)
    fresh = run_init(cluster, cfg=cfg, seams={"now": lambda: later}).data.token
    assert fresh is not None and fresh != first and len(tokens()) == 2


def reference_state(c: Cluster) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The cluster after one uninterrupted init at NOW (made once; the server is then put back)."""
    if c.reference is None:
        run_init(c, seams={"now": lambda: NOW})
        settled(c)
        c.reference = normalized(c.srv)
        wipe(c)
        register_node(c)
    return c.reference


@pytest.mark.parametrize("crash_after", CLUSTER_PATHS)
def test_crash_after_a_phase_then_rerun_converges(cluster: Cluster, crash_after: str) -> None:
    want = reference_state(cluster)

    def die(path: str) -> None:
        if path == crash_after:
            raise Crash(path)

    with pytest.raises(Crash):
        run_init(cluster, seams={"now": lambda: NOW}, on_phase_done=die)
    run_init(cluster, seams={"now": lambda: NOW})
    settled(cluster)
    assert normalized(cluster.srv) == want


# A request that fails for good (not a transient status) in the middle of a phase: init fails
# there; the next run picks up and converges.
MID_PHASE = [
    ("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/kube-system/roles"),  # after kubeadm-config
    ("PATCH", f"/api/v1/nodes/{NODE}"),  # cri-socket annotation, after kubelet-config
    ("POST", "/api/v1/namespaces/kube-public/configmaps"),  # cluster-info, after the token and RBAC
    ("PUT", "/api/v1/namespaces/kube-public/configmaps/cluster-info"),
    ("POST", "/apis/apps/v1/namespaces/kube-system/deployments"),
    ("POST", "/apis/apps/v1/namespaces/kube-system/daemonsets"),
]


@pytest.mark.parametrize("method,path", MID_PHASE, ids=[f"{m} {p.rsplit('/', 1)[1]}" for m, p in MID_PHASE])
def test_a_failed_request_mid_phase_then_rerun_converges(cluster: Cluster, method: str, path: str) -> None:
    want = reference_state(cluster)
    if method == "PUT":  # cluster-info is only updated on a re-run: get there first
        run_init(cluster, seams={"now": lambda: NOW}, only="bootstrap-token")
        cluster.srv.store.mutate("configmaps", "cluster-info", lambda o: o["data"].update(kubeconfig="stale"),
                                 namespace="kube-public")
    cluster.srv.faults.fail_next(1, status=400, method=method, path=path, message="injected")
    with pytest.raises(PhaseError, match="injected"):
        run_init(cluster, seams={"now": lambda: NOW})
    assert cluster.srv.faults.pending == 0
    run_init(cluster, seams={"now": lambda: NOW})
    settled(cluster)
    assert normalized(cluster.srv) == want


def test_transient_failures_are_retried_within_one_run(cluster: Cluster) -> None:
    srv = cluster.srv
    want = reference_state(cluster)
    srv.faults.fail_next(1, status=503, method="POST", path="/api/v1/namespaces/kube-system/secrets")
    srv.faults.fail_next(1, status=429, method="PATCH", retry_after=1)
    srv.faults.drop_next(1, method="POST", path="/apis/apps/v1/")
    start = request_count(srv)
    run_init(cluster, seams={"now": lambda: NOW})
    assert srv.faults.pending == 0
    sent = list(srv.requests)[start:request_count(srv)]
    assert [r.status for r in sent if r.path == "/api/v1/namespaces/kube-system/secrets"] == [503, 201]
    settled(cluster)
    assert normalized(srv) == want


def test_an_api_server_restart_during_init_is_ridden_out(cluster: Cluster) -> None:
    # The static Pod restarting (a new kube-apiserver): connections are cut, then refused, then it is back.
    srv = cluster.srv
    want = reference_state(cluster)
    srv.requested_port = srv.port  # come back on the port the kubeconfigs name
    timer = threading.Timer(0.7, srv.start)

    def restart(path: str) -> None:
        if path == "upload-config/kubeadm":
            srv.stop()
            timer.start()

    try:
        ctx = run_init(cluster, seams={"now": lambda: NOW}, on_phase_done=restart)
    finally:
        timer.join()
        srv.start()
    assert ctx.reporter.events[-1][0] == "done"
    settled(cluster)
    assert normalized(srv) == want


def test_a_namespace_the_api_server_has_not_made_yet_is_waited_for(cluster: Cluster) -> None:
    # Right after start-up kube-apiserver may not have made kube-public yet: creates there get
    # `namespaces "kube-public" not found` until it does.
    srv = cluster.srv
    ns = srv.store.get("namespaces", "kube-public")
    srv.store.delete("namespaces", "kube-public")
    timer = threading.Timer(0.6, srv.store.create, args=({"apiVersion": "v1", "kind": "Namespace",
                                                          "metadata": {"name": "kube-public",
                                                                       "labels": ns["metadata"].get("labels")}},))
    timer.start()
    try:
        run_init(cluster)
    finally:
        timer.join()
    assert srv.store.get("configmaps", "cluster-info", "kube-public") is not None
    assert srv.store.get("rolebindings", "kubeadm:bootstrap-signer-clusterinfo", "kube-public") is not None


def test_wait_control_plane_waits_for_readyz_then_times_out(cluster: Cluster) -> None:
    srv = cluster.srv
    srv.set_ready(False)
    timer = threading.Timer(0.7, srv.set_ready)
    timer.start()
    try:
        ctx = run_init(cluster, only="wait-control-plane")
    finally:
        timer.cancel()
    assert "[api-check] The API server is healthy after" in ctx.reporter.text()
    srv.set_ready(False)
    now = [0.0]
    fake = {"clock": lambda: now[0], "sleep": lambda s: now.__setitem__(0, now[0] + 30)}
    with pytest.raises(PhaseError) as e:
        run_init(cluster, only="wait-control-plane", seams=fake)
    assert isinstance(e.value.__cause__, WaitTimeout)
    assert f"the API server at {cluster.url} is not healthy after 4m0s" in str(e.value)
    assert "/healthz returned HTTP 500" in str(e.value)


def test_mark_control_plane_waits_for_the_kubelet_to_register(cluster: Cluster) -> None:
    cluster.srv.store.delete("nodes", NODE)
    timer = threading.Timer(0.6, register_node, args=(cluster,))
    timer.start()
    try:
        ctx = run_init(cluster)
    finally:
        timer.join()
    node = cluster.srv.store.get("nodes", NODE)
    assert "node-role.kubernetes.io/control-plane" in node["metadata"]["labels"]
    assert node["metadata"]["annotations"] == {"kubeadm.alpha.kubernetes.io/cri-socket": CRI}
    # upload-config/kubelet is the first to need the Node (the cri-socket annotation): it says it waits.
    waited = [e[1] for e in ctx.reporter.events if e[0] == "retry" and f'node "{NODE}" is not registered' in e[2]]
    assert waited and set(waited) <= {"upload-config", "kubelet", "mark-control-plane"}


def test_dry_run_sends_nothing(cluster: Cluster, run_cli: Any) -> None:
    before = copy.deepcopy(all_objects(cluster.srv))
    sent = request_count(cluster.srv)
    rc, out, err = run_cli("init", "--dry-run", "--root", str(cluster.root), "--config", str(cluster.config_file),
                           "--ignore-preflight-errors=all")
    assert rc == 0, err
    assert request_count(cluster.srv) == sent
    assert all_objects(cluster.srv) == before
    assert 'Would perform action CREATE on resource "secrets"' in out
    assert SECRET not in out + err


def test_cli_init_end_to_end_prints_a_working_join_command(cluster: Cluster, run_cli: Any) -> None:
    # The whole `kbootd init` (local phases again, then the cluster half) with only the kubelet wait
    # skipped: the host tree is left as it was and the printed join command works.
    from tests.conftest import tree_snapshot

    tree = tree_snapshot(cluster.root)
    rc, out, err = run_cli("init", "--root", str(cluster.root), "--config", str(cluster.config_file),
                           "--ignore-preflight-errors=all", "--skip-phases", "wait-control-plane")
    assert rc == 0, err
    assert tree_snapshot(cluster.root) == tree
    pin = pin_of(x509.load_pem_x509_certificate(ca_pem(cluster)))
    assert f"kbootd join 127.0.0.1:{cluster.port} --token {TOKEN} \\\n\t--discovery-token-ca-cert-hash {pin}\n" in out
    assert SECRET not in err
    assert bootstrap_status(cluster, TOKEN) == 200
    assert jws.verify(signed(cluster)["kubeconfig"], signed(cluster)[f"jws-kubeconfig-{TOKEN_ID}"], TOKEN_ID, SECRET)
    rc, out, err = run_cli("config", "view", "--root", str(cluster.root))
    assert rc == 0, err
    assert out == cluster.srv.store.get("configmaps", "kubeadm-config", "kube-system")["data"]["ClusterConfiguration"]
    assert yaml.safe_load(out)["kubernetesVersion"] == "v1.32.0"


# --- tokens through the CLI ------------------------------------------------------------------------

def token_rows(out: str) -> dict[str, list[str]]:
    """The `token list` table, by token; columns split on runs of 2+ spaces."""
    import re

    lines = out.splitlines()
    return {r[0]: r for r in (re.split(r"\s{2,}", line.strip()) for line in lines[1:] if line.strip())}


def bootstrap_status(c: Cluster, token: str) -> int:
    client = token_client(c, token)
    try:
        client.get("ConfigMap", "kubeadm-config", "kube-system")
        return 200
    except APIError as e:
        return e.status
    finally:
        client.close()


def test_token_list_create_delete_round_trip(initialized: Cluster, run_cli: Any) -> None:
    c, root = initialized, str(initialized.root)
    rc, out, err = run_cli("token", "list", "--root", root)
    assert rc == 0, err
    rows = token_rows(out)
    assert out.splitlines()[0].split()[:3] == ["TOKEN", "TTL", "EXPIRES"]
    assert list(rows) == [TOKEN]
    assert rows[TOKEN][1] in ("23h", "24h") and rows[TOKEN][3:] == ["authentication,signing", "<none>", BOOTSTRAP_GROUP]

    rc, out, err = run_cli("token", "create", "--root", root, "--ttl", "2h", "--description", "for CI")
    assert rc == 0, err
    new = out.strip()
    new_id, new_secret = new.split(".")
    data = signed(c, new_id)  # the signer signs for the new token too
    assert jws.verify(data["kubeconfig"], data[f"jws-kubeconfig-{new_id}"], new_id, new_secret)
    assert bootstrap_status(c, new) == 200

    rc, out, err = run_cli("token", "create", "--root", root, "--print-join-command", "--ttl", "0")
    assert rc == 0, err
    joined = out.split("--token ")[1].split()[0]
    pin = pin_of(x509.load_pem_x509_certificate(ca_pem(c)))
    assert out == f"kbootd join 127.0.0.1:{c.port} --token {joined} --discovery-token-ca-cert-hash {pin} \n"
    # Other Secrets in kube-system are not tokens; a token without expiry lives <forever>.
    c.srv.store.create({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                        "metadata": {"name": "bootstrap-token-zzzzzz", "namespace": "kube-system"},
                        "data": {"token-id": base64.b64encode(b"zzzzzz").decode()}})
    rc, out, err = run_cli("token", "list", "--root", root)
    assert rc == 0 and "zzzzzz" not in out + err
    rows = token_rows(out)
    assert sorted(rows) == sorted([TOKEN, new, joined])
    assert rows[new][1:2] + rows[new][4:5] == ["1h", "for CI"]
    assert rows[joined][1:3] == ["<forever>", "<never>"]

    # --kubeconfig: another identity's file, read through the root like every host path.
    rc, out, err = run_cli("token", "list", "--root", root, "--kubeconfig", "/etc/kubernetes/super-admin.conf",
                           "-o", "json")
    assert rc == 0, err
    docs = [json.loads("{" + d) for d in out.strip().lstrip("{").split("\n{") if d]
    assert sorted(d["token"] for d in docs) == sorted([TOKEN, new, joined])
    assert next(d for d in docs if d["token"] == new)["description"] == "for CI"

    rc, out, err = run_cli("token", "delete", "--root", root, new, joined.split(".")[0])
    assert rc == 0, err
    assert out == f'bootstrap token "{new_id}" deleted\nbootstrap token "{joined[:6]}" deleted\n'
    rc, out, _ = run_cli("token", "list", "--root", root)
    assert list(token_rows(out)) == [TOKEN]
    assert bootstrap_status(c, new) == 401
    settled(c)  # the signer drops the deleted tokens' signatures
    assert set(signed(c)) == {"kubeconfig", f"jws-kubeconfig-{TOKEN_ID}"}

    rc, out, err = run_cli("token", "delete", "--root", root, new_id)
    assert rc != 0 and f'"{new_id}" not found' in err
    assert SECRET not in err


def test_token_cli_without_access_fails_cleanly(initialized: Cluster, run_cli: Any) -> None:
    # A kubeconfig whose user may not read Secrets: the 403 is reported, nothing is printed.
    kc = initialized.srv.kubeconfig("system:kube-scheduler")
    path = initialized.root / "etc/kubernetes/nobody.conf"
    pki.write_kubeconfig(path, kc)
    rc, out, err = run_cli("token", "list", "--root", str(initialized.root), "--kubeconfig", "/etc/kubernetes/nobody.conf")
    assert rc != 0 and out == ""
    assert "forbidden" in err.lower() and "403" in err


def test_expired_token_is_listed_as_invalid_until_the_cleaner_takes_it(initialized: Cluster, run_cli: Any) -> None:
    c, srv = initialized, initialized.srv
    # The server runs 2h behind: a token it made with a 1h TTL has expired by this host's clock,
    # but not yet by the server's, so the token cleaner leaves it (and it still authenticates).
    srv.clock.set(datetime.now(timezone.utc) - timedelta(hours=2))
    kubeadm.create_token(srv.store, "expire." + SECRET, ttl=timedelta(hours=1))
    exp = base64.b64decode(srv.store.get("secrets", "bootstrap-token-expire", "kube-system")["data"]["expiration"])
    rc, out, err = run_cli("token", "list", "--root", str(c.root))
    assert rc == 0, err
    row = token_rows(out)["expire." + SECRET]
    assert row[1:3] == ["<invalid>", exp.decode()]
    assert bootstrap_status(c, "expire." + SECRET) == 200
    signed(c, "expire")
    # Time catches up: the token no longer authenticates, the cleaner deletes it, the signer unsigns.
    srv.clock.set(datetime.now(timezone.utc))
    assert bootstrap_status(c, "expire." + SECRET) == 401
    srv.wait_for(lambda: srv.store.get("secrets", "bootstrap-token-expire", "kube-system") is None)
    settled(c)
    rc, out, _ = run_cli("token", "list", "--root", str(c.root))
    assert list(token_rows(out)) == [TOKEN]


# --- what anonymous clients and bootstrap tokens may do ------------------------------------------------

def recorded_message(name: str) -> str:
    text = (RECORDED / name).read_text()
    return json.loads(text.split("\n\n", 1)[1])["message"]


def csr_object(name: str, node: str = "worker-1") -> dict[str, Any]:
    pem, _ = pki.make_csr(f"system:node:{node}", ("system:nodes",))
    return {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest", "metadata": {"name": name},
            "spec": {"request": base64.b64encode(pem).decode(), "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
                     "usages": ["digital signature", "client auth"]}}


def _cm(name: str, ns: str = "kube-system") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": {"k": "v"}}


# (what, call): each call gets a client and returns nothing or raises APIError.
CALLS: dict[str, Any] = {
    "get cluster-info": lambda k: k.get("ConfigMap", "cluster-info", "kube-public"),
    "get kubeadm-config": lambda k: k.get("ConfigMap", "kubeadm-config", "kube-system"),
    "get kubelet-config": lambda k: k.get("ConfigMap", "kubelet-config", "kube-system"),
    "get kube-proxy config": lambda k: k.get("ConfigMap", "kube-proxy", "kube-system"),
    "get coredns config": lambda k: k.get("ConfigMap", "coredns", "kube-system"),
    "list configmaps kube-system": lambda k: k.list("ConfigMap", "kube-system"),
    "list configmaps kube-public": lambda k: k.list("ConfigMap", "kube-public"),
    "get token secret": lambda k: k.get("Secret", f"bootstrap-token-{TOKEN_ID}", "kube-system"),
    "list secrets": lambda k: k.list("Secret", "kube-system"),
    "get node": lambda k: k.get("Node", NODE),
    "list nodes": lambda k: k.list("Node"),
    "patch node": lambda k: k.patch("Node", NODE, {"metadata": {"labels": {"example.com/x": "y"}}}),
    "create csr": lambda k: k.create(csr_object("node-csr-" + str(time.monotonic_ns()))),
    "list csrs": lambda k: k.list("CertificateSigningRequest"),
    "update cluster-info": lambda k: k.patch("ConfigMap", "cluster-info", {"data": {"kubeconfig": "x"}}, "kube-public"),
    "update kubeadm-config": lambda k: k.patch("ConfigMap", "kubeadm-config", {"data": {"x": "y"}}, "kube-system"),
    "create configmap": lambda k: k.create(_cm("intruder")),
    "create configmap kube-public": lambda k: k.create(_cm("intruder", "kube-public")),
    "delete token secret": lambda k: k.delete("Secret", f"bootstrap-token-{TOKEN_ID}", "kube-system"),
    "get clusterrolebinding": lambda k: k.get("ClusterRoleBinding", "kubeadm:get-nodes"),
}
ANONYMOUS_ALLOWED = {"get cluster-info"}
# kubeadm's RBAC for bootstrap tokens: kubeadm:get-nodes, system:node-bootstrapper (create, get, list,
# watch CSRs), the kubeadm-config, kubelet-config and kube-proxy Roles.
TOKEN_ALLOWED = {"get kubeadm-config", "get kubelet-config", "get kube-proxy config", "get node", "create csr",
                 "list csrs"}


@pytest.fixture
def secured(cluster_env: Cluster) -> Cluster:
    """One init shared by the security table (its calls change nothing the others depend on),
    made again only when a test in between put the server back."""
    c = cluster_env
    if c.shared_init_at != c.wipes:
        wipe(c)
        register_node(c)
        run_init(c)
        signed(c)
        c.shared_init_at = c.wipes
    return c


@pytest.mark.parametrize("who", ["anonymous", "token"])
@pytest.mark.parametrize("what", list(CALLS))
def test_who_may_do_what(secured: Cluster, who: str, what: str) -> None:
    allowed = what in (ANONYMOUS_ALLOWED if who == "anonymous" else TOKEN_ALLOWED)
    before = versions(secured.srv)
    client = token_client(secured, None if who == "anonymous" else TOKEN)
    try:
        if allowed:
            assert CALLS[what](client) is not None
            return
        with pytest.raises(APIError) as e:
            CALLS[what](client)
    finally:
        client.close()
    assert e.value.status == 403, str(e.value)
    assert {k: v for k, v in versions(secured.srv).items() if not k[0] == "certificatesigningrequests"} == \
        {k: v for k, v in before.items() if not k[0] == "certificatesigningrequests"}


@pytest.mark.parametrize("who,what,fixture", [
    ("anonymous", "get kubeadm-config", "09-kubeadm-config-anon-403.http"),
    ("token", "get cluster-info", "27-token-cluster-info-403.http"),
    ("token", "get token secret", "28-token-secret-get-403.http"),
])
def test_refusals_read_as_kube_apiservers(secured: Cluster, who: str, what: str, fixture: str) -> None:
    client = token_client(secured, None if who == "anonymous" else TOKEN)
    try:
        with pytest.raises(APIError) as e:
            CALLS[what](client)
    finally:
        client.close()
    assert recorded_message(fixture) in str(e.value)


def test_a_bootstrap_tokens_node_csr_is_approved_and_signed(secured: Cluster) -> None:
    # kubeadm:node-autoapprove-bootstrap lets the approver approve a node client CSR from a token.
    client = token_client(secured, TOKEN)
    name = "node-csr-worker-7"
    try:
        client.create(csr_object(name, "worker-7"))

        def issued() -> str | None:
            return ((client.get("CertificateSigningRequest", name) or {}).get("status") or {}).get("certificate")

        cert_b64 = secured.srv.wait_for(issued, timeout=5)
        csr = client.get("CertificateSigningRequest", name)
    finally:
        client.close()
    assert csr["spec"]["username"] == f"system:bootstrap:{TOKEN_ID}"
    assert [c["type"] for c in csr["status"]["conditions"]] == ["Approved"]
    cert = x509.load_pem_x509_certificate(base64.b64decode(cert_b64))
    assert cert.issuer == x509.load_pem_x509_certificate(ca_pem(secured)).subject
    assert pki.subject_of(cert) == ("system:node:worker-7", ["system:nodes"])


def test_a_wrong_or_unknown_token_is_401_not_anonymous(secured: Cluster) -> None:
    for token in (f"{TOKEN_ID}.{'0' * 16}", f"zzzzzz.{SECRET}"):
        assert bootstrap_status(secured, token) == 401


def test_token_create_and_delete_survive_a_lost_response(initialized: Cluster) -> None:
    # The server does the write but the answer never arrives (a read timeout): the retry must not
    # turn our own success into "already exists" / "not found".
    from kbootd.cluster import tokens
    from kbootd.token import BootstrapToken

    c, srv = initialized, initialized.srv
    ctx = make_context(root=str(c.root), reporter=RecordingReporter())
    kc = apiclient.load_kubeconfig(ctx, "/etc/kubernetes/admin.conf")
    client = Client(KubernetesTransport(kc, request_timeout=0.3), timeout=5, interval=0.5)
    try:
        srv.faults.delay_next(1, 0.6, method="POST", path="/api/v1/namespaces/kube-system/secrets")
        tok = tokens.create_token(client, BootstrapToken.parse("lostrs." + SECRET), ttl=3600)
        assert tok.full == "lostrs." + SECRET
        assert srv.store.get("secrets", "bootstrap-token-lostrs", "kube-system") is not None
        srv.faults.delay_next(1, 0.6, method="DELETE", path="/api/v1/namespaces/kube-system/secrets/")
        assert tokens.delete_tokens(client, ["lostrs"]) == ['bootstrap token "lostrs" deleted']
        assert srv.store.get("secrets", "bootstrap-token-lostrs", "kube-system") is None
        # An existing token is still refused, and a missing one still not found.
        with pytest.raises(KbootdError, match="'abcdef' already exists"):
            tokens.create_token(client, BootstrapToken.parse(TOKEN))
        with pytest.raises(KbootdError, match='"lostrs" not found'):
            tokens.delete_tokens(client, ["lostrs"])
    finally:
        client.close()


@pytest.mark.parametrize("name,ok", [("kubernetes.default.svc", True), ("cp-1", True), ("wrong.example", False)])
def test_tls_server_name_is_honoured(initialized: Cluster, name: str, ok: bool) -> None:
    # kubeconfig's tls-server-name: the serving certificate must hold that name, whatever the URL's
    # host is (the kubernetes client 22.6 of Debian 12 has no tls_server_name setting).
    from kbootd.errors import SecurityError

    kc = KubeConfig(path="(test)", server=initialized.url, cluster={}, ca_pem=ca_pem(initialized),
                    tls_server_name=name)
    client = kubeconfig_client(kc)
    try:
        if ok:
            assert client.raw_get("/healthz") == (200, "ok")
        else:
            with pytest.raises(SecurityError):
                client.raw_get("/healthz")
    finally:
        client.close()


def test_rerunning_the_coredns_addon_on_a_running_cluster_succeeds(initialized: Cluster, run_cli: Any) -> None:
    # A real API server answers 422 (fixture 44), not 409, when kube-dns is created again: its fixed
    # clusterIP is taken. kubeadm then updates the Service; so must kbootd, or no re-run converges.
    srv = initialized.srv
    rc, out, err = run_cli("phase", "init", "addon/coredns", "--root", str(initialized.root),
                           "--config", str(initialized.config_file))
    assert rc == 0, err
    assert "Applied essential addon: CoreDNS" in out
    assert [(r.method, r.status) for r in srv.requests if r.path == "/api/v1/namespaces/kube-system/services"][-1] \
        == ("POST", 422)
    # A Service changed by hand is put back (updated, keeping its IP).
    srv.store.mutate("services", "kube-dns", lambda o: o["spec"].update(selector={"k8s-app": "other"}),
                     namespace="kube-system")
    rc, _, err = run_cli("phase", "init", "addon/coredns", "--root", str(initialized.root),
                         "--config", str(initialized.config_file))
    assert rc == 0, err
    svc = srv.store.get("services", "kube-dns", "kube-system")
    assert svc["spec"]["selector"] == {"k8s-app": "kube-dns"} and svc["spec"]["clusterIP"] == "10.96.0.10"


def test_a_dns_service_ip_held_by_another_service_is_a_clear_error(cluster: Cluster) -> None:
    cluster.srv.store.create({"apiVersion": "v1", "kind": "Service",
                              "metadata": {"name": "squatter", "namespace": "default"},
                              "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 53}]}})
    with pytest.raises(PhaseError, match="failed to allocate IP 10.96.0.10: provided IP is already allocated"):
        run_init(cluster)
    assert cluster.srv.store.get("services", "kube-dns", "kube-system") is None
