#!/usr/bin/python3
"""A stand-in kubelet for kbootd's daemon e2e test; installed in the hosts as /usr/bin/kubelet.

The containers cannot run a real kubelet (no usable cgroups), so this program does what
kbootd needs from one, started by kbootd's own `systemctl enable/restart kubelet` through
the drop-in kbootd writes (ExecStart=/usr/bin/kubelet --bootstrap-kubeconfig=... --kubeconfig=...):

* `kubelet --version` answers like kubelet (preflight's KubeletVersion check);
* http://127.0.0.1:10248/healthz answers "ok" (init's wait-control-plane);
* with --kubeconfig present (a control plane: init wrote kubelet.conf), it registers this
  host's Node with that identity once the API server answers, and reports it Ready
  (mark-control-plane waits for the Node);
* with only --bootstrap-kubeconfig present (a worker after join's kubelet-start), it runs
  the kubelet's TLS bootstrap through tests/kubelet_double.py (CSR, certificate,
  kubelet.conf, Node) and then reports the Node Ready.

Runs on the host image's Debian python3 with the installed kbootd; the repository's
tests/ package is copied to /opt/kbootd-e2e (E2E_ROOT). Messages go to stdout (journal).
"""

from __future__ import annotations

import base64
import http.server
import os
import re
import socket
import sys
import threading
import time
from pathlib import Path

VERSION = os.environ.get("E2E_KUBELET_VERSION", "v1.32.0")
E2E_ROOT = "/opt/kbootd-e2e"
HEALTHZ = ("127.0.0.1", 10248)
RETRY = 1.0


def say(msg: str) -> None:
    print(f"kubelet-standin: {msg}", flush=True)


def flags(argv: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    it = iter(argv)
    for a in it:
        if a.startswith("--"):
            k, eq, v = a[2:].partition("=")
            out[k] = v if eq else "true"
    return out


class _Healthz(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = b"ok" if self.path.startswith("/healthz") else b"not found"
        self.send_response(200 if body == b"ok" else 404)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def serve_healthz() -> None:
    srv = http.server.ThreadingHTTPServer(HEALTHZ, _Healthz)
    threading.Thread(target=srv.serve_forever, name="healthz", daemon=True).start()
    say(f"healthz on http://{HEALTHZ[0]}:{HEALTHZ[1]}/healthz")


def _file_or_data(entry: dict, key: str, base: str) -> bytes | None:
    if entry.get(f"{key}-data"):
        return base64.b64decode(entry[f"{key}-data"])
    ref = entry.get(key)
    if ref:
        return Path(ref if ref.startswith("/") else f"{base}/{ref}").read_bytes()
    return None


def read_kubeconfig(path: str) -> tuple[str, bytes, bytes, bytes]:
    """(server, CA, client certificate, client key) of a kubeconfig's current context."""
    import yaml

    doc = yaml.safe_load(Path(path).read_text())
    ctx_name = doc.get("current-context")
    ctx = next(c["context"] for c in doc["contexts"] if c["name"] == ctx_name)
    cluster = next(c["cluster"] for c in doc["clusters"] if c["name"] == ctx["cluster"])
    user = next(u["user"] for u in doc["users"] if u["name"] == ctx["user"])
    base = str(Path(path).parent)
    ca = _file_or_data(cluster, "certificate-authority", base)
    cert = _file_or_data(user, "client-certificate", base)
    key = _file_or_data(user, "client-key", base)
    if not (ca and cert and key):
        raise ValueError(f"{path}: expected a CA and a client certificate and key")
    return cluster["server"], ca, cert, key


def client(server: str, ca: bytes, cert: bytes, key: bytes):  # noqa: ANN201 - kbootd's Client
    from kbootd import apiclient

    kc = apiclient.KubeConfig(path="kubelet", server=server, cluster={}, ca_pem=ca, cert_pem=cert, key_pem=key)
    return apiclient.Client(apiclient.KubernetesTransport(kc), timeout=10, interval=0.5)


def register(server: str, ca: bytes, cert: bytes, key: bytes, name: str) -> None:
    """Create the Node (as kubelet does on start) and report it Ready."""
    from kbootd import apiclient

    c = client(server, ca, cert, key)
    try:
        try:
            c.create({"apiVersion": "v1", "kind": "Node",
                      "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name,
                                                            "kubernetes.io/os": "linux"}}})
            say(f"registered Node {name} at {server}")
        except apiclient.APIError as e:
            if not e.already_exists:
                raise
            say(f"Node {name} already registered")
        patch = {"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                            "message": "kubelet is posting ready status (e2e stand-in)"}]}}
        status, data = c.transport.request("PATCH", f"/api/v1/nodes/{name}/status", patch,
                                           "application/merge-patch+json")
        if status != 200:
            raise RuntimeError(f"PATCH node status answered {status}: {data[:200]!r}")
    finally:
        c.close()


def tls_bootstrap(name: str) -> None:
    sys.path.insert(0, E2E_ROOT)
    from tests.kubelet_double import KubeletDouble

    KubeletDouble(Path("/"), name, ready=True, timeout=60, poll=0.5).bootstrap()
    say(f"TLS bootstrap done: wrote /etc/kubernetes/kubelet.conf, Node {name} registered")


def main(argv: list[str]) -> int:
    if "--version" in argv:
        print(f"Kubernetes {VERSION}")
        return 0
    f = flags(argv)
    kubeconfig = f.get("kubeconfig", "/etc/kubernetes/kubelet.conf")
    bootstrap = f.get("bootstrap-kubeconfig", "/etc/kubernetes/bootstrap-kubelet.conf")
    name = (f.get("hostname-override") or socket.gethostname()).lower()
    say(f"started: {' '.join(argv) or '(no flags)'}; node {name}")
    serve_healthz()
    last_error = ""
    while True:
        try:
            if os.path.exists(kubeconfig):
                register(*read_kubeconfig(kubeconfig), name)
                break
            if os.path.exists(bootstrap):
                tls_bootstrap(name)
                break
            why = f"neither {kubeconfig} nor {bootstrap} exists yet"
        except Exception as e:  # noqa: BLE001 - keep trying, as the kubelet does
            why = re.sub(r" object at 0x[0-9a-f]+", "", f"{type(e).__name__}: {e}")
        if why != last_error:
            say(f"waiting: {why}")
            last_error = why
        time.sleep(RETRY)
    while True:  # registered: keep serving healthz until stopped
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
