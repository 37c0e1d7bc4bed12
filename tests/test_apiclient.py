"""kbootd.apiclient: kubeconfig loading, the HTTPS transport over real TLS, status
mapping, retries with a deadline, idempotent writes, node patching and the dry-run client."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kbootd import apiclient
from kbootd.apiclient import APIError, APIUnavailable, Client, DryRunClient
from kbootd.context import make_context
from kbootd.errors import KbootdError, SecurityError, ValidationError, WaitTimeout
from kbootd.report import RecordingReporter

TOKEN = "abcdef.0123456789abcdef"  # test data, as in the recorded fixtures


# --- certificates ------------------------------------------------------------------------------

def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _cert(subject: x509.Name, key, issuer: x509.Name, signer, *, ca: bool = False, ip: str | None = None) -> bytes:
    now = dt.datetime.now(dt.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
         .not_valid_after(now + dt.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ip:
        import ipaddress

        b = b.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
    return b.sign(signer, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class PKI:
    def __init__(self) -> None:
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca_name = _name("kubernetes")
        self.ca_pem = _cert(self.ca_name, self.ca_key, self.ca_name, self.ca_key, ca=True)
        self.server_key = ec.generate_private_key(ec.SECP256R1())
        self.server_pem = _cert(_name("kube-apiserver"), self.server_key, self.ca_name, self.ca_key, ip="127.0.0.1")
        self.client_key = ec.generate_private_key(ec.SECP256R1())
        self.client_pem = _cert(_name("kubernetes-admin", "kubeadm:cluster-admins"), self.client_key,
                                self.ca_name, self.ca_key)


@pytest.fixture(scope="module")
def pki() -> PKI:
    return PKI()


# --- a scripted HTTPS server -------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *a) -> None:  # quiet
        pass

    def _serve(self) -> None:
        srv = self.server
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        cert = self.connection.getpeercert()
        subject = dict(x[0] for x in cert["subject"]) if cert else {}
        srv.seen.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                         "body": json.loads(body) if body else None, "cn": subject.get("commonName")})
        status, doc = srv.routes.get((self.command, self.path.split("?")[0]),
                                     (404, {"kind": "Status", "reason": "NotFound", "message": "not found",
                                            "code": 404}))
        data = doc.encode() if isinstance(doc, str) else json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain" if isinstance(doc, str) else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


@pytest.fixture
def https(pki, tmp_path):
    (tmp_path / "srv.crt").write_bytes(pki.server_pem)
    (tmp_path / "srv.key").write_bytes(_key_pem(pki.server_key))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "srv.crt", tmp_path / "srv.key")
    ctx.load_verify_locations(cadata=pki.ca_pem.decode())
    ctx.verify_mode = ssl.CERT_OPTIONAL
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.routes, srv.seen = {}, []
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    t.start()
    srv.url = f"https://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


def kubeconfig(server: str, ca: bytes | None, *, cert: bytes | None = None, key: bytes | None = None,
               token: str | None = None, files: dict[str, str] | None = None) -> str:
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    cluster = {"server": server}
    user: dict = {}
    if ca:
        cluster["certificate-authority-data"] = b64(ca)
    if cert:
        user["client-certificate-data"] = b64(cert)
        user["client-key-data"] = b64(key)
    if token:
        user["token"] = token
    for k, v in (files or {}).items():
        (cluster if k == "certificate-authority" else user)[k] = v
    import yaml

    return yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "current-context": "c",
                           "clusters": [{"name": "k", "cluster": cluster}],
                           "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
                           "users": [{"name": "u", "user": user}]})


def ctx_with(root: Path, text: str, path: str = "/etc/kubernetes/admin.conf"):
    p = root / path.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return make_context(root=str(root), reporter=RecordingReporter())


# --- transport over TLS ----------------------------------------------------------------------------

def test_client_certificate_auth_and_ca_verification(https, pki, root):
    https.routes[("GET", "/api/v1/namespaces/kube-system/configmaps/x")] = (
        200, {"kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"k": "v"}})
    ctx = ctx_with(root, kubeconfig(https.url, pki.ca_pem, cert=pki.client_pem, key=_key_pem(pki.client_key)))
    client = apiclient.client_for(ctx)
    try:
        assert client.get("ConfigMap", "x", "kube-system")["data"] == {"k": "v"}
        assert client.get("ConfigMap", "missing", "kube-system") is None
        # The key went to OpenSSL through a sealed memfd that is closed again: no file, no fd left.
        links = [os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
                 if os.path.exists(f"/proc/self/fd/{fd}")]
        assert not any("kbootd-" in link for link in links)
    finally:
        client.close()
    assert https.seen[0]["cn"] == "kubernetes-admin"
    assert https.seen[0]["headers"]["User-Agent"].startswith("kbootd/")


def test_bearer_token_is_sent_and_never_shown(https, pki, root):
    https.routes[("POST", "/api/v1/namespaces/kube-system/secrets")] = (
        403, {"kind": "Status", "reason": "Forbidden", "message": 'secrets is forbidden: User "system:bootstrap:abcdef"',
              "code": 403})
    ctx = ctx_with(root, kubeconfig(https.url, pki.ca_pem, token=TOKEN))
    client = apiclient.client_for(ctx)
    with pytest.raises(APIError) as e:
        client.create({"kind": "Secret", "metadata": {"name": "s", "namespace": "kube-system"}})
    client.close()
    assert e.value.forbidden and not apiclient.is_transient(e.value)
    assert https.seen[0]["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert https.seen[0]["body"]["apiVersion"] == "v1"  # filled from the kind
    assert "0123456789abcdef" not in str(e.value)


def test_wrong_ca_is_a_security_error(https, root):
    other = PKI()
    ctx = ctx_with(root, kubeconfig(https.url, other.ca_pem))
    client = apiclient.client_for(ctx)
    with pytest.raises(SecurityError, match="TLS verification"):
        client.raw_get("/healthz")
    client.close()


def test_unreachable_server_is_transient(pki, root):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    ctx = ctx_with(root, kubeconfig(f"https://127.0.0.1:{port}", pki.ca_pem))
    client = apiclient.client_for(ctx)
    with pytest.raises(APIUnavailable) as e:
        client.raw_get("/healthz")
    client.close()
    assert apiclient.is_transient(e.value)


def test_patch_sends_strategic_merge_content_type(https, pki, root):
    https.routes[("PATCH", "/api/v1/nodes/n1")] = (200, {"kind": "Node", "metadata": {"name": "n1"}})
    ctx = ctx_with(root, kubeconfig(https.url, pki.ca_pem))
    client = apiclient.client_for(ctx)
    client.patch("Node", "n1", {"metadata": {"labels": {"a": ""}}})
    client.close()
    assert https.seen[0]["headers"]["Content-Type"] == "application/strategic-merge-patch+json"
    assert https.seen[0]["body"] == {"metadata": {"labels": {"a": ""}}}


# --- kubeconfig --------------------------------------------------------------------------------

def test_kubeconfig_file_references_are_read_under_root(pki, root):
    (root / "etc/kubernetes/pki").mkdir(parents=True)
    (root / "etc/kubernetes/pki/ca.crt").write_bytes(pki.ca_pem)
    (root / "etc/kubernetes/pki/admin.key").write_bytes(_key_pem(pki.client_key))
    ctx = ctx_with(root, kubeconfig("https://10.0.0.10:6443", None, files={
        "certificate-authority": "pki/ca.crt", "client-certificate": "/etc/kubernetes/pki/ca.crt",
        "client-key": "pki/admin.key"}))
    kc = apiclient.load_kubeconfig(ctx, ctx.paths.admin_conf)
    assert kc.ca_pem == pki.ca_pem and kc.key_pem == _key_pem(pki.client_key)
    assert kc.cluster == {"server": "https://10.0.0.10:6443",
                          "certificate-authority-data": base64.b64encode(pki.ca_pem).decode()}
    assert kc.endpoint == "10.0.0.10:6443"


@pytest.mark.parametrize("text,error,match", [
    (None, KbootdError, "no such kubeconfig"),
    ("a: [", ValidationError, "invalid YAML"),
    ("- 1", ValidationError, "expected a kubeconfig mapping"),
    (kubeconfig("http://10.0.0.10:6443", None), ValidationError, r"server: 'http://10.0.0.10:6443' is not an https://"),
    (kubeconfig("https://10.0.0.10:6443", None).replace("current-context: c", "current-context: x"),
     ValidationError, "current-context: 'x' is not among its contexts"),
    ("clusters: 5", ValidationError, "clusters: expected a list, got a number"),
    (kubeconfig("https://10.0.0.10:6443", None).replace("current-context: c", "current-context: [x]"),
     ValidationError, r"current-context: expected a string, got a list"),
    (kubeconfig("https://10.0.0.10:6443", None).replace("user: u\n", "user: nobody\n"),
     ValidationError, "users: user 'nobody' .* is not defined"),
    (kubeconfig("https://10.0.0.10:6443", None, files={"client-certificate": "/etc/kubernetes/admin.conf"}),
     ValidationError, "client certificate without its key"),
    (kubeconfig("https://10.0.0.10:6443", None, files={"certificate-authority": "/nope/ca.crt"}),
     KbootdError, "/nope/ca.crt does not exist"),
])
def test_bad_kubeconfigs_name_what_and_where(root, text, error, match):
    ctx = make_context(root=str(root), reporter=RecordingReporter())
    if text is not None:
        ctx = ctx_with(root, text)
    with pytest.raises(error, match=match) as e:
        apiclient.load_kubeconfig(ctx, "/etc/kubernetes/admin.conf")
    assert "/etc/kubernetes/admin.conf" in str(e.value)


# --- scripted transport: status mapping, retries, idempotent writes --------------------------------

class Script:
    """Answers requests in order from a list of (status, body); records what was sent."""

    def __init__(self, *answers) -> None:
        self.answers = list(answers)
        self.sent: list[tuple[str, str, object]] = []

    def request(self, method, path, body=None, content_type="application/json"):
        self.sent.append((method, path, body))
        status, doc = self.answers.pop(0)
        if isinstance(doc, Exception):
            raise doc
        return status, json.dumps(doc).encode()


def status(code: int, reason: str, **details) -> tuple[int, dict]:
    return code, {"kind": "Status", "reason": reason, "message": f"{reason.lower()} here", "code": code,
                  "details": details}


CM = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "kube-system"},
      "data": {"k": "v"}}


def fast(transport) -> Client:
    return Client(transport, timeout=2.0, interval=0.01, sleep=lambda s: None)


@pytest.mark.parametrize("answers,result,sent,put_rv", [
    ([(201, CM)], "created", ["POST"], None),
    ([status(409, "AlreadyExists"), (200, {**CM, "metadata": {**CM["metadata"], "resourceVersion": "7"}})],
     "unchanged", ["POST", "GET"], None),
    ([status(409, "AlreadyExists"), (200, {**CM, "data": {"k": "old"}, "metadata": {"resourceVersion": "7"}}),
      (200, CM)], "updated", ["POST", "GET", "PUT"], "7"),
    ([status(503, "ServiceUnavailable"), status(404, "NotFound", kind="namespaces"), (201, CM)],
     "created", ["POST", "POST", "POST"], None),
    ([status(409, "AlreadyExists"), (200, {**CM, "data": {}, "metadata": {"resourceVersion": "7"}}),
      status(409, "Conflict"), status(409, "AlreadyExists"),
      (200, {**CM, "data": {}, "metadata": {"resourceVersion": "8"}}), (200, CM)],
     "updated", ["POST", "GET", "PUT", "POST", "GET", "PUT"], "8"),
])
def test_create_or_update(answers, result, sent, put_rv):
    t = Script(*answers)
    assert apiclient.create_or_update(fast(t), CM) == result
    assert [m for m, _, _ in t.sent] == sent
    puts = [b for m, _, b in t.sent if m == "PUT"]
    # Updates are conditional on the version read just before (a conflict re-reads).
    assert (puts[-1]["metadata"]["resourceVersion"] if puts else None) == put_rv


@pytest.mark.parametrize("answer,raises", [
    (status(403, "Forbidden"), APIError),
    (status(422, "Invalid"), APIError),
    (status(404, "NotFound", kind="configmaps"), APIError),
])
def test_permanent_errors_fail_at_once(answer, raises):
    t = Script(answer)
    with pytest.raises(raises):
        apiclient.create_or_update(fast(t), CM)
    assert len(t.sent) == 1


def test_transient_errors_give_up_at_the_deadline():
    clock = [0.0]
    t = Script(*[status(503, "ServiceUnavailable")] * 100)
    c = Client(t, timeout=1.0, interval=0.25, sleep=lambda s: clock.__setitem__(0, clock[0] + s),
               clock=lambda: clock[0])
    with pytest.raises(WaitTimeout, match="still failing after 1s"):
        apiclient.create_or_update(c, CM)
    assert 3 <= len(t.sent) <= 5


def test_create_or_keep_and_mutate_keep_foreign_fields():
    t = Script(status(409, "AlreadyExists"), (200, {**CM, "data": {"k": "v", "jws-kubeconfig-abc": "sig"}}))
    assert apiclient.create_or_keep(fast(t), CM)[0] == "kept"
    live = {**CM, "data": {"kubeconfig": "old", "jws-kubeconfig-abc": "sig"}}
    t = Script(status(409, "AlreadyExists"), (200, live), (200, {}))
    what = apiclient.create_or_mutate(fast(t), CM, lambda o: o["data"].update(kubeconfig="new"))
    assert what == "updated"
    assert t.sent[-1][2]["data"] == {"kubeconfig": "new", "jws-kubeconfig-abc": "sig"}


def test_patch_node_waits_for_registration_and_sends_the_whole_taint_list():
    node = {"kind": "Node", "metadata": {"name": "n", "resourceVersion": "5", "labels": {"x": "1"}},
            "spec": {"taints": [{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]}}
    t = Script(status(404, "NotFound", kind="nodes"), status(404, "NotFound", kind="nodes"), (200, node), (200, node))
    retries = []

    def add(n):
        n["metadata"]["labels"]["role"] = ""
        n["spec"]["taints"].append({"key": "cp", "effect": "NoSchedule"})

    assert apiclient.patch_node(fast(t), "n", add, on_retry=lambda *a: retries.append(a)) is True
    assert len(retries) == 2
    method, path, patch = t.sent[-1]
    assert (method, path) == ("PATCH", "/api/v1/nodes/n")
    assert patch == {"metadata": {"labels": {"role": ""}, "resourceVersion": "5"},
                     "spec": {"taints": [{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"},
                                         {"key": "cp", "effect": "NoSchedule"}]}}


def test_patch_node_sends_nothing_when_nothing_changes():
    t = Script((200, {"kind": "Node", "metadata": {"name": "n", "labels": {"a": ""}}}))
    assert apiclient.patch_node(fast(t), "n", lambda n: n["metadata"]["labels"].update(a="")) is False
    assert [m for m, _, _ in t.sent] == ["GET"]


# --- pure helpers ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind,ns,name,path", [
    ("ConfigMap", "kube-system", "x", "/api/v1/namespaces/kube-system/configmaps/x"),
    ("configmaps", "kube-public", None, "/api/v1/namespaces/kube-public/configmaps"),
    ("Node", None, "cp-1", "/api/v1/nodes/cp-1"),
    ("ClusterRoleBinding", None, "kubeadm:get-nodes", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/kubeadm%3Aget-nodes"),
    ("DaemonSet", "kube-system", "kube-proxy", "/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy"),
])
def test_resource_paths(kind, ns, name, path):
    assert apiclient.resource(kind).path(ns, name) == path


def test_unknown_kind_and_missing_namespace_are_errors():
    with pytest.raises(KbootdError, match="Widget"):
        apiclient.resource("Widget")
    with pytest.raises(KbootdError, match="namespace is required"):
        apiclient.resource("ConfigMap").path(None, "x")


@pytest.mark.parametrize("actual,desired,want", [
    ({"a": 1, "b": 2}, {"a": 1}, True),
    ({"a": 1}, {"a": 2}, False),
    ({"a": {"x": 1, "y": 2}}, {"a": {"x": 1}}, True),
    ({}, {"a": {}, "b": [], "c": "", "d": None}, True),
    ({"l": [{"n": 1, "extra": 0}]}, {"l": [{"n": 1}]}, True),
    ({"l": [1, 2]}, {"l": [1]}, False),
    ({}, {"a": "x"}, False),
])
def test_contains(actual, desired, want):
    assert apiclient.contains(actual, desired) is want


@pytest.mark.parametrize("old,new,patch", [
    ({"a": 1}, {"a": 1}, {}),
    ({"a": 1}, {"a": 2}, {"a": 2}),
    ({"a": 1, "b": 1}, {"a": 1}, {"b": None}),
    ({"m": {"x": 1}}, {"m": {"x": 1, "y": 2}}, {"m": {"y": 2}}),
    ({"l": [1]}, {"l": [1, 2]}, {"l": [1, 2]}),
])
def test_merge_patch_round_trips(old, new, patch):
    assert apiclient.merge_patch(old, new) == patch
    assert apiclient.merge_patch_apply(old, patch) == new


# --- dry-run -----------------------------------------------------------------------------------------

def test_dry_run_prints_kubeadms_lines_and_creates_nothing():
    said: list[str] = []
    c = DryRunClient(said.append)
    secret = {"kind": "Secret", "metadata": {"name": "bootstrap-token-abcdef", "namespace": "kube-system"},
              "type": "bootstrap.kubernetes.io/token",
              "data": {"token-id": "YWJjZGVm", "token-secret": base64.b64encode(b"0123456789abcdef").decode()}}
    assert apiclient.create_or_update(c, secret) == "created"
    text = "\n".join(said)
    assert text.startswith('[dryrun] Would perform action CREATE on resource "secrets" in API group "core/v1"\n'
                           "[dryrun] Attached object:\napiVersion: v1\n")
    assert "token-id: YWJjZGVm" in text and "token-secret: <redacted>" in text
    assert "MDEyMzQ1Njc4OWFiY2RlZg" not in text
    assert c.transport is None
    assert c.get("Secret", "bootstrap-token-abcdef", "kube-system")["data"]["token-id"] == "YWJjZGVm"
    node = c.get("Node", "cp-1")
    assert node["metadata"]["labels"] == {"kubernetes.io/hostname": "cp-1"}


@pytest.mark.subprocess
def test_light_imports_do_not_load_kubernetes():
    import subprocess

    code = ("import sys, kbootd.apiclient, kbootd.cluster.tokens, kbootd.cluster.bootstraptoken; "
            "sys.exit('kubernetes' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_a_retry_deadline_bounds_each_request_of_the_loop(tmp_path):
    """A server that drips its answer cannot hold an API retry loop past its deadline."""
    import time

    from tests.test_transport import PKI as RawPKI
    from tests.test_transport import RawServer, drip

    raw_pki = RawPKI()
    srv = RawServer(drip(b"HTTP/1.1 200 OK\r\n", b"X", 0.05), raw_pki, tmp_path)
    try:
        kc = apiclient.KubeConfig(path="t", server=srv.url, cluster={}, ca_pem=raw_pki.ca_pem)
        client = Client(apiclient.APITransport(kc, request_timeout=30), timeout=1.0)
        start = time.monotonic()
        with pytest.raises(WaitTimeout, match="still failing after 1s"):
            client.retry(lambda: client.get("ConfigMap", "c", "kube-system"), "read c")
        assert time.monotonic() - start < 2.5
        client.close()
    finally:
        srv.close()
