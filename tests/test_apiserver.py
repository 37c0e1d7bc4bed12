"""The test API server as kbootd will meet it: the official `kubernetes` client over TLS.

Only client features that exist in Debian 12's python3-kubernetes 22.6 are used: the typed APIs
with dict bodies, ApiException, watch.Watch and the Configuration attributes.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from kbootd import jws
from tests.apiserver import TestAPIServer, User, kubeadm, pki
from tests.apiserver.clock import parse_time

TOKEN = "abcdef.0123456789abcdef"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def srv() -> Iterator[TestAPIServer]:
    with TestAPIServer(static_tokens={"static-test-token": User("tester", ("testers",))}) as s:
        kubeadm.seed_init(s, token=TOKEN)
        yield s


@pytest.fixture(scope="module")
def admin(srv: TestAPIServer) -> client.ApiClient:
    return srv.api_client("admin")


@pytest.fixture(scope="module")
def bootstrap(srv: TestAPIServer) -> client.ApiClient:
    return srv.api_client(token=TOKEN)


@pytest.fixture(scope="module")
def anonymous(srv: TestAPIServer) -> client.ApiClient:
    return srv.api_client(None)


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def status_of(exc: ApiException) -> dict[str, Any]:
    return json.loads(exc.body)


def raw(srv: TestAPIServer, method: str, path: str, *, who: str | None = None, body: bytes | None = None,
        headers: dict[str, str] | None = None, tmp: Path | None = None) -> tuple[int, dict[str, str], bytes]:
    ctx = ssl.create_default_context(cafile=str(srv.ca_file))
    if who:
        issued = srv.issue_client_cert(who)
        d = Path(srv._workdir) / unique("raw")
        d.mkdir()
        (d / "c.crt").write_bytes(issued.cert_pem)
        (d / "c.key").write_bytes(issued.key_pem)
        ctx.load_cert_chain(d / "c.crt", d / "c.key")
    conn = http.client.HTTPSConnection(srv.host, srv.port, context=ctx, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


# --- CRUD round trips with admin client certificates ------------------------------------------------


def _cm(name: str, data: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data or {"k": "v"}}


def test_configmap_round_trip(admin: client.ApiClient) -> None:
    core = client.CoreV1Api(admin)
    name = unique("cm")
    created = core.create_namespaced_config_map("kube-system", _cm(name, {"a": "1"}))
    assert created.metadata.uid and created.metadata.resource_version and created.data == {"a": "1"}
    assert created.metadata.managed_fields[0].manager == "OpenAPI-Generator"
    got = core.read_namespaced_config_map(name, "kube-system")
    assert got.metadata.uid == created.metadata.uid
    body = _cm(name, {"a": "2"})
    body["metadata"]["resourceVersion"] = created.metadata.resource_version
    replaced = core.replace_namespaced_config_map(name, "kube-system", body)
    assert replaced.data == {"a": "2"}
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)
    patched = core.patch_namespaced_config_map(name, "kube-system", {"data": {"b": "3"}})
    assert patched.data == {"a": "2", "b": "3"}
    listed = core.list_namespaced_config_map("kube-system", field_selector=f"metadata.name={name}")
    assert [i.metadata.name for i in listed.items] == [name]
    status = core.delete_namespaced_config_map(name, "kube-system")
    if not isinstance(status, dict):  # V1Status in older clients, a plain dict in newer ones
        status = admin.sanitize_for_serialization(status)
    assert status["status"] == "Success" and status["details"]["uid"] == created.metadata.uid
    with pytest.raises(ApiException) as e:
        core.read_namespaced_config_map(name, "kube-system")
    assert e.value.status == 404


@pytest.mark.parametrize(("call", "status", "reason", "message"), [
    ("create-existing", 409, "AlreadyExists", 'configmaps "{name}" already exists'),
    ("stale-update", 409, "Conflict", 'Operation cannot be fulfilled on configmaps "{name}": the object has been '
                                      "modified; please apply your changes to the latest version and try again"),
    ("get-missing", 404, "NotFound", 'configmaps "{name}-x" not found'),
    ("replace-missing", 404, "NotFound", 'configmaps "{name}-x" not found'),
    ("delete-missing", 404, "NotFound", 'configmaps "{name}-x" not found'),
    ("patch-missing", 404, "NotFound", 'configmaps "{name}-x" not found'),
    ("bad-name", 422, "Invalid", 'ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": '
                                 "a lowercase RFC 1123 subdomain"),
    ("missing-namespace", 404, "NotFound", 'namespaces "no-such-ns" not found'),
])
def test_errors_map_to_api_exception(admin: client.ApiClient, call: str, status: int, reason: str,
                                     message: str) -> None:
    core = client.CoreV1Api(admin)
    name = unique("err")
    core.create_namespaced_config_map("default", _cm(name))
    calls = {
        "create-existing": lambda: core.create_namespaced_config_map("default", _cm(name)),
        "stale-update": lambda: core.replace_namespaced_config_map(
            name, "default", {**_cm(name), "metadata": {"name": name, "resourceVersion": "1"}}),
        "get-missing": lambda: core.read_namespaced_config_map(f"{name}-x", "default"),
        "replace-missing": lambda: core.replace_namespaced_config_map(f"{name}-x", "default", _cm(f"{name}-x")),
        "delete-missing": lambda: core.delete_namespaced_config_map(f"{name}-x", "default"),
        "patch-missing": lambda: core.patch_namespaced_config_map(f"{name}-x", "default", {"data": {"a": "b"}}),
        "bad-name": lambda: core.create_namespaced_config_map("default", _cm("Bad_Name")),
        "missing-namespace": lambda: core.create_namespaced_config_map("no-such-ns", _cm(name)),
    }
    with pytest.raises(ApiException) as e:
        calls[call]()
    assert e.value.status == status
    body = status_of(e.value)
    assert body["kind"] == "Status" and body["status"] == "Failure" and body["code"] == status
    assert body["reason"] == reason
    assert body["message"].startswith(message.format(name=name))


def test_no_op_update_keeps_resource_version(srv: TestAPIServer, admin: client.ApiClient) -> None:
    core = client.CoreV1Api(admin)
    name = unique("noop")
    created = core.create_namespaced_config_map("default", _cm(name))
    again = core.replace_namespaced_config_map(name, "default", _cm(name))
    assert again.metadata.resource_version == created.metadata.resource_version
    patched = core.patch_namespaced_config_map(name, "default", {"data": {"k": "v"}})
    assert patched.metadata.resource_version == created.metadata.resource_version
    status, headers, _ = raw(srv, "GET", "/livez", headers={"Audit-ID": "my-audit-id"})
    assert (status, headers["audit-id"]) == (200, "my-audit-id")


OBJECTS: list[tuple[str, dict[str, Any]]] = [
    ("Secret", {"apiVersion": "v1", "kind": "Secret", "stringData": {"k": "v"}}),
    ("ServiceAccount", {"apiVersion": "v1", "kind": "ServiceAccount"}),
    ("Service", {"apiVersion": "v1", "kind": "Service", "spec": {"ports": [{"name": "dns", "port": 53,
                                                                          "protocol": "UDP"}],
                                                               "selector": {"k8s-app": "kube-dns"}}}),
    ("Role", {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
              "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}),
    ("RoleBinding", {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "x"},
                     "subjects": [{"kind": "Group", "name": "system:nodes"}]}),
    ("Deployment", {"apiVersion": "apps/v1", "kind": "Deployment", "spec": {
        "selector": {"matchLabels": {"app": "x"}},
        "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
    ("DaemonSet", {"apiVersion": "apps/v1", "kind": "DaemonSet", "spec": {
        "selector": {"matchLabels": {"app": "x"}},
        "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
]


def _namespaced_api(admin: client.ApiClient, kind: str) -> tuple[Any, str]:
    snake = {"Secret": "secret", "ServiceAccount": "service_account", "Service": "service", "Role": "role",
             "RoleBinding": "role_binding", "Deployment": "deployment", "DaemonSet": "daemon_set"}[kind]
    api = {"Role": client.RbacAuthorizationV1Api, "RoleBinding": client.RbacAuthorizationV1Api,
           "Deployment": client.AppsV1Api, "DaemonSet": client.AppsV1Api}.get(kind, client.CoreV1Api)(admin)
    return api, snake


@pytest.mark.parametrize(("kind", "template"), OBJECTS, ids=[k for k, _ in OBJECTS])
def test_namespaced_kinds_round_trip(admin: client.ApiClient, kind: str, template: dict[str, Any]) -> None:
    api, snake = _namespaced_api(admin, kind)
    name = unique(kind.lower())
    body = json.loads(json.dumps(template))
    body["metadata"] = {"name": name, "labels": {"test": name}}
    created = getattr(api, f"create_namespaced_{snake}")("kube-system", body)
    assert created.metadata.name == name and created.metadata.namespace == "kube-system"
    got = getattr(api, f"read_namespaced_{snake}")(name, "kube-system")
    assert got.metadata.uid == created.metadata.uid
    listed = getattr(api, f"list_namespaced_{snake}")("kube-system", label_selector=f"test={name}")
    assert [i.metadata.name for i in listed.items] == [name]
    patched = getattr(api, f"patch_namespaced_{snake}")(name, "kube-system", {"metadata": {"labels": {"p": "1"}}})
    assert patched.metadata.labels == {"test": name, "p": "1"}
    getattr(api, f"delete_namespaced_{snake}")(name, "kube-system")
    with pytest.raises(ApiException) as e:
        getattr(api, f"read_namespaced_{snake}")(name, "kube-system")
    assert e.value.status == 404


def test_defaults_the_real_server_applies(admin: client.ApiClient) -> None:
    core, apps = client.CoreV1Api(admin), client.AppsV1Api(admin)
    name = unique("svc")
    svc = core.create_namespaced_service("kube-system", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
        "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}})
    assert svc.spec.cluster_ip == "10.96.0.10" and svc.spec.type == "ClusterIP"
    assert svc.spec.ports[0].target_port == 53 and svc.spec.session_affinity == "None"
    other = core.create_namespaced_service("kube-system", {"apiVersion": "v1", "kind": "Service",
                                                           "metadata": {"name": unique("svc")},
                                                           "spec": {"ports": [{"port": 80}]}})
    assert other.spec.cluster_ip.startswith("10.") and other.spec.cluster_ip not in ("10.96.0.10", "10.96.0.1")
    secret = core.create_namespaced_secret("default", {"apiVersion": "v1", "kind": "Secret",
                                                       "metadata": {"name": unique("s")}, "stringData": {"a": "b"}})
    assert secret.type == "Opaque" and secret.data == {"a": base64.b64encode(b"b").decode()}
    dep = apps.create_namespaced_deployment("default", {**OBJECTS[5][1], "metadata": {"name": unique("d")}})
    assert dep.metadata.generation == 1 and dep.spec.replicas == 1 and dep.spec.revision_history_limit == 10
    dep2 = apps.patch_namespaced_deployment(dep.metadata.name, "default", {"spec": {"replicas": 3}})
    assert dep2.metadata.generation == 2
    ns = core.read_namespace("kube-system")
    assert ns.status.phase == "Active" and ns.metadata.labels == {"kubernetes.io/metadata.name": "kube-system"}


def test_a_taken_fixed_cluster_ip_is_422_before_any_name_clash(admin: client.ApiClient) -> None:
    # Fixture 44: the registry allocates a fixed clusterIP before it looks for the name, so
    # re-creating an existing Service answers 422 Invalid; without a fixed IP it is the usual 409.
    core = client.CoreV1Api(admin)
    name, ip = unique("dns"), "10.96.0.53"

    def svc(n: str, cluster_ip: str | None = ip) -> dict[str, Any]:
        spec: dict[str, Any] = {"ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}
        if cluster_ip:
            spec["clusterIP"] = cluster_ip
        return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": n}, "spec": spec}

    core.create_namespaced_service("kube-system", svc(name))
    for body in (svc(name), svc(unique("other"))):  # the same Service again, or another one wanting its IP
        with pytest.raises(ApiException) as e:
            core.create_namespaced_service("kube-system", body)
        st = status_of(e.value)
        assert (e.value.status, st["reason"], st["details"]["kind"]) == (422, "Invalid", "Service")
        assert st["details"]["causes"] == [{
            "reason": "FieldValueInvalid", "field": "spec.clusterIPs",
            "message": f'Invalid value: []string{{"{ip}"}}: failed to allocate IP {ip}: provided IP is already '
                       "allocated"}]
    with pytest.raises(ApiException) as e:
        core.create_namespaced_service("kube-system", svc(name, None))
    assert (e.value.status, status_of(e.value)["reason"]) == (409, "AlreadyExists")
    # An update keeping its own IP is fine; once deleted, the IP can be had again.
    current = core.read_namespaced_service(name, "kube-system")
    current.metadata.labels = {"updated": "yes"}
    assert core.replace_namespaced_service(name, "kube-system", current).spec.cluster_ip == ip
    core.delete_namespaced_service(name, "kube-system")
    assert core.create_namespaced_service("kube-system", svc(unique("again"))).spec.cluster_ip == ip


def test_cluster_scoped_kinds(admin: client.ApiClient) -> None:
    rbac = client.RbacAuthorizationV1Api(admin)
    name = unique("cr")
    rbac.create_cluster_role({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                              "metadata": {"name": name},
                              "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]})
    crb = rbac.create_cluster_role_binding({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "User", "name": "someone"}]})
    assert crb.subjects[0].api_group == "rbac.authorization.k8s.io"  # defaulted like the real server
    # RBAC objects are created by a PUT too (unlike ConfigMaps, fixture 18).
    put = rbac.replace_cluster_role(f"{name}-put", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": f"{name}-put"},
        "rules": []})
    assert put.metadata.uid
    assert {i.metadata.name for i in rbac.list_cluster_role().items} >= {"cluster-admin", name, f"{name}-put"}
    rbac.delete_cluster_role_binding(name)
    rbac.delete_cluster_role(name)


def test_node_create_patch_and_taints(admin: client.ApiClient) -> None:
    core = client.CoreV1Api(admin)
    name = unique("node")
    node = core.create_node({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
    assert [(t.key, t.effect) for t in node.spec.taints] == [("node.kubernetes.io/not-ready", "NoSchedule")]
    patched = core.patch_node(name, {"metadata": {"labels": {"node-role.kubernetes.io/control-plane": ""}},
                                     "spec": {"taints": [{"key": "node-role.kubernetes.io/control-plane",
                                                          "effect": "NoSchedule"}]}})
    # spec.taints is atomic: the patch replaces the list (fixture 20).
    assert [t.key for t in patched.spec.taints] == ["node-role.kubernetes.io/control-plane"]
    assert patched.metadata.labels == {"node-role.kubernetes.io/control-plane": ""}
    removed = core.patch_node(name, {"metadata": {"labels": {"node-role.kubernetes.io/control-plane": None}}})
    assert not removed.metadata.labels
    core.delete_node(name)


# --- other identities -------------------------------------------------------------------------------


def test_bootstrap_token_identity(bootstrap: client.ApiClient) -> None:
    core = client.CoreV1Api(bootstrap)
    cm = core.read_namespaced_config_map("kubeadm-config", "kube-system")
    assert "ClusterConfiguration" in cm.data
    assert core.read_namespaced_config_map("kubelet-config", "kube-system").data["kubelet"]
    with pytest.raises(ApiException) as e:
        core.read_namespaced_node("worker-x") if hasattr(core, "read_namespaced_node") else core.read_node("worker-x")
    assert e.value.status == 404
    for call in (lambda: core.read_namespaced_secret(f"bootstrap-token-{TOKEN[:6]}", "kube-system"),
                 lambda: core.read_namespaced_config_map("cluster-info", "kube-public"),
                 lambda: core.list_namespaced_config_map("kube-system")):
        with pytest.raises(ApiException) as e:
            call()
        assert e.value.status == 403
        assert 'User "system:bootstrap:abcdef" cannot' in status_of(e.value)["message"]


@pytest.mark.parametrize(("token", "expected"), [
    ("abcdef.0000000000000000", 401),
    ("zzzzzz.0123456789abcdef", 401),
    ("not-a-bootstrap-token", 401),
    ("static-test-token", 403),  # authenticates as "tester", who may read nothing
])
def test_bad_tokens_are_401(srv: TestAPIServer, token: str, expected: int) -> None:
    core = client.CoreV1Api(srv.api_client(token=token))
    with pytest.raises(ApiException) as e:
        core.read_namespaced_config_map("kubeadm-config", "kube-system")
    assert e.value.status == expected


def test_anonymous_reads_cluster_info_only(srv: TestAPIServer, anonymous: client.ApiClient) -> None:
    core = client.CoreV1Api(anonymous)
    cm = srv.wait_for(lambda: (lambda c: c if "jws-kubeconfig-abcdef" in (c.data or {}) else None)(
        core.read_namespaced_config_map("cluster-info", "kube-public")))
    assert jws.verify(cm.data["kubeconfig"], cm.data["jws-kubeconfig-abcdef"], "abcdef", "0123456789abcdef")
    # kubeadm's Role allows `get` only: listing, even pinned to the name, is refused.
    for call in (lambda: core.list_namespaced_config_map("kube-public"),
                 lambda: core.list_namespaced_config_map("kube-public", field_selector="metadata.name=cluster-info"),
                 lambda: core.read_namespaced_config_map("kubeadm-config", "kube-system")):
        with pytest.raises(ApiException) as e:
            call()
        assert e.value.status == 403 and 'User "system:anonymous"' in status_of(e.value)["message"]


def test_list_pinned_to_a_name_is_authorized_by_resource_names(srv: TestAPIServer) -> None:
    """A fieldSelector metadata.name=<x> makes the list a request for <x> (RBAC resourceNames apply)."""
    name = unique("pinned")
    srv.store.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}})
    srv.store.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                      "metadata": {"name": name, "namespace": "default"},
                      "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [name],
                                 "verbs": ["list", "watch"]}]})
    srv.store.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                      "metadata": {"name": name, "namespace": "default"},
                      "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                      "subjects": [{"kind": "User", "name": "tester"}]})
    core = client.CoreV1Api(srv.api_client(token="static-test-token"))
    listed = core.list_namespaced_config_map("default", field_selector=f"metadata.name={name}")
    assert [i.metadata.name for i in listed.items] == [name]
    with pytest.raises(ApiException) as e:
        core.list_namespaced_config_map("default")
    assert e.value.status == 403


def test_node_identity_and_node_restriction(srv: TestAPIServer, admin: client.ApiClient) -> None:
    name = unique("w")
    client.CoreV1Api(admin).create_node({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
    other = unique("w")
    client.CoreV1Api(admin).create_node({"apiVersion": "v1", "kind": "Node", "metadata": {"name": other}})
    node = client.CoreV1Api(srv.api_client(f"node:{name}"))
    assert node.read_node(name).metadata.name == name
    patched = node.patch_node(name, {"metadata": {"annotations": {"kubeadm.alpha.kubernetes.io/cri-socket": "x"}}})
    assert patched.metadata.annotations["kubeadm.alpha.kubernetes.io/cri-socket"] == "x"
    cases = [
        (lambda: node.read_node(other), f"node '{name}' cannot read '{other}', only its own Node object"),
        (lambda: node.patch_node(other, {"metadata": {"labels": {"a": "b"}}}),
         f'node "{name}" is not allowed to modify node "{other}"'),
        (lambda: node.patch_node(name, {"metadata": {"labels": {"node-role.kubernetes.io/worker": ""}}}),
         "is not allowed to modify labels: node-role.kubernetes.io/worker"),
        (lambda: node.patch_node(name, {"spec": {"taints": []}}), f'node "{name}" is not allowed to modify taints'),
    ]
    for call, message in cases:
        with pytest.raises(ApiException) as e:
            call()
        assert e.value.status == 403 and message in status_of(e.value)["message"]
    # Kubelet labels are fine.
    assert node.patch_node(name, {"metadata": {"labels": {"node.kubernetes.io/exclude-from-external-load-balancers":
                                                          ""}}}).metadata.labels


# --- certificates -----------------------------------------------------------------------------------


def _csr(name: str | None, cn: str, orgs: tuple[str, ...], signer: str = "kubernetes.io/kube-apiserver-client-kubelet",
         generate: bool = False) -> dict[str, Any]:
    pem, _ = pki.make_csr(cn, orgs)
    meta = {"generateName": "csr-"} if generate else {"name": name}
    return {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest", "metadata": meta,
            "spec": {"request": base64.b64encode(pem).decode(), "signerName": signer,
                     "usages": ["digital signature", "client auth"]}}


def test_tls_bootstrap_like_the_kubelet(srv: TestAPIServer, bootstrap: client.ApiClient) -> None:
    """generateName + list/watch with a fieldSelector, as the kubelet does; approved and issued in time."""
    certs = client.CertificatesV1Api(bootstrap)
    created = certs.create_certificate_signing_request(_csr(None, "system:node:worker-9", ("system:nodes",),
                                                            generate=True))
    name = created.metadata.name
    assert name.startswith("csr-") and len(name) == 9
    assert created.spec.username == "system:bootstrap:abcdef"
    assert created.spec.groups == ["system:bootstrappers", "system:bootstrappers:kubeadm:default-node-token",
                                   "system:authenticated"]
    w = watch.Watch()
    issued = None
    for event in w.stream(certs.list_certificate_signing_request, field_selector=f"metadata.name={name}",
                          timeout_seconds=5):
        if event["object"].status and event["object"].status.certificate:
            issued = event["object"]
            w.stop()
    assert issued is not None
    assert [(c.type, c.reason) for c in issued.status.conditions] == [("Approved", "AutoApproved")]
    pem = issued.status.certificate
    cert = x509.load_pem_x509_certificate(base64.b64decode(pem) if not pem.startswith("-----") else pem.encode())
    assert cert.issuer == srv.ca.cert.subject
    assert cert.subject.rfc4514_string() == "CN=system:node:worker-9,O=system:nodes"


def test_masters_csr_stays_pending_and_apiserver_client_signer_is_refused(srv: TestAPIServer,
                                                                          bootstrap: client.ApiClient) -> None:
    certs = client.CertificatesV1Api(bootstrap)
    name = unique("masters")
    certs.create_certificate_signing_request(_csr(name, "system:node:worker-1", ("system:masters",)))
    srv.settle()  # the approver has seen it and leaves it alone
    assert not srv.store.get("certificatesigningrequests", name)["status"]
    with pytest.raises(ApiException) as e:
        certs.create_certificate_signing_request(_csr(unique("c"), "x", ("system:masters",),
                                                      "kubernetes.io/kube-apiserver-client"))
    assert e.value.status == 403
    assert "use of kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed" in \
        status_of(e.value)["message"]


def test_manual_approval_when_auto_approval_is_off(srv: TestAPIServer, admin: client.ApiClient,
                                                   bootstrap: client.ApiClient) -> None:
    rbac = client.RbacAuthorizationV1Api(admin)
    rbac.delete_cluster_role_binding("kubeadm:node-autoapprove-bootstrap")
    try:
        certs = client.CertificatesV1Api(bootstrap)
        name = unique("manual")
        certs.create_certificate_signing_request(_csr(name, "system:node:worker-2", ("system:nodes",)))
        srv.settle()
        assert not srv.store.get("certificatesigningrequests", name)["status"]
        # The bootstrap token may not approve its own CSR.
        csr = client.CertificatesV1Api(admin).read_certificate_signing_request(name)
        body = client.ApiClient().sanitize_for_serialization(csr)
        body["status"]["conditions"] = [{"type": "Approved", "status": "True", "reason": "KubectlApprove",
                                         "message": "This CSR was approved by kubectl certificate approve."}]
        with pytest.raises(ApiException) as e:
            certs.replace_certificate_signing_request_approval(name, body)
        assert e.value.status == 403
        approved = client.CertificatesV1Api(admin).replace_certificate_signing_request_approval(name, body)
        assert approved.status.conditions[0].reason == "KubectlApprove"
        srv.wait_for(lambda: srv.store.get("certificatesigningrequests", name)["status"].get("certificate"))
    finally:
        kubeadm.bootstrap_token_rbac(srv.store)


# --- controllers and the clock ----------------------------------------------------------------------


def test_bootstrap_signer_follows_tokens(srv: TestAPIServer) -> None:
    def jws_keys() -> set[str]:
        data = srv.store.get("configmaps", "cluster-info", "kube-public")["data"]
        return {k for k in data if k.startswith("jws-kubeconfig-")}

    srv.wait_for(lambda: "jws-kubeconfig-abcdef" in jws_keys())
    started = time.monotonic()
    kubeadm.create_token(srv.store, "ghijkl.0123456789abcdef")
    srv.wait_for(lambda: "jws-kubeconfig-ghijkl" in jws_keys(), timeout=2)
    assert time.monotonic() - started < 0.5
    data = srv.store.get("configmaps", "cluster-info", "kube-public")["data"]
    assert jws.verify(data["kubeconfig"], data["jws-kubeconfig-ghijkl"], "ghijkl", "0123456789abcdef")
    kubeadm.create_token(srv.store, "mnopqr.0123456789abcdef", usages=("authentication",))
    srv.store.delete("secrets", "bootstrap-token-ghijkl", "kube-system")
    srv.settle()  # a pass that began after both writes, and did not need to change anything more
    assert "jws-kubeconfig-ghijkl" not in jws_keys()
    assert "jws-kubeconfig-mnopqr" not in jws_keys()  # no usage-bootstrap-signing, no signature
    srv.store.delete("secrets", "bootstrap-token-mnopqr", "kube-system")


def test_token_expiry_follows_the_clock() -> None:
    with TestAPIServer() as s:
        kubeadm.seed_init(s, token=None)
        kubeadm.create_token(s.store, "shortl.0123456789abcdef", ttl=timedelta(minutes=10))
        core = client.CoreV1Api(s.api_client(token="shortl.0123456789abcdef"))
        assert core.read_namespaced_config_map("kubeadm-config", "kube-system").data
        s.wait_for(lambda: "jws-kubeconfig-shortl" in s.store.get("configmaps", "cluster-info", "kube-public")["data"])
        s.clock.advance(timedelta(minutes=11))
        with pytest.raises(ApiException) as e:
            core.read_namespaced_config_map("kubeadm-config", "kube-system")
        assert e.value.status == 401
        s.wait_for(lambda: s.store.get("secrets", "bootstrap-token-shortl", "kube-system") is None)
        s.wait_for(lambda: "jws-kubeconfig-shortl" not in
                   s.store.get("configmaps", "cluster-info", "kube-public")["data"])


# --- wire, health, faults ---------------------------------------------------------------------------


def test_health_and_readiness_control(srv: TestAPIServer) -> None:
    assert raw(srv, "GET", "/readyz")[2] == b"ok"
    srv.set_ready(False)
    try:
        status, headers, body = raw(srv, "GET", "/readyz")
        assert status == 500 and headers["content-type"] == "text/plain; charset=utf-8"
        assert b"[-]etcd failed: reason withheld\n" in body and body.endswith(b"readyz check failed\n")
        assert raw(srv, "GET", "/healthz")[0] == 500
        assert raw(srv, "GET", "/livez")[:3:2] == (200, b"ok")
        assert raw(srv, "GET", "/readyz?exclude=etcd")[0] == 200
        # Single checks are not public (system:public-info-viewer grants /readyz exactly).
        assert raw(srv, "GET", "/readyz/etcd")[0] == 403
        assert raw(srv, "GET", "/readyz/etcd", who="admin")[0] == 500
        assert raw(srv, "GET", "/readyz/ping", who="admin")[2] == b"ok"
    finally:
        srv.set_ready(True)
    assert raw(srv, "GET", "/healthz")[:3:2] == (200, b"ok")


def test_fault_injection(srv: TestAPIServer, admin: client.ApiClient) -> None:
    core = client.CoreV1Api(admin)
    srv.faults.fail_next(2, 503, path="/api/v1/namespaces/kube-system/configmaps/kubeadm-config")
    for _ in range(2):
        with pytest.raises(ApiException) as e:
            core.read_namespaced_config_map("kubeadm-config", "kube-system")
        assert e.value.status == 503 and status_of(e.value)["reason"] == "ServiceUnavailable"
    assert core.read_namespaced_config_map("kubeadm-config", "kube-system").data
    srv.faults.fail_next(1, 429, path="/version", retry_after=3, message="too many requests, please try again later")
    status, headers, body = raw(srv, "GET", "/version")
    assert (status, headers["retry-after"]) == (429, "3")
    assert json.loads(body)["details"] == {"retryAfterSeconds": 3}
    srv.faults.drop_next(1, path="/version")
    with pytest.raises((http.client.HTTPException, ConnectionError, ssl.SSLError, OSError)):
        raw(srv, "GET", "/version")
    assert raw(srv, "GET", "/version")[0] == 200
    srv.faults.delay_next(1, 0.2, path="/livez")
    started = time.monotonic()
    assert raw(srv, "GET", "/livez")[0] == 200 and time.monotonic() - started >= 0.2
    assert srv.faults.pending == 0


def test_a_write_applied_then_its_answer_lost(srv: TestAPIServer, admin: client.ApiClient) -> None:
    core = client.CoreV1Api(admin)
    path = "/api/v1/namespaces/default/configmaps"
    start, logged = srv.writes, len(srv.requests)
    fault = srv.faults.after_write(2, method="POST", path=path)
    # A dry-run write is not a write; the first matching POST is answered as usual.
    core.create_namespaced_config_map("default", _cm(unique("dry")), dry_run="All")
    core.create_namespaced_config_map("default", _cm(unique("w")))
    assert not fault.fired.is_set() and srv.writes == start + 1 and srv.faults.pending == 1
    lost = unique("w")
    with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
        raw(srv, "POST", path, who="admin", body=json.dumps(_cm(lost)).encode(),
            headers={"Content-Type": "application/json"})
    assert fault.fired.is_set() and fault.request == f"POST {path}"
    assert srv.store.get("configmaps", lost, "default") is not None  # applied, though nobody heard
    assert [r.status for r in list(srv.requests)[logged:] if r.method == "POST"] == [201, 201, 0]
    # With a status, the answer is that error instead; the write is still done.
    srv.faults.after_write(1, status=500, method="DELETE", message="etcd went away")
    with pytest.raises(ApiException) as e:
        core.delete_namespaced_config_map(lost, "default")
    assert e.value.status == 500 and status_of(e.value)["message"] == "etcd went away"
    assert srv.store.get("configmaps", lost, "default") is None
    assert srv.faults.pending == 0 and srv.writes == start + 3


def test_a_request_is_logged_before_it_is_answered(srv: TestAPIServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # A request log that breaks must cost the answer: proof that logging comes first, so a client
    # holding its answer always finds its request in srv.requests (no waiting for the log to settle).
    def broken(*args: Any) -> None:
        raise RuntimeError("request log broken")

    monkeypatch.setattr(srv, "record", broken)
    with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
        raw(srv, "GET", "/healthz")
    monkeypatch.undo()
    assert srv.internal_errors.pop() == "RuntimeError('request log broken')"
    assert raw(srv, "GET", "/healthz")[0] == 200
    assert srv.requests[-1].path == "/healthz" and srv.requests[-1].status == 200


def test_discovery_version_and_not_found(srv: TestAPIServer, admin: client.ApiClient) -> None:
    assert client.VersionApi(admin).get_code().git_version == srv.version["gitVersion"]
    assert client.CoreApi(admin).get_api_versions().versions == ["v1"]
    groups = {g.name for g in client.ApisApi(admin).get_api_versions().groups}
    assert groups == {"apps", "rbac.authorization.k8s.io", "certificates.k8s.io"}
    resources = {r.name for r in client.CoreV1Api(admin).get_api_resources().resources}
    assert {"configmaps", "secrets", "nodes", "nodes/status", "namespaces"} <= resources
    from kubernetes import dynamic  # discovery is what the dynamic client needs

    dyn = dynamic.DynamicClient(admin)
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    assert cms.get(name="kubeadm-config", namespace="kube-system").metadata.name == "kubeadm-config"
    assert dyn.resources.get(api_version="certificates.k8s.io/v1", kind="CertificateSigningRequest").namespaced is False
    status, headers, body = raw(srv, "GET", "/apis/bootstrap.kubernetes.io", who="admin")
    assert (status, body, headers["x-content-type-options"]) == (404, b"404 page not found\n", "nosniff")
    assert raw(srv, "GET", "/api/v1/widgets", who="admin")[0] == 404


def test_chunked_keepalive_and_head(srv: TestAPIServer) -> None:
    ctx = ssl.create_default_context(cafile=str(srv.ca_file))
    conn = http.client.HTTPSConnection(srv.host, srv.port, context=ctx, timeout=10)
    try:
        for _ in range(3):  # one connection, several requests
            conn.request("GET", "/api/v1/namespaces/kube-public/configmaps/cluster-info")
            r = conn.getresponse()
            body = r.read()
            assert r.status == 200 and r.getheader("Transfer-Encoding") == "chunked"
            assert json.loads(body)["metadata"]["name"] == "cluster-info"
        conn.request("HEAD", "/api/v1/namespaces/kube-public/configmaps/cluster-info")
        r = conn.getresponse()
        assert r.status == 200 and r.getheader("Transfer-Encoding") == "chunked" and r.read() == b""
        conn.request("HEAD", "/healthz")  # non-resource verb "head": not in system:public-info-viewer
        r = conn.getresponse()
        assert r.status == 403 and r.read() == b""
    finally:
        conn.close()


def test_watch_streams_changes(srv: TestAPIServer, admin: client.ApiClient) -> None:
    core = client.CoreV1Api(admin)
    name = unique("watched")
    created = core.create_namespaced_config_map("default", _cm(name))
    core.patch_namespaced_config_map(name, "default", {"data": {"k": "v2"}})
    core.delete_namespaced_config_map(name, "default")
    events = [(e["type"], e["object"].data) for e in watch.Watch().stream(
        core.list_namespaced_config_map, "default", field_selector=f"metadata.name={name}",
        resource_version=created.metadata.resource_version, timeout_seconds=1)]
    assert events == [("MODIFIED", {"k": "v2"}), ("DELETED", {"k": "v2"})]


def test_pagination_and_selectors(admin: client.ApiClient) -> None:
    core = client.CoreV1Api(admin)
    ns = unique("ns")
    core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    for i in range(5):
        core.create_namespaced_config_map(ns, {**_cm(f"cm-{i}"), "metadata": {"name": f"cm-{i}",
                                                                               "labels": {"i": str(i)}}})
    page = core.list_namespaced_config_map(ns, limit=2)
    names = [i.metadata.name for i in page.items]
    while page.metadata._continue:
        page = core.list_namespaced_config_map(ns, limit=2, _continue=page.metadata._continue)
        names += [i.metadata.name for i in page.items]
    assert names == [f"cm-{i}" for i in range(5)]
    assert [i.metadata.name for i in core.list_namespaced_config_map(ns, label_selector="i in (1,3)").items] == \
        ["cm-1", "cm-3"]
    assert len(core.list_namespaced_config_map(ns, label_selector="i!=1").items) == 4
    with pytest.raises(ApiException) as e:
        core.list_namespaced_config_map(ns, field_selector="data.k=v")
    assert e.value.status == 400
    core.delete_namespace(ns)
    assert core.list_namespaced_config_map(ns).items == []
    with pytest.raises(ApiException) as e:
        core.delete_namespace("kube-system")
    assert e.value.status == 403


def test_restart_keeps_port_and_state() -> None:
    with TestAPIServer() as s:
        kubeadm.grant_cluster_admins(s.store)
        core = client.CoreV1Api(s.api_client("admin"))
        core.create_namespaced_config_map("default", _cm("survivor"))
        url = s.url
        s.stop()
        with pytest.raises(OSError):
            socket.create_connection((s.host, int(url.rsplit(":", 1)[1])), timeout=2).close()
        s.start()
        assert s.url == url
        assert core.read_namespaced_config_map("survivor", "default").data == {"k": "v"}


def test_concurrent_clients(srv: TestAPIServer) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def worker(i: int) -> int:
        core = client.CoreV1Api(srv.api_client(token=TOKEN))
        return sum(len(core.read_namespaced_config_map("kubeadm-config", "kube-system").data) for _ in range(5))

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(worker, range(8), timeout=30)) == [5] * 8


def test_binds_loopback_by_default(srv: TestAPIServer) -> None:
    assert srv.bind == "127.0.0.1" and srv.url.startswith("https://127.0.0.1:")
    with socket.create_connection((srv.host, srv.port), timeout=5):
        pass


# --- a kubeadm-layout certificate directory, and the process form -----------------------------------


@pytest.fixture
def cert_dir(tmp_path: Path) -> Path:
    """What kbootd's init leaves in /etc/kubernetes/pki: a CA and an apiserver serving cert."""
    d = tmp_path / "pki"
    d.mkdir()
    ca = pki.CertificateAuthority.generate()
    serving = ca.issue_serving(["127.0.0.1", "localhost", "kubernetes"])
    (d / "ca.crt").write_bytes(ca.pem)
    (d / "ca.key").write_bytes(pki.key_pem(ca.key))
    (d / "apiserver.crt").write_bytes(serving.cert_pem)
    (d / "apiserver.key").write_bytes(serving.key_pem)
    return d


def test_serves_a_given_cert_dir(cert_dir: Path, tmp_path: Path) -> None:
    with TestAPIServer(cert_dir=cert_dir) as s:
        served = ssl.get_server_certificate((s.host, s.port))
        assert x509.load_pem_x509_certificate(served.encode()) == \
            x509.load_pem_x509_certificate((cert_dir / "apiserver.crt").read_bytes())
        kubeadm.grant_cluster_admins(s.store)
        path = s.write_kubeconfig(tmp_path / "admin.conf", "admin")
        from kubernetes import config

        api = config.new_client_from_config(str(path))
        assert client.CoreV1Api(api).read_namespace("default").metadata.name == "default"
        # A client certificate from another CA does not get through the handshake.
        stranger = pki.CertificateAuthority.generate(key_kind="ecdsa").issue_client("kubernetes-admin",
                                                                                    ("system:masters",))
        ctx = ssl.create_default_context(cafile=str(cert_dir / "ca.crt"))
        (tmp_path / "s.crt").write_bytes(stranger.cert_pem)
        (tmp_path / "s.key").write_bytes(stranger.key_pem)
        ctx.load_cert_chain(tmp_path / "s.crt", tmp_path / "s.key")
        conn = http.client.HTTPSConnection(s.host, s.port, context=ctx, timeout=5)
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            conn.request("GET", "/api/v1/namespaces")
            conn.getresponse().read()
        conn.close()


@pytest.mark.subprocess
def test_runs_as_a_process(cert_dir: Path, tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.apiserver", "--cert-dir", str(cert_dir), "--bind", "127.0.0.1",
         "--port", "0", "--port-file", str(port_file), "--kubeconfig-dir", str(tmp_path / "kc"), "--seed-kubeadm"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("serving https://127.0.0.1:"), proc.stderr.read() if proc.stderr else ""
        port = int(port_file.read_text())
        assert line.strip().endswith(f":{port}")
        from kubernetes import config

        api = config.new_client_from_config(str(tmp_path / "kc" / "admin.conf"))
        cm = client.CoreV1Api(api).read_namespaced_config_map("cluster-info", "kube-public")
        assert "server: https://127.0.0.1:" in cm.data["kubeconfig"]
    finally:
        proc.terminate()
        try:
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()


def test_clock_controls_creation_times(srv: TestAPIServer, admin: client.ApiClient) -> None:
    before = srv.clock.now()
    srv.clock.advance(timedelta(days=2))
    try:
        cm = client.CoreV1Api(admin).create_namespaced_config_map("default", _cm(unique("clock")))
        created = cm.metadata.creation_timestamp
        stamp = created if not isinstance(created, str) else parse_time(created)
        assert stamp - before >= timedelta(days=2) - timedelta(seconds=5)
    finally:
        srv.clock.advance(timedelta(days=-2))


# --- building blocks: patches, selectors, managedFields ----------------------------------------------

from tests.apiserver import fieldmanager, patch, schema, selectors  # noqa: E402

POD_TEMPLATE = {"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "1"},
                                                              {"name": "b", "image": "1"}]}}}}


@pytest.mark.parametrize(("content_type", "original", "body", "expected"), [
    # merge patch: maps merge, null deletes, lists are replaced
    (patch.MERGE_PATCH, {"metadata": {"labels": {"a": "1", "b": "2"}}}, {"metadata": {"labels": {"a": None, "c": "3"}}},
     {"metadata": {"labels": {"b": "2", "c": "3"}}}),
    # strategic: containers merge by name; $patch: delete removes one
    (patch.STRATEGIC_MERGE_PATCH, POD_TEMPLATE,
     {"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "2"}, {"name": "c", "image": "3"}]}}}},
     {"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"},
                                                    {"name": "c", "image": "3"}]}}}}),
    (patch.STRATEGIC_MERGE_PATCH, POD_TEMPLATE,
     {"spec": {"template": {"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}}},
     {"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "1"}]}}}}),
    # strategic: taints are atomic, finalizers a merged set, $setElementOrder ignored, $patch: replace
    (patch.STRATEGIC_MERGE_PATCH, {"spec": {"taints": [{"key": "x", "effect": "NoSchedule"}]}},
     {"spec": {"taints": [{"key": "y", "effect": "NoSchedule"}], "$setElementOrder/taints": [{"key": "y"}]}},
     {"spec": {"taints": [{"key": "y", "effect": "NoSchedule"}]}}),
    (patch.STRATEGIC_MERGE_PATCH, {"metadata": {"finalizers": ["a"]}}, {"metadata": {"finalizers": ["b", "a"]}},
     {"metadata": {"finalizers": ["a", "b"]}}),
    (patch.STRATEGIC_MERGE_PATCH, {"metadata": {"labels": {"a": "1"}}},
     {"metadata": {"labels": {"$patch": "replace", "b": "2"}}}, {"metadata": {"labels": {"b": "2"}}}),
    # JSON patch
    (patch.JSON_PATCH, {"metadata": {"labels": {"a": "1"}}},
     [{"op": "add", "path": "/metadata/labels/b~1c", "value": "2"}, {"op": "remove", "path": "/metadata/labels/a"}],
     {"metadata": {"labels": {"b/c": "2"}}}),
    (patch.JSON_PATCH, {"spec": {"taints": [{"key": "x"}]}},
     [{"op": "test", "path": "/spec/taints/0/key", "value": "x"}, {"op": "add", "path": "/spec/taints/-",
                                                                   "value": {"key": "y"}}],
     {"spec": {"taints": [{"key": "x"}, {"key": "y"}]}}),
])
def test_patches(content_type: str, original: dict[str, Any], body: Any, expected: dict[str, Any]) -> None:
    t = schema.DEPLOYMENT if "template" in json.dumps(original) else schema.NODE
    assert patch.apply(content_type, original, body, t) == expected


@pytest.mark.parametrize(("content_type", "body", "code"), [
    (patch.JSON_PATCH, [{"op": "test", "path": "/metadata/name", "value": "other"}], 422),
    (patch.JSON_PATCH, [{"op": "remove", "path": "/spec/missing"}], 422),
    (patch.JSON_PATCH, {"not": "a list"}, 400),
    (patch.STRATEGIC_MERGE_PATCH, [], 400),
    ("application/apply-patch+yaml", {}, 415),
])
def test_patch_errors(content_type: str, body: Any, code: int) -> None:
    with pytest.raises(patch.PatchError) as e:
        patch.apply(content_type, {"metadata": {"name": "x"}, "spec": {}}, body, schema.NODE)
    assert e.value.code == code


@pytest.mark.parametrize(("selector", "labels", "matches"), [
    ("a=1", {"a": "1"}, True),
    ("a==1,b!=2", {"a": "1", "b": "3"}, True),
    ("a!=1", {}, True),
    ("a in (1, 2)", {"a": "2"}, True),
    ("a notin (1,2)", {"a": "2"}, False),
    ("a", {"a": ""}, True),
    ("!a", {"a": ""}, False),
    ("a=1,b", {"a": "1"}, False),
])
def test_label_selectors(selector: str, labels: dict[str, str], matches: bool) -> None:
    obj = {"metadata": {"name": "x", "labels": labels}}
    assert selectors.matches(schema.resource_for("configmaps"), obj,
                             selectors.parse_labels(selector), []) is matches


@pytest.mark.parametrize(("old", "new", "fields"), [
    (None, {"data": {"k": "v"}}, {"f:data": {".": {}, "f:k": {}}}),
    ({"data": {"k": "v"}}, {"data": {"k": "w", "j": "x"}}, {"f:data": {"f:j": {}, "f:k": {}}}),
    (None, {"metadata": {"labels": {"a": "b"}}}, {"f:metadata": {"f:labels": {".": {}, "f:a": {}}}}),
])
def test_fields_v1_of_an_update(old: dict | None, new: dict, fields: dict) -> None:
    res = schema.resource_for("configmaps")

    def obj(o: dict) -> dict:
        return schema.shape({"apiVersion": "v1", "kind": "ConfigMap", **o,
                             "metadata": {"name": "x", **o.get("metadata", {})}}, res.schema)

    entries = fieldmanager.update(obj(old) if old else None, obj(new), res, "m", "2026-01-01T00:00:00Z")
    assert [e["manager"] for e in entries] == ["m"] and entries[0]["fieldsV1"] == fields
