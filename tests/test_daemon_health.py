import base64
import os

import pytest

from kbootd.daemon import health
from kbootd.hostio import CommandResult, Host
from kbootd.paths import Paths
from tests.apiserver import TestAPIServer


@pytest.fixture(scope="module")
def api():
    with TestAPIServer(controllers=False) as server:
        for name, ready in (("node-3", "True"), ("node-4", "False")):
            server.store.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
                                 "status": {"conditions": [{"type": "MemoryPressure", "status": "False"},
                                                           {"type": "Ready", "status": ready}]}},
                                manager="test")
        yield server


@pytest.fixture
def host(root):
    return Host(Paths.rooted(root))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def kubelet_conf(host, api, who="node:node-3", embedded=False) -> None:
    """kubelet.conf the way kubeadm writes it: CA embedded; client cert by path (after TLS bootstrap) or embedded."""
    issued = api.issue_client_cert(who)
    if embedded:
        user = f"    client-certificate-data: {b64(issued.cert_pem)}\n    client-key-data: {b64(issued.key_pem)}\n"
    else:
        pem = host.paths.at("/var/lib/kubelet/pki/kubelet-client-current.pem")
        pem.parent.mkdir(parents=True, exist_ok=True)
        pem.write_bytes(issued.cert_pem + issued.key_pem)
        os.chmod(pem, 0o600)
        user = ("    client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem\n"
                "    client-key: /var/lib/kubelet/pki/kubelet-client-current.pem\n")
    text = ("apiVersion: v1\nclusters:\n- cluster:\n"
            f"    certificate-authority-data: {b64(api.ca_pem)}\n    server: {api.url}\n  name: default-cluster\n"
            "contexts:\n- context:\n    cluster: default-cluster\n    namespace: default\n    user: default-auth\n"
            "  name: default-context\ncurrent-context: default-context\nkind: Config\npreferences: {}\n"
            "users:\n- name: default-auth\n  user:\n" + user)
    host.write_file(host.paths.kubelet_conf, text, 0o600)


def kubelet(host, monkeypatch, state="active"):
    monkeypatch.setattr(host, "query", lambda argv, timeout=10: CommandResult(tuple(argv), 0, state + "\n"))


def test_credentials_come_from_the_one_kubeconfig_reader(host):
    host.write_file("/etc/kubernetes/kubelet.conf",
                    "clusters:\n- cluster:\n    certificate-authority-data: " + b64(b"CA") +
                    "\n    server: https://10.0.0.10:6443\n  name: c\n"
                    "users:\n- name: u\n  user:\n    client-certificate: /a.pem\n    client-key: '/b.pem'\n", 0o600)
    host.write_file("/a.pem", "CERT", 0o600)
    host.write_file("/b.pem", "KEY", 0o600)
    server, tls = health.load_credentials(host, "/etc/kubernetes/kubelet.conf")
    assert (server, tls.ca_pem, tls.cert_pem, tls.key_pem) == ("https://10.0.0.10:6443", b"CA", b"CERT", b"KEY")


@pytest.mark.parametrize("text,problem", [
    ("kind: Config\n", "no current-context"),
    ("clusters: 5\n", "kubelet.conf: clusters: expected a list, got a number"),
    ("current-context: [x]\n", "current-context: expected a string"),
])
def test_a_malformed_kubelet_conf_is_reported_not_raised(host, monkeypatch, text, problem):
    host.write_file(host.paths.kubelet_conf, text, 0o600)
    kubelet(host, monkeypatch)
    h = health.Checker(host, "control-plane", "node-3").check()
    assert h.node.startswith("unknown (") and problem in h.node and problem in h.apiserver


@pytest.mark.parametrize("embedded", [False, True], ids=["cert-by-path", "embedded-cert"])
def test_worker_ready(api, host, monkeypatch, embedded):
    kubelet_conf(host, api, embedded=embedded)
    kubelet(host, monkeypatch)
    h = health.Checker(host, "worker", "node-3").check()
    assert h == health.Health("active", "Ready", None) and h.healthy


def test_not_ready_and_inactive_kubelet(api, host, monkeypatch):
    kubelet_conf(host, api, who="node:node-4")
    kubelet(host, monkeypatch, "inactive")
    h = health.Checker(host, "worker", "node-4").check()
    assert (h.kubelet, h.node, h.healthy) == ("inactive", "NotReady", False)


def test_node_authorizer_forbids_other_nodes(api, host, monkeypatch):
    kubelet_conf(host, api, who="node:node-3")
    kubelet(host, monkeypatch)
    assert health.Checker(host, "worker", "node-4").check().node == "unknown (HTTP 403)"


def test_control_plane_checks_healthz_too(api, host, monkeypatch):
    kubelet_conf(host, api)
    kubelet(host, monkeypatch)
    checker = health.Checker(host, "control-plane", "node-3")
    assert checker.check().apiserver == "ok"
    api.set_ready(False)
    try:
        assert checker.check().apiserver == "HTTP 500"
    finally:
        api.set_ready(True)


def test_without_kubelet_conf_or_host(host):
    h = health.Checker(host, "control-plane", "node-3").check()
    assert h.kubelet == "unknown"  # not on the host: no systemctl
    assert h.node == "unknown (no /etc/kubernetes/kubelet.conf)" and h.apiserver.startswith("unknown")


def test_unreachable_api_server(api, host, monkeypatch):
    kubelet_conf(host, api)
    text = host.read_text(host.paths.kubelet_conf).replace(api.url, "https://127.0.0.1:1")
    host.write_file(host.paths.kubelet_conf, text, 0o600)
    kubelet(host, monkeypatch)
    assert health.Checker(host, "worker", "node-3").check().node == "unknown (connection refused)"


def test_wrong_ca_is_a_tls_problem(api, host, monkeypatch):
    kubelet_conf(host, api)
    other = TestAPIServer(controllers=False)
    try:
        text = host.read_text(host.paths.kubelet_conf)
        start = text.index("certificate-authority-data: ") + len("certificate-authority-data: ")
        end = text.index("\n", start)
        host.write_file(host.paths.kubelet_conf, text[:start] + b64(other.ca_pem) + text[end:], 0o600)
    finally:
        other.close()
    kubelet(host, monkeypatch)
    assert health.Checker(host, "worker", "node-3").check().node.startswith("unknown (TLS")


def test_credentials_reload_when_kubelet_conf_changes(api, host, monkeypatch):
    kubelet(host, monkeypatch)
    checker = health.Checker(host, "worker", "node-3")
    assert checker.check().node.startswith("unknown (no ")
    kubelet_conf(host, api)
    assert checker.check().node == "Ready"


def test_imports_only_the_standard_library_and_kbootd():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(health))
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names} | \
        {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported <= {"__future__", "json", "os", "dataclasses", "typing", "kbootd"}
