"""Replay every request of shared/fixtures/apiserver/README.md against the test API server.

Each case first puts the server in the state the real cluster was in when the response was
recorded (the same objects, written by the same managers at the same clock times), sends the same
request with the same credentials and body, and compares status, the headers that matter, and the
JSON body field for field and in order. Values that are unique per cluster are masked: uid,
resourceVersion, creationTimestamp, times, the issued certificate. The JWS in cluster-info is not
masked: the server signs the recorded kubeconfig with the same token, so it must be identical.
"""

from __future__ import annotations

import base64
import copy
import http.client
import json
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from kbootd import jws
from tests.apiserver import TestAPIServer, kubeadm, recorded
from tests.apiserver.clock import Clock, parse_time

pytestmark = pytest.mark.skipif(not recorded.available(), reason="shared/fixtures/apiserver not present")

UA = "kbootd-fixtures/1.0"
TOKEN = "abcdef.0123456789abcdef"
CHUNKED = {"08", "20", "21", "30", "31", "40", "41"}
MASK = "<masked>"
MASKED_KEYS = {"uid", "resourceVersion", "creationTimestamp", "time", "lastUpdateTime", "lastTransitionTime",
               "certificate"}


def _fixture_json(name: str) -> Any:
    return recorded.load(name).json() if recorded.available() else {}


def mask(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: MASK if k in MASKED_KEYS and isinstance(v, str) else mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v) for v in value]
    return value


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    raw: bytes

    def json(self) -> Any:
        return json.loads(self.raw)


class Env:
    """The server plus TLS contexts for the four kinds of caller in the fixtures."""

    def __init__(self, srv: TestAPIServer, tmp: Path) -> None:
        self.srv = srv
        self.contexts: dict[str, ssl.SSLContext] = {}
        for who, identity in (("anonymous", None), ("token", None), ("admin", "admin"),
                              ("nodecert", "node:worker-1")):
            ctx = ssl.create_default_context(cafile=str(srv.ca_file))
            if identity:
                issued = srv.issue_client_cert(identity)
                (tmp / f"{who}.crt").write_bytes(issued.cert_pem)
                (tmp / f"{who}.key").write_bytes(issued.key_pem)
                ctx.load_cert_chain(tmp / f"{who}.crt", tmp / f"{who}.key")
            self.contexts[who] = ctx

    def request(self, method: str, path: str, auth: str = "anonymous", body: Any = None,
                content_type: str = "application/json", user_agent: str = UA) -> Response:
        headers = {"User-Agent": user_agent, "Accept": "application/json"}
        ctx = self.contexts.get(auth, self.contexts["anonymous"])
        if auth == "token":
            headers["Authorization"] = f"Bearer {TOKEN}"
        elif auth.startswith("bearer:"):
            headers["Authorization"] = f"Bearer {auth[7:]}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        conn = http.client.HTTPSConnection(self.srv.host, self.srv.port, context=ctx, timeout=10)
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()

    # --- scene setting -------------------------------------------------------------------------

    def at(self, when: str) -> None:
        self.srv.clock.set(when)

    def absent(self, resource: str, name: str, namespace: str = "") -> None:
        if self.srv.store.get(resource, name, namespace) is not None:
            self.srv.store.delete(resource, name, namespace)

    def write(self, obj: dict[str, Any], manager: str, when: str, subresource: str = "") -> dict[str, Any]:
        """Create or update as `manager` at a clock time, like the recorded cluster's writers."""
        self.at(when)
        meta = obj["metadata"]
        store = self.srv.store
        if store.get(obj["kind"], meta["name"], meta.get("namespace", "")) is None and not subresource:
            return store.create(obj, manager=manager)
        return store.update(obj, manager=manager, subresource=subresource)


@pytest.fixture(scope="module")
def env() -> Env:
    clock = Clock()
    clock.freeze("2026-11-24T19:33:20Z")
    with tempfile.TemporaryDirectory() as tmp, TestAPIServer(clock=clock) as srv:
        yield Env(srv, Path(tmp))


# --- the states the recordings were made in ------------------------------------------------------


def before_bootstrap_token(e: Env) -> None:
    e.at("2026-11-24T19:33:30Z")
    kubeadm.grant_cluster_admins(e.srv.store)
    for res, name in (("rolebindings", "kubeadm:bootstrap-signer-clusterinfo"),
                      ("roles", "kubeadm:bootstrap-signer-clusterinfo"), ("configmaps", "cluster-info")):
        e.absent(res, name, "kube-public")


def initialized(e: Env) -> None:
    """upload-config (19:33:27, rewritten 19:33:39) and bootstrap-token (19:33:43), as recorded."""
    store = e.srv.store
    if store.get("configmaps", "cluster-info", "kube-public") is not None and \
            store.get("secrets", "bootstrap-token-abcdef", "kube-system") is not None:
        e.at("2026-11-24T19:35:00Z")
        return
    kubeadm.grant_cluster_admins(store)
    kubelet = _fixture_json("24")
    kubeadm_config = _fixture_json("25")
    for cm in (kubelet, kubeadm_config):
        draft = {"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": cm["metadata"]["name"], "namespace": "kube-system"}, "data": {}}
        draft["data"] = {k: "" for k in cm["data"]}
        e.write(draft, "kubeadm", "2026-11-24T19:33:27Z")
    for cm in (kubelet, kubeadm_config):
        final = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "name": cm["metadata"]["name"], "namespace": "kube-system",
            **({"annotations": cm["metadata"]["annotations"]} if "annotations" in cm["metadata"] else {})},
            "data": cm["data"]}
        e.write(final, "kubeadm", "2026-11-24T19:33:39Z")
    e.at("2026-11-24T19:33:39Z")
    kubeadm.upload_config(store, kubeadm_config["data"]["ClusterConfiguration"], kubelet["data"]["kubelet"],
                          kubelet["metadata"]["annotations"]["kubeadm.kubernetes.io/component-config.hash"])
    e.at("2026-11-24T19:33:43Z")
    secret = _fixture_json("22")
    store.seed({"apiVersion": "v1", "kind": "Secret", "type": secret["type"],
                "metadata": {"name": "bootstrap-token-abcdef", "namespace": "kube-system"},
                "data": secret["data"]}, manager="kubeadm")
    kubeadm.bootstrap_token_rbac(store)
    kubeadm.cluster_info(store, "https://127.0.0.1:16443", b"", kubeconfig=_fixture_json("08")["data"]["kubeconfig"])
    e.srv.wait_for(lambda: "jws-kubeconfig-abcdef" in
                   (store.get("configmaps", "cluster-info", "kube-public") or {}).get("data", {}))
    e.at("2026-11-24T19:35:00Z")


def example_exists(e: Env) -> None:
    initialized(e)
    e.absent("configmaps", "kbootd-example", "kube-system")
    e.write({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kbootd-example", "namespace": "kube-system"},
             "data": {"key": "v1"}}, "kbootd-fixtures", "2026-11-24T19:34:43Z")


NODE_STATUS_UNKNOWN = _fixture_json("20").get("status", {}).get("conditions", [])


def control_plane_node(e: Env) -> None:
    """kbootd-cp as 19 created it, then as the controller-manager and kubeadm changed it (state before 20)."""
    initialized(e)
    e.absent("nodes", "kbootd-cp")
    e.at("2026-11-24T19:33:26Z")
    r = e.request("POST", "/api/v1/nodes", "admin", REQUEST_BODIES["19"])
    assert r.status == 201, r.raw

    def node(**changes: Any) -> dict[str, Any]:
        obj = e.srv.store.get("nodes", "kbootd-cp")
        for path, value in changes.items():
            section, _, key = path.partition("__")
            obj.setdefault(section, {})[key] = value
        return obj

    labels = {**node()["metadata"]["labels"], "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux"}
    e.write(node(metadata__labels=labels, metadata__annotations={"node.alpha.kubernetes.io/ttl": "0"},
                 spec__podCIDR="10.244.0.0/24", spec__podCIDRs=["10.244.0.0/24"]),
            "kube-controller-manager", "2026-11-24T19:33:26Z")
    annotations = {**node()["metadata"]["annotations"],
                   "kubeadm.alpha.kubernetes.io/cri-socket": "unix:///var/run/containerd/containerd.sock"}
    e.write(node(metadata__annotations=annotations), "kubeadm", "2026-11-24T19:33:27Z")
    e.write(node(status__conditions=copy.deepcopy(NODE_STATUS_UNKNOWN)), "kube-controller-manager",
            "2026-11-24T19:34:26Z", subresource="status")
    e.write(node(spec__taints=[{"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}]),
            "kube-controller-manager", "2026-11-24T19:34:26Z")
    e.at("2026-11-24T19:34:58Z")


def control_plane_node_after_20(e: Env) -> None:
    """The controller-manager put its unreachable taint back right after 20 (visible in 21)."""
    control_plane_node(e)
    r = e.request("PATCH", "/api/v1/nodes/kbootd-cp", "admin", REQUEST_BODIES["20"],
                  "application/strategic-merge-patch+json")
    assert r.status == 200, r.raw
    taints = e.srv.store.get("nodes", "kbootd-cp")["spec"]["taints"]
    node = e.srv.store.get("nodes", "kbootd-cp")
    node["spec"]["taints"] = taints + [{"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}]
    e.write(node, "kube-controller-manager", "2026-11-24T19:34:58Z")


def worker_node(e: Env) -> None:
    """worker-1 as a real kubelet registered it and the controller-manager completed it (state of 40)."""
    initialized(e)
    e.absent("nodes", "worker-1")
    recorded_node = _fixture_json("40")
    meta = recorded_node["metadata"]
    status = copy.deepcopy(recorded_node["status"])
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    ready.update(status="False", reason="KubeletNotReady",
                 message="container runtime status check may not have completed yet")
    kubelet_annotations = {k: v for k, v in meta["annotations"].items() if k != "node.alpha.kubernetes.io/ttl"}
    e.write({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "worker-1", "labels": meta["labels"],
                                                             "annotations": kubelet_annotations},
             "status": status}, "kubelet", "2026-11-24T19:42:38Z")
    node = e.srv.store.get("nodes", "worker-1")
    node["metadata"]["annotations"]["node.alpha.kubernetes.io/ttl"] = "0"
    node["spec"].update(podCIDR="10.244.5.0/24", podCIDRs=["10.244.5.0/24"])
    e.write(node, "kube-controller-manager", "2026-11-24T19:42:38Z")
    node = e.srv.store.get("nodes", "worker-1")
    node["status"] = recorded_node["status"]
    e.write(node, "kubelet", "2026-11-24T19:42:38Z", subresource="status")
    e.at("2026-11-24T19:42:57Z")


def worker_and_control_plane(e: Env) -> None:
    worker_node(e)
    if e.srv.store.get("nodes", "kbootd-cp") is None:
        control_plane_node(e)
    e.at("2026-11-24T19:42:58Z")


def csr_absent(*names: str) -> Callable[[Env], None]:
    def setup(e: Env) -> None:
        initialized(e)
        for n in names:
            e.absent("certificatesigningrequests", n)
        e.at("2026-11-24T19:35:23Z" if "node-csr-worker-1" in names else "2026-11-24T19:35:34Z")
    return setup


def worker_csr_issued(e: Env) -> None:
    if e.srv.store.get("certificatesigningrequests", "node-csr-worker-1") is None:
        csr_absent("node-csr-worker-1")(e)
        assert e.request("POST", CSRS, "token", REQUEST_BODIES["29"]).status == 201
    e.srv.wait_for(lambda: e.srv.store.get("certificatesigningrequests", "node-csr-worker-1")["status"]
                   .get("certificate"))


def masters_csr_created(e: Env) -> None:
    if e.srv.store.get("certificatesigningrequests", "node-csr-masters") is None:
        csr_absent("node-csr-masters")(e)
        assert e.request("POST", CSRS, "token", REQUEST_BODIES["32"]).status == 201
    e.srv.settle()  # the controllers have seen it and leave it pending


def expired_token(e: Env) -> None:
    """Token `expire` from 23, five seconds old, and the cleaner has removed its Secret (as for 12)."""
    initialized(e)
    e.absent("secrets", "bootstrap-token-expire", "kube-system")
    e.at("2026-11-24T19:34:03Z")
    assert e.request("POST", "/api/v1/namespaces/kube-system/secrets", "admin", REQUEST_BODIES["23"]).status == 201
    e.at("2026-11-24T19:34:20Z")
    e.srv.wait_for(lambda: e.srv.store.get("secrets", "bootstrap-token-expire", "kube-system") is None)
    e.at("2026-11-24T19:35:00Z")


def kube_dns_service() -> dict[str, Any]:
    """The kube-dns Service as kubeadm creates it (the request body of 44)."""
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system",
                         "labels": {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true",
                                    "kubernetes.io/name": "CoreDNS"},
                         "annotations": {"prometheus.io/port": "9153", "prometheus.io/scrape": "true"}},
            "spec": {"clusterIP": "10.96.0.10", "selector": {"k8s-app": "kube-dns"},
                     "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                               {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                               {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}]}}


def kube_dns_exists(e: Env) -> None:
    initialized(e)
    if e.srv.store.get("services", "kube-dns", "kube-system") is None:
        e.write(kube_dns_service(), "kubeadm", "2026-11-24T19:35:00Z")


# --- the requests ---------------------------------------------------------------------------------

CLUSTER_INFO = "/api/v1/namespaces/kube-public/configmaps/cluster-info"
KUBEADM_CONFIG = "/api/v1/namespaces/kube-system/configmaps/kubeadm-config"
CSRS = "/apis/certificates.k8s.io/v1/certificatesigningrequests"


def _csr_body(name: str, fixture: str, signer: str = "kubernetes.io/kube-apiserver-client-kubelet") -> dict[str, Any]:
    request = _fixture_json(fixture).get("spec", {}).get("request", "")
    return {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest", "metadata": {"name": name},
            "spec": {"request": request, "signerName": signer, "usages": ["digital signature", "client auth"]}}


def _cm(name: str, data: dict[str, str], **meta: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "kube-system", **meta},
            "data": data}


REQUEST_BODIES: dict[str, Any] = {
    "13": _cm("kubeadm-config", {"ClusterConfiguration": "kind: ClusterConfiguration\n"}),
    "15": _cm("kubeadm-config", {"ClusterConfiguration": "kind: ClusterConfiguration\n"}, resourceVersion="1"),
    "16": _cm("kbootd-example", {"key": "v1"}),
    "17": _cm("kbootd-example", {"key": "v2"}),
    "18": _cm("does-not-exist", {"key": "v1"}),
    "19": {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "kbootd-cp", "labels": {
        "kubernetes.io/hostname": "kbootd-cp", "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}}},
    "20": {"metadata": {"labels": {"node-role.kubernetes.io/control-plane": ""}},
           "spec": {"taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]}},
    "21": {"metadata": {"labels": {"example.com/patched-by": "json-merge-patch"}},
           "spec": {"taints": [{"key": "example.com/json-merge", "value": "yes", "effect": "PreferNoSchedule"}]}},
    "23": {"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
           "metadata": {"name": "bootstrap-token-expire", "namespace": "kube-system"},
           "data": _fixture_json("23").get("data", {})},
    "29": _csr_body("node-csr-worker-1", "29"),
    "32": _csr_body("node-csr-masters", "32"),
    "34": _csr_body("csr-masters-apiserver-client", "32", "kubernetes.io/kube-apiserver-client"),
    "44": kube_dns_service(),
    "41": {"metadata": {"annotations": {"kubeadm.alpha.kubernetes.io/cri-socket":
                                        "unix:///var/run/containerd/containerd.sock"}}},
    "42": {"metadata": {"labels": {"example.com/x": "y"}}},
    "43": {"metadata": {"labels": {"node-role.kubernetes.io/worker": ""}}},
}
SMP = "application/strategic-merge-patch+json"


@dataclass
class Case:
    fixture: str
    method: str
    path: str
    auth: str = "anonymous"
    setup: Callable[[Env], None] | None = None
    content_type: str = "application/json"
    check: Callable[[Env, Response], None] | None = None
    body: Any = field(default=None)

    def request_body(self) -> Any:
        return self.body if self.body is not None else REQUEST_BODIES.get(self.fixture)


def check_jws(e: Env, r: Response) -> None:
    data = r.json()["data"]
    assert jws.verify(data["kubeconfig"], data["jws-kubeconfig-abcdef"], "abcdef", "0123456789abcdef")


def check_rv_up_by_one(e: Env, r: Response) -> None:
    assert int(r.json()["metadata"]["resourceVersion"]) == int(e.rv_before) + 1  # type: ignore[attr-defined]


def check_issued_cert(e: Env, r: Response) -> None:
    obj = r.json()
    cert = x509.load_pem_x509_certificate(base64.b64decode(obj["status"]["certificate"]))
    created = parse_time(obj["metadata"]["creationTimestamp"])
    assert cert.subject.rfc4514_string() == "CN=system:node:worker-1,O=system:nodes"
    assert cert.issuer.rfc4514_string() == "CN=kubernetes"
    assert cert.not_valid_before_utc == created - timedelta(minutes=5)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=365)
    e.srv.ca.cert.public_key().verify  # noqa: B018 - the CA that signed it is the server's:
    assert cert.issuer == e.srv.ca.cert.subject


def remember_rv(setup: Callable[[Env], None]) -> Callable[[Env], None]:
    def wrapped(e: Env) -> None:
        setup(e)
        e.rv_before = e.srv.store.get("configmaps", "kbootd-example", "kube-system")["metadata"]["resourceVersion"]  # type: ignore[attr-defined]
    return wrapped


CASES = [
    Case("01", "GET", "/version"),
    Case("02", "GET", "/healthz"),
    Case("03", "GET", "/livez"),
    Case("04", "GET", "/readyz"),
    Case("05", "GET", "/readyz?verbose"),
    Case("06", "GET", CLUSTER_INFO, setup=before_bootstrap_token),
    Case("07", "GET", CLUSTER_INFO, "admin", setup=before_bootstrap_token),
    Case("08", "GET", CLUSTER_INFO, setup=initialized, check=check_jws),
    Case("09", "GET", KUBEADM_CONFIG, setup=initialized),
    Case("10", "GET", KUBEADM_CONFIG, "bearer:abcdef.0000000000000000", setup=initialized),
    Case("11", "GET", KUBEADM_CONFIG, "bearer:zzzzzz.0123456789abcdef", setup=initialized),
    Case("12", "GET", KUBEADM_CONFIG, "bearer:expire.0123456789abcdef", setup=expired_token),
    Case("13", "POST", "/api/v1/namespaces/kube-system/configmaps", "admin", setup=initialized),
    Case("14", "GET", "/api/v1/namespaces/kube-system/configmaps/does-not-exist", "admin", setup=initialized),
    Case("15", "PUT", KUBEADM_CONFIG, "admin", setup=initialized),
    Case("16", "POST", "/api/v1/namespaces/kube-system/configmaps", "admin",
         setup=lambda e: (initialized(e), e.absent("configmaps", "kbootd-example", "kube-system"),
                          e.at("2026-11-24T19:34:43Z"))),
    Case("17", "PUT", "/api/v1/namespaces/kube-system/configmaps/kbootd-example", "admin",
         setup=remember_rv(example_exists), check=check_rv_up_by_one),
    Case("18", "PUT", "/api/v1/namespaces/kube-system/configmaps/does-not-exist", "admin", setup=initialized),
    Case("19", "POST", "/api/v1/nodes", "admin",
         setup=lambda e: (initialized(e), e.absent("nodes", "kbootd-cp"), e.at("2026-11-24T19:33:26Z"))),
    Case("20", "PATCH", "/api/v1/nodes/kbootd-cp", "admin", setup=control_plane_node, content_type=SMP),
    Case("21", "PATCH", "/api/v1/nodes/kbootd-cp", "admin", setup=control_plane_node_after_20,
         content_type="application/merge-patch+json"),
    Case("22", "GET", "/api/v1/namespaces/kube-system/secrets/bootstrap-token-abcdef", "admin", setup=initialized),
    Case("23", "POST", "/api/v1/namespaces/kube-system/secrets", "admin",
         setup=lambda e: (initialized(e), e.absent("secrets", "bootstrap-token-expire", "kube-system"),
                          e.at("2026-11-24T19:34:03Z"))),
    Case("24", "GET", "/api/v1/namespaces/kube-system/configmaps/kubelet-config", "token", setup=initialized),
    Case("25", "GET", KUBEADM_CONFIG, "token", setup=initialized),
    Case("26", "GET", "/api/v1/nodes/worker-1", "token",
         setup=lambda e: (initialized(e), e.absent("nodes", "worker-1"))),
    Case("27", "GET", CLUSTER_INFO, "token", setup=initialized),
    Case("28", "GET", "/api/v1/namespaces/kube-system/secrets/bootstrap-token-abcdef", "token", setup=initialized),
    Case("29", "POST", CSRS, "token", setup=csr_absent("node-csr-worker-1")),
    Case("30", "GET", f"{CSRS}/node-csr-worker-1", "token", setup=worker_csr_issued, check=check_issued_cert),
    Case("31", "GET", f"{CSRS}?fieldSelector=metadata.name%3Dnode-csr-worker-1", "token", setup=worker_csr_issued),
    Case("32", "POST", CSRS, "token", setup=csr_absent("node-csr-masters")),
    Case("33", "GET", f"{CSRS}/node-csr-masters", "token", setup=masters_csr_created),
    Case("34", "POST", CSRS, "token", setup=csr_absent("csr-masters-apiserver-client")),
    Case("35", "GET", "/apis/bootstrap.kubernetes.io", "admin", setup=initialized),
    Case("40", "GET", "/api/v1/nodes/worker-1", "nodecert", setup=worker_node),
    Case("41", "PATCH", "/api/v1/nodes/worker-1", "nodecert", setup=worker_node, content_type=SMP),
    Case("42", "PATCH", "/api/v1/nodes/kbootd-cp", "nodecert", setup=worker_and_control_plane, content_type=SMP),
    Case("43", "PATCH", "/api/v1/nodes/worker-1", "nodecert", setup=worker_node, content_type=SMP),
    Case("44", "POST", "/api/v1/namespaces/kube-system/services", "admin", setup=kube_dns_exists),
]


def _assert_headers(rec: recorded.Recorded, r: Response) -> None:
    assert r.headers["content-type"] == rec.headers["content-type"]
    assert ("x-content-type-options" in r.headers) == ("x-content-type-options" in rec.headers)
    if "x-content-type-options" in rec.headers:
        assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-cache, private"
    assert len(r.headers["audit-id"]) == 36 and "date" in r.headers
    pf = ("x-kubernetes-pf-flowschema-uid", "x-kubernetes-pf-prioritylevel-uid")
    assert all((h in r.headers) == (rec.status != 401) for h in pf)
    if rec.name[:2] in CHUNKED:
        assert r.headers.get("transfer-encoding") == "chunked" and "content-length" not in r.headers
    else:
        assert "transfer-encoding" not in r.headers and int(r.headers["content-length"]) == len(r.raw)


@pytest.mark.parametrize("case", CASES, ids=lambda c: recorded.load(c.fixture).name if recorded.available() else c.fixture)
def test_replay(env: Env, case: Case) -> None:
    rec = recorded.load(case.fixture)
    if case.setup:
        case.setup(env)
    r = env.request(case.method, case.path, case.auth, case.request_body(), case.content_type)
    assert r.status == rec.status, r.raw
    _assert_headers(rec, r)
    if rec.is_json:
        if rec.name.startswith("01"):  # /version: always indented, no trailing newline
            assert r.raw == json.dumps(r.json(), indent=2).encode()
            assert list(r.json()) == list(rec.json())
        else:
            assert r.raw == json.dumps(r.json(), separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
            # Field for field and in the same order (Go struct order), unique values masked.
            assert json.dumps(mask(r.json()), indent=1) == json.dumps(mask(rec.json()), indent=1)
    else:
        assert r.raw == rec.raw_body
    if case.check:
        case.check(env, r)


def test_version_matches_when_configured(env: Env) -> None:
    """The server's /version document is configurable; with the recorded values it is byte-identical."""
    rec = recorded.load("01")
    saved = env.srv.version
    env.srv.version = rec.json()
    try:
        assert env.request("GET", "/version").raw == rec.raw_body
    finally:
        env.srv.version = saved


@pytest.mark.parametrize(("user_agent", "query", "pretty"), [
    ("curl/8.5.0", "", True),
    ("Wget/1.21", "", True),
    ("Mozilla/5.0 (X11)", "", True),
    (UA, "?pretty=true", True),
    (UA, "?pretty=1", True),
    ("curl/8.5.0", "?pretty=false", False),
    (UA, "", False),
    ("OpenAPI-Generator/31.0.0/python", "", False),
])
def test_pretty_printing(env: Env, user_agent: str, query: str, pretty: bool) -> None:
    initialized(env)
    rec = recorded.load("14")
    r = env.request("GET", f"/api/v1/namespaces/kube-system/configmaps/does-not-exist{query}", "admin",
                    user_agent=user_agent)
    assert r.status == 404 and r.json() == rec.json()
    if pretty:
        assert r.raw == json.dumps(rec.json(), indent=2).encode()
    else:
        assert r.raw == json.dumps(rec.json(), separators=(",", ":")).encode() + b"\n"


def test_expired_token_is_refused_before_the_cleaner_runs(env: Env) -> None:
    """Fixture 12 was recorded after the Secret was gone; expiry alone must also give the 401."""
    initialized(env)
    env.srv.controllers.enabled["tokencleaner"] = False
    try:
        env.absent("secrets", "bootstrap-token-expire", "kube-system")
        env.at("2026-11-24T19:34:03Z")
        assert env.request("POST", "/api/v1/namespaces/kube-system/secrets", "admin",
                           REQUEST_BODIES["23"]).status == 201
        assert env.request("GET", KUBEADM_CONFIG, "bearer:expire.0123456789abcdef").status == 200
        env.at("2026-11-24T19:34:09Z")
        r = env.request("GET", KUBEADM_CONFIG, "bearer:expire.0123456789abcdef")
        assert r.status == 401 and r.json() == recorded.load("12").json()
        assert env.srv.store.get("secrets", "bootstrap-token-expire", "kube-system") is not None
    finally:
        env.absent("secrets", "bootstrap-token-expire", "kube-system")
        env.srv.controllers.enabled["tokencleaner"] = True


def _token_table(secrets: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    """What `kubeadm token list` prints per token, computed from the listed Secrets."""
    rows = []
    for s in secrets:
        d = {k: base64.b64decode(v).decode() for k, v in s["data"].items()}
        usages = ",".join(sorted(k[len("usage-bootstrap-"):] for k, v in d.items()
                                 if k.startswith("usage-bootstrap-") and v == "true"))
        rows.append((f"{d['token-id']}.{d['token-secret']}", d.get("expiration", "<forever>"), usages,
                     d.get("auth-extra-groups", "")))
    return rows


def _table_rows(name: str) -> list[tuple[str, str, str, str]]:
    lines = (recorded.FIXTURES / "apiserver" / name).read_text().splitlines()[1:]
    return [(p[0], p[2], p[3], p[-1]) for p in (line.split() for line in lines)]


def test_token_list_sees_what_kubeadm_listed(env: Env) -> None:
    """36/38: `kubeadm token list` lists kube-system Secrets with fieldSelector type=bootstrap.kubernetes.io/token."""
    initialized(env)
    for s in env.srv.store.list("secrets", "kube-system"):
        if s["metadata"]["name"] != "bootstrap-token-abcdef":
            env.absent("secrets", s["metadata"]["name"], "kube-system")
    path = "/api/v1/namespaces/kube-system/secrets?fieldSelector=type%3Dbootstrap.kubernetes.io%2Ftoken"
    r = env.request("GET", path, "admin")
    assert r.status == 200
    assert _token_table(r.json()["items"]) == _table_rows("36-kubeadm-token-list.txt")
    # 37: `token create` stores a second token Secret (its id and secret are in the printed join command).
    joined = (recorded.FIXTURES / "apiserver" / "37-kubeadm-token-create-print-join-command.txt").read_text()
    new_token = joined.split("--token ")[1].split()[0]
    env.at("2026-11-24T19:35:47Z")
    body = kubeadm.token_secret(new_token, expires=parse_time("2026-11-25T19:35:47Z"))
    try:
        assert env.request("POST", "/api/v1/namespaces/kube-system/secrets", "admin", body).status == 201
        r = env.request("GET", path, "admin")
        assert _token_table(r.json()["items"]) == _table_rows("38-kubeadm-token-list-after-create.txt")
        assert joined.endswith(" \n")
    finally:
        env.absent("secrets", f"bootstrap-token-{new_token.split('.')[0]}", "kube-system")


def test_get_raw_bootstrap_group_is_not_found(env: Env) -> None:
    """39: kubectl turns the text 404 of 35 into its NotFound message."""
    r = env.request("GET", "/apis/bootstrap.kubernetes.io", "admin")
    text = (recorded.FIXTURES / "apiserver" / "39-kubectl-get-raw-apis-bootstrap.txt").read_text()
    assert r.status == 404 and r.raw == b"404 page not found\n" and "(NotFound)" in text


def test_every_indexed_fixture_is_replayed() -> None:
    index = (recorded.APISERVER_FIXTURES / "README.md").read_text()
    listed = {line.split("|")[1].strip()[:2] for line in index.splitlines()
              if line.startswith("| ") and line.split("|")[1].strip()[:2].isdigit()}
    replayed = {c.fixture for c in CASES} | {"36", "37", "38", "39"}
    assert listed == replayed
