"""Discovery against the in-repo HTTPS test API server, set up by kbootd's own init cluster phases.

Token + pin, token without pin, local and HTTPS discovery files; waiting for a control plane
that is not there yet; and every way trust must fail closed (exit 4, at once, secret unsaid).
"""

from __future__ import annotations

import base64
import http.server
import json
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from kbootd import workflow
from kbootd.apiclient import APITransport as KubernetesTransport
from kbootd.apiclient import KubeConfig
from kbootd.cluster import tokens
from kbootd.errors import PhaseError
from kbootd.join.discovery import DiscoveredCluster
from kbootd.phases import JOIN as PHASES
from kbootd.pin import pin_of
from kbootd.token import BootstrapToken
from tests.apiserver import TestAPIServer, kubeadm, pki
from tests.test_join_support import (
    SECRET,
    TOKEN,
    WRONG_SECRET_TOKEN,
    Background,
    RawReporter,
    SwitchingProxy,
    free_port,
    init_control_plane,
    join_config,
    join_context,
    pinned,
    wait_signed,
)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[TestAPIServer]:
    with TestAPIServer() as srv:
        init_control_plane(srv, tmp_path / "cp")
        wait_signed(srv)
        yield srv


def discover(ctx) -> DiscoveredCluster:
    workflow.run(PHASES, ctx, only="discovery")
    return ctx.data.known("cluster")


def failure(ctx) -> PhaseError:
    with pytest.raises(PhaseError) as e:
        workflow.run(PHASES, ctx, only="discovery")
    return e.value


def assert_secret_unsaid(ctx, err: BaseException | None = None) -> None:
    rep: RawReporter = ctx.reporter
    assert SECRET not in rep.text()
    assert "0000000000000000" not in rep.text()
    if err is not None:
        assert SECRET not in str(err) and "0000000000000000" not in str(err)
        assert SECRET not in str(getattr(err, "hint", "") or "")


# --- token discovery ------------------------------------------------------------------------------

def test_token_and_pin_discover_the_cluster_kbootd_init_made(cluster: TestAPIServer, root: Path) -> None:
    ctx = join_context(root, pinned(cluster))
    found = discover(ctx)
    assert found.server == cluster.url and found.ca_pem == cluster.ca_pem
    assert found.via == "token" and found.endpoint == cluster.server_address
    assert found.ca_pins == (pin_of(cluster.ca_pem),)
    out = ctx.reporter.text()
    assert "validates against pinned roots" in out and "WARNING" not in out
    # Two anonymous fetches of cluster-info, nothing else, no credentials (logged before answered).
    reqs = [r for r in cluster.requests if r.path.endswith("/cluster-info")]
    assert len(reqs) == 2 and {r.user for r in reqs} == {"system:anonymous"}
    assert list(root.rglob("*.conf")) == []  # discovery writes nothing
    assert_secret_unsaid(ctx)


def test_join_started_before_the_server_waits_and_completes(root: Path, tmp_path: Path) -> None:
    port = free_port()
    srv = TestAPIServer(port=port)  # its CA exists (so the pin is known); nothing listens yet
    try:
        ctx = join_context(root, join_config((f"127.0.0.1:{port}",), pins=(pin_of(srv.ca_pem),), discovery=30))
        job = Background(lambda: discover(ctx))
        # Several refused attempts, and still trying (a signal, not a sleep that hopes it was long enough).
        srv.wait_for(lambda: len(ctx.reporter.retries) >= 4, timeout=15)
        assert job.running
        srv.start()
        init_control_plane(srv, tmp_path / "cp")
        found = job.result(timeout=30)
        assert found.server == srv.url and found.ca_pem == srv.ca_pem
    finally:
        srv.close()
    causes = ctx.reporter.causes()
    assert causes[0] == f"waiting for https://127.0.0.1:{port}: connection refused"
    assert f"[discovery] waiting for https://127.0.0.1:{port}: connection refused, attempt 1, next in " \
        in ctx.reporter.stdout.getvalue()
    attempts = [a for _, a, _, _ in ctx.reporter.retries]
    assert attempts == list(range(1, len(attempts) + 1)) and len(attempts) > 3
    assert "validates against pinned roots" in ctx.reporter.text() and "WARNING" not in ctx.reporter.text()


def test_join_before_init_then_before_the_token_exists_completes_once_it_is_created(root: Path,
                                                                                      tmp_path: Path) -> None:
    with TestAPIServer() as srv:
        ctx = join_context(root, pinned(srv, discovery=30))
        job = Background(lambda: discover(ctx))
        srv.wait_for(lambda: any("HTTP 403" in c for c in ctx.reporter.causes()), timeout=10)
        cp = init_control_plane(srv, tmp_path / "cp", token=None)  # cluster-info, RBAC; no token yet
        srv.wait_for(lambda: any("no signature for token id 'abcdef'" in c for c in ctx.reporter.causes()),
                     timeout=10)
        assert job.running
        from kbootd.cluster import admin_client

        tokens.create_token(admin_client(cp), BootstrapToken.parse(TOKEN))
        found = job.result(timeout=30)
        assert found.ca_pem == srv.ca_pem
    causes = ctx.reporter.causes()
    assert "cluster-info is not readable yet" in causes[0]  # fixture 06: anonymous 403 before the RBAC
    assert_secret_unsaid(ctx)


def test_wrong_token_secret_fails_closed_at_once_without_saying_the_secret(cluster: TestAPIServer,
                                                                          root: Path) -> None:
    ctx = join_context(root, pinned(cluster, token=WRONG_SECRET_TOKEN))
    started = time.monotonic()
    err = failure(ctx)
    assert time.monotonic() - started < 3
    assert err.exit_code == 4 and err.phase == "discovery"
    assert "JWS signature of cluster-info for token id 'abcdef' does not verify" in str(err)
    assert ctx.reporter.retries == []
    assert_secret_unsaid(ctx, err)


def test_unknown_token_id_waits_for_its_signature_then_times_out_naming_it(cluster: TestAPIServer,
                                                                           root: Path) -> None:
    ctx = join_context(root, pinned(cluster, token="zzzzzz.0123456789abcdef", discovery=1.0))
    err = failure(ctx)
    assert err.exit_code == 5
    assert "gave up after" in str(err) and "no signature for token id 'zzzzzz' yet" in str(err)
    assert err.hint and "kbootd token list" in err.hint
    assert_secret_unsaid(ctx, err)


def test_tampered_cluster_info_fails_closed(cluster: TestAPIServer, root: Path) -> None:
    cluster.controllers.enabled["bootstrapsigner"] = False  # nobody re-signs the tampered content

    def tamper(obj: dict) -> None:
        obj["data"]["kubeconfig"] = obj["data"]["kubeconfig"].replace(cluster.url, "https://127.0.0.9:6443")

    cluster.store.mutate("configmaps", "cluster-info", tamper, namespace="kube-public", manager="attacker")
    ctx = join_context(root, pinned(cluster))
    err = failure(ctx)
    assert err.exit_code == 4 and "does not verify" in str(err)
    assert_secret_unsaid(ctx, err)


def _attacker(copy_from: TestAPIServer, ca_dir: Path | None = None) -> TestAPIServer:
    """A server that replays copy_from's signed cluster-info (it cannot sign anything itself)."""
    srv = TestAPIServer(controllers=False, cert_dir=ca_dir).start()
    data = dict(copy_from.store.get("configmaps", "cluster-info", "kube-public")["data"])
    kubeadm.cluster_info(srv.store, copy_from.url, copy_from.ca_pem, kubeconfig=data["kubeconfig"])
    srv.store.mutate("configmaps", "cluster-info", lambda o: o.__setitem__("data", data), namespace="kube-public",
                     manager="attacker")
    return srv


def test_man_in_the_middle_with_another_ca_on_the_second_fetch_fails_closed(cluster: TestAPIServer,
                                                                             root: Path) -> None:
    mitm = _attacker(cluster)
    proxy = SwitchingProxy(cluster.port, mitm.port)
    try:
        ctx = join_context(root, join_config((f"127.0.0.1:{proxy.port}",), pins=(pin_of(cluster.ca_pem),)))
        err = failure(ctx)
    finally:
        proxy.close()
        mitm.close()
    assert err.exit_code == 4
    assert "TLS identity changed between the two fetches" in str(err) and "verification" in str(err)
    assert proxy.connections == 2 and ctx.reporter.retries == []


def test_second_fetch_with_other_content_under_the_same_ca_fails_closed(cluster: TestAPIServer, root: Path,
                                                                        tmp_path: Path) -> None:
    ca_dir = tmp_path / "same-ca"
    ca_dir.mkdir()
    (ca_dir / "ca.crt").write_bytes(cluster.ca_pem)
    (ca_dir / "ca.key").write_bytes(pki.key_pem(cluster.ca.key))
    twin = _attacker(cluster, ca_dir)
    twin.store.mutate("configmaps", "cluster-info",
                      lambda o: o["data"].__setitem__("kubeconfig", o["data"]["kubeconfig"] + "\n"),
                      namespace="kube-public", manager="attacker")
    proxy = SwitchingProxy(cluster.port, twin.port)
    try:
        err = failure(join_context(root, join_config((f"127.0.0.1:{proxy.port}",), pins=(pin_of(cluster.ca_pem),))))
    finally:
        proxy.close()
        twin.close()
    assert err.exit_code == 4 and "differs from the first, unverified copy" in str(err)


def test_stolen_token_with_the_attackers_own_ca_is_caught_by_the_pin_but_not_without_it(
        cluster: TestAPIServer, root: Path, tmp_path: Path) -> None:
    with TestAPIServer() as evil:
        init_control_plane(evil, tmp_path / "evil")  # the same token: its signer signs evil's CA
        wait_signed(evil)
        err = failure(join_context(root, join_config((evil.server_address,), pins=(pin_of(cluster.ca_pem),))))
        assert err.exit_code == 4 and "matches none of the pinned public keys" in str(err)
        assert pin_of(evil.ca_pem) in str(err) and pin_of(cluster.ca_pem) in str(err)
        # The spec's trade-off, shown: without a pin the stolen token is enough to impersonate the control plane.
        ctx = join_context(root, join_config((evil.server_address,), unsafe=True))
        assert discover(ctx).ca_pem == evil.ca_pem
    out = ctx.reporter.text()
    assert "WARNING: --discovery-token-unsafe-skip-ca-verification" in out
    assert "impersonate the control plane to this and other bootstrapping nodes" in out
    assert f"The cluster CA's public-key pin is {pin_of(evil.ca_pem)}" in out


@pytest.mark.parametrize("order", ["dead-first", "alive-first"])
def test_every_endpoint_is_tried_and_the_first_success_wins(cluster: TestAPIServer, root: Path, order: str) -> None:
    dead = f"127.0.0.1:{free_port()}"
    eps = (dead, cluster.server_address) if order == "dead-first" else (cluster.server_address, dead)
    ctx = join_context(root, join_config(eps, pins=(pin_of(cluster.ca_pem),)))
    assert discover(ctx).endpoint == cluster.server_address
    assert ctx.reporter.retries == []


def test_all_endpoints_down_names_each_in_the_cause(root: Path) -> None:
    a, b = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    ctx = join_context(root, join_config((a, b), unsafe=True, discovery=0.3))
    err = failure(ctx)
    assert err.exit_code == 5
    assert f"waiting for https://{a}: connection refused; https://{b}: connection refused" in str(err)


def test_server_errors_are_retried(cluster: TestAPIServer, root: Path) -> None:
    cluster.faults.fail_next(3, status=503, path="/api/v1/namespaces/kube-public")
    ctx = join_context(root, pinned(cluster))
    assert discover(ctx).server == cluster.url
    assert [("HTTP 503" in c) for c in ctx.reporter.causes()] == [True, True, True]


# --- file discovery -------------------------------------------------------------------------------

def _cluster_info_text(srv: TestAPIServer) -> str:
    return srv.store.get("configmaps", "cluster-info", "kube-public")["data"]["kubeconfig"]


def test_local_discovery_file(cluster: TestAPIServer, root: Path) -> None:
    path = root / "etc/kubernetes/discovery.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(_cluster_info_text(cluster))
    ctx = join_context(root, join_config(discovery_file="/etc/kubernetes/discovery.yaml"))
    found = discover(ctx)
    assert (found.via, found.server, found.ca_pem) == ("file", cluster.url, cluster.ca_pem)
    assert "the API server's TLS certificate validates against it" in ctx.reporter.text()


def test_discovery_file_works_when_cluster_info_is_not_public(cluster: TestAPIServer, root: Path) -> None:
    """The spec's "Turning off public access to the cluster-info ConfigMap", then --discovery-file."""
    (root / "d.yaml").write_text(_cluster_info_text(cluster))
    admin = cluster.api_client("admin")
    from kubernetes import client as k8s

    k8s.RbacAuthorizationV1Api(admin).delete_namespaced_role_binding("kubeadm:bootstrap-signer-clusterinfo",
                                                                     "kube-public")
    ctx = join_context(root, join_config(discovery_file="/d.yaml"))
    assert discover(ctx).server == cluster.url
    assert "but the TLS cert is valid so proceeding" in ctx.reporter.text()


def test_discovery_file_with_another_ca_fails_closed(cluster: TestAPIServer, root: Path) -> None:
    other = pki.CertificateAuthority.generate(key_kind="ecdsa")
    text = _cluster_info_text(cluster).replace(base64.b64encode(cluster.ca_pem).decode(),
                                               base64.b64encode(other.pem).decode())
    (root / "d.yaml").write_text(text)
    err = failure(join_context(root, join_config(discovery_file="/d.yaml")))
    assert err.exit_code == 4 and "does not verify against the CA in the discovery file" in str(err)


@pytest.mark.parametrize(("content", "match"), [
    ("", "the file is empty"),
    ("kind: Config\nclusters: [", "not valid YAML"),
    ("apiVersion: v1\nkind: Config\nclusters:\n- name: a\n  cluster: {server: 'https://127.0.0.1:1'}\n"
     "- name: b\n  cluster: {server: 'https://127.0.0.1:2'}\ncurrent-context: ''\n", "exactly one cluster, found 2"),
])
def test_malformed_discovery_file_fails_closed(root: Path, content: str, match: str) -> None:
    (root / "d.yaml").write_text(content)
    err = failure(join_context(root, join_config(discovery_file="/d.yaml")))
    assert err.exit_code == 4 and match in str(err)


def test_missing_discovery_file(root: Path) -> None:
    err = failure(join_context(root, join_config(discovery_file="/nope.yaml")))
    assert err.exit_code == 4 and "no such file" in str(err)


class _FileServer:
    """An HTTPS server on 127.0.0.1 serving one document, with a certificate from its own test CA."""

    def __init__(self, body: str, tmp: Path) -> None:
        self.ca = pki.CertificateAuthority.generate(key_kind="ecdsa")
        issued = self.ca.issue_serving(["127.0.0.1"])
        (tmp / "srv.crt").write_bytes(issued.cert_pem)
        (tmp / "srv.key").write_bytes(issued.key_pem)
        self.ca_file = tmp / "bundle.pem"
        self.ca_file.write_bytes(self.ca.pem)
        payload = body.encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_a: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tmp / "srv.crt", tmp / "srv.key")
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}/cluster-info.yaml"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def file_server(cluster: TestAPIServer, tmp_path: Path) -> Iterator[_FileServer]:
    s = _FileServer(_cluster_info_text(cluster), tmp_path)
    yield s
    s.close()


def test_https_discovery_file_verified_with_the_ca_bundle(cluster: TestAPIServer, file_server: _FileServer,
                                                          root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(file_server.ca_file))
    ctx = join_context(root, join_config(discovery_file=file_server.url))
    found = discover(ctx)
    assert (found.via, found.server, found.ca_pem) == ("https", cluster.url, cluster.ca_pem)


def test_https_discovery_file_with_an_explicit_bundle(cluster: TestAPIServer, file_server: _FileServer,
                                                      root: Path) -> None:
    ctx = join_context(root, join_config(discovery_file=file_server.url))
    ctx.seams.ca_bundle = str(file_server.ca_file)
    assert discover(ctx).server == cluster.url


def test_https_discovery_file_from_an_untrusted_server_fails_closed(file_server: _FileServer, root: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    err = failure(join_context(root, join_config(discovery_file=file_server.url)))
    assert err.exit_code == 4 and "TLS verification with the host's CA bundle failed" in str(err)


@pytest.mark.parametrize("url", ["http://127.0.0.1:1/cluster-info.yaml", "HTTP://example.com/x"])
def test_plain_http_discovery_url_is_refused_without_a_request(root: Path, url: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from kbootd import transport

    monkeypatch.setattr(transport.Session, "request", lambda *a, **k: pytest.fail("no request may be sent"))
    err = failure(join_context(root, join_config(discovery_file=url)))
    assert err.exit_code == 4 and "refusing a plain-HTTP discovery URL" in str(err)


def test_discovery_client_talks_through_kbootd_apiclient_only_after_trust(cluster: TestAPIServer, root: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The verified fetch is kbootd.apiclient's transport, with the discovered CA and no credentials."""
    seen: list[KubeConfig] = []
    real = KubernetesTransport.__init__

    def spy(self: KubernetesTransport, kc: KubeConfig, **kw: object) -> None:
        seen.append(kc)
        real(self, kc, **kw)

    monkeypatch.setattr(KubernetesTransport, "__init__", spy)
    discover(join_context(root, pinned(cluster)))
    assert [(k.ca_pem, k.token, k.cert_pem) for k in seen] == [(cluster.ca_pem, None, None)]


# --- deadlines and limits of every discovery request (kbootd.transport) ----------------------------------

@pytest.fixture
def raw(tmp_path: Path) -> Iterator[object]:
    from tests.test_transport import PKI, RawServer

    made: list[RawServer] = []
    ca = PKI()

    def make(behaviour, *, tls: bool = True) -> RawServer:
        s = RawServer(behaviour, ca if tls else None, tmp_path)
        made.append(s)
        return s

    make.pki = ca  # type: ignore[attr-defined]
    yield make
    for s in made:
        s.close()


@pytest.mark.parametrize("prefix", [b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 9999\r\n\r\n{"],
                         ids=["headers", "body"])
def test_a_dripping_endpoint_cannot_hold_token_discovery_past_its_deadline(root: Path, raw, prefix: bytes) -> None:
    from tests.test_transport import drip

    srv = raw(drip(prefix, b" ", 0.05))
    cfg = join_config((f"127.0.0.1:{srv.port}",), pins=("sha256:" + "0" * 64,), discovery=1.5)
    start = time.monotonic()
    err = failure(join_context(root, cfg))
    took = time.monotonic() - start
    assert err.exit_code == 5 and took < 3.0, (took, str(err))


def test_a_dripping_https_discovery_file_cannot_outlast_the_deadline(root: Path, raw, tmp_path: Path) -> None:
    from tests.test_transport import drip

    srv = raw(drip(b"HTTP/1.1 200 OK\r\nContent-Length: 99999\r\n\r\napiVersion: v1\n", b"#", 0.05))
    ctx = join_context(root, join_config(discovery_file=srv.url + "/cluster-info.yaml", discovery=1.5))
    (tmp_path / "bundle.pem").write_bytes(raw.pki.ca_pem)
    ctx.seams.ca_bundle = str(tmp_path / "bundle.pem")
    start = time.monotonic()
    err = failure(ctx)
    assert err.exit_code == 5 and time.monotonic() - start < 3.0, str(err)


def test_an_https_discovery_file_that_redirects_to_http_is_refused_without_a_cleartext_request(
        root: Path, raw, tmp_path: Path) -> None:
    plain = raw(lambda conn, head: conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), tls=False)
    srv = raw(lambda conn, head: conn.sendall(
        b"HTTP/1.1 301 Moved\r\nLocation: " + plain.url.encode() + b"/cluster-info.yaml\r\nContent-Length: 0\r\n\r\n"))
    ctx = join_context(root, join_config(discovery_file=srv.url + "/cluster-info.yaml"))
    (tmp_path / "bundle.pem").write_bytes(raw.pki.ca_pem)
    ctx.seams.ca_bundle = str(tmp_path / "bundle.pem")
    err = failure(ctx)
    assert err.exit_code == 4 and "follows no redirect" in str(err)
    assert plain.connections == 0


def test_an_https_discovery_file_has_a_size_cap(root: Path, raw, tmp_path: Path) -> None:
    big = b"# " + b"x" * (2 << 20) + b"\n"
    srv = raw(lambda conn, head: conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(big) + big))
    ctx = join_context(root, join_config(discovery_file=srv.url + "/cluster-info.yaml"))
    (tmp_path / "bundle.pem").write_bytes(raw.pki.ca_pem)
    ctx.seams.ca_bundle = str(tmp_path / "bundle.pem")
    err = failure(ctx)
    assert err.exit_code == 4 and "larger than 1048576 bytes" in str(err)


# --- hostile cluster-info from a real server on 127.0.0.1 (issue 11 #6) ----------------------------------

def _raw_get(payload: bytes):
    def do_get(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    return do_get


@contextmanager
def _raw_https(payload: bytes, tmp: Path) -> Iterator[tuple[str, _FileServer]]:
    """An HTTPS server on 127.0.0.1 answering every GET with payload, byte for byte (the test API
    server cannot serve what is not valid JSON text, e.g. lone surrogates as JSON escapes)."""
    s = _FileServer("", tmp)
    s.httpd.RequestHandlerClass.do_GET = _raw_get(payload)  # type: ignore[attr-defined]
    try:
        yield f"127.0.0.1:{s.httpd.server_address[1]}", s
    finally:
        s.close()


def _cluster_info_body(data: dict[str, str]) -> bytes:
    # json.dumps escapes a lone surrogate as \ud800, which json.loads turns back into one.
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "data": data}).encode("ascii")


def _header() -> str:
    from kbootd import jws

    return jws.encoded_header("abcdef")


@pytest.mark.parametrize("make", [
    pytest.param(lambda kc, sig: {"kubeconfig": kc + "\ud800", "jws-kubeconfig-abcdef": sig},
                 id="lone-surrogate-in-kubeconfig"),
    pytest.param(lambda kc, sig: {"kubeconfig": "\udfff", "jws-kubeconfig-abcdef": _header() + "..x"},
                 id="lone-surrogate-only"),
    pytest.param(lambda kc, sig: {"kubeconfig": kc, "jws-kubeconfig-abcdef": _header() + "..\ud800"},
                 id="lone-surrogate-in-jws"),
    pytest.param(lambda kc, sig: {"kubeconfig": kc, "jws-kubeconfig-abcdef": "\ud800" + sig[1:]},
                 id="lone-surrogate-in-jws-header"),
    pytest.param(lambda kc, sig: {"kubeconfig": "[" * 200_000, "jws-kubeconfig-abcdef": sig}, id="200KB-of-["),
])
def test_hostile_cluster_info_is_a_security_error_never_exit_1(cluster: TestAPIServer, tmp_path: Path, root: Path,
                                                               make) -> None:
    data = cluster.store.get("configmaps", "cluster-info", "kube-public")["data"]
    body = _cluster_info_body(make(data["kubeconfig"], data["jws-kubeconfig-abcdef"]))
    with _raw_https(body, tmp_path) as (endpoint, _srv):
        ctx = join_context(root, join_config((endpoint,), pins=(pin_of(cluster.ca_pem),)))
        err = failure(ctx)
    assert err.exit_code == 4, err
    assert "internal error" not in str(err)
    assert_secret_unsaid(ctx, err)


def test_hostile_cluster_info_signed_by_the_cluster_is_malformed_not_a_crash(tmp_path: Path, root: Path) -> None:
    """Content the token's secret did sign (a broken cluster-info): exit 4, naming it malformed."""
    from kbootd import jws

    kc = "[" * 200_000
    body = _cluster_info_body({"kubeconfig": kc, "jws-kubeconfig-abcdef": jws.sign(kc, "abcdef", SECRET)})
    with _raw_https(body, tmp_path) as (endpoint, _srv):
        err = failure(join_context(root, join_config((endpoint,), unsafe=True)))
    assert err.exit_code == 4 and "malformed kubeconfig" in str(err)


@pytest.mark.parametrize("payload", [b"\xff\xfe\x00garbage", b"[" * 200_000, b'{"kind": "ConfigMap", "data": 5}'],
                         ids=["non-utf8", "200KB-of-[", "no-data"])
def test_garbage_cluster_info_answers_are_transient(tmp_path: Path, root: Path, payload: bytes) -> None:
    """An answer that is not a ConfigMap (not JSON, not UTF-8, 200 KB of '[') is a server not
    ready or not an API server: retried until the deadline (exit 5), never exit 1."""
    with _raw_https(payload, tmp_path) as (endpoint, _srv):
        err = failure(join_context(root, join_config((endpoint,), unsafe=True, discovery=1.0)))
    assert err.exit_code == 5, err
    assert "internal error" not in str(err)


def test_non_utf8_https_discovery_file_is_refused_not_a_crash(tmp_path: Path, root: Path) -> None:
    payload = b"apiVersion: v1\nkind: Config\nclusters:\n- name: \xff\xfe\x80\n"
    with _raw_https(payload, tmp_path) as (_endpoint, srv):
        ctx = join_context(root, join_config(discovery_file=srv.url))
        ctx.seams.ca_bundle = str(srv.ca_file)
        err = failure(ctx)
    assert err.exit_code == 4, err
    assert "internal error" not in str(err)
