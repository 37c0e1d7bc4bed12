"""A stand-in for the kubelet's side of the TLS bootstrap (tests only).

Started by join's recorded `systemctl restart kubelet` (see `install`), or by hand, it does
what kubelet 1.32 does with bootstrap-kubelet.conf under a test root:

1. reads /etc/kubernetes/bootstrap-kubelet.conf (server, CA, bootstrap token);
2. makes an ECDSA P-256 key and a CSR for CN=system:node:<name>, O=system:nodes;
3. POSTs a CertificateSigningRequest with generateName csr- and signerName
   kubernetes.io/kube-apiserver-client-kubelet, then lists it by fieldSelector
   metadata.name=<name> until status.certificate is set (fixtures 29-31);
4. writes /var/lib/kubelet/pki/kubelet-client-current.pem (certificate and key, 0600) and
   /etc/kubernetes/kubelet.conf pointing at it (the kubelet's own layout);
5. registers its Node with that new identity (and optionally reports it Ready).

All API traffic goes through kbootd.apiclient against the in-repo test server.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from kbootd import apiclient
from kbootd.hostio import Host
from kbootd.kubeconfig import parse_kubeconfig
from kbootd.pki import certs, keys

CLIENT_PEM = "/var/lib/kubelet/pki/kubelet-client-current.pem"
SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
CSR_PATH = "/apis/certificates.k8s.io/v1/certificatesigningrequests"


class KubeletDouble:
    def __init__(self, root: Path, node_name: str, *, ready: bool = False, timeout: float = 15.0,
                 poll: float = 0.05) -> None:
        self.root = Path(root)
        self.node_name = node_name
        self.ready = ready
        self.timeout = timeout
        self.poll = poll
        self.csr_name: str | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.starts = 0
        self.bootstrap_conf: Any = None  # what it read, and the file's mode
        self.bootstrap_conf_mode: int | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        self.starts += 1
        if self._thread is not None and self._thread.is_alive():
            return
        self._thread = threading.Thread(target=self._run, name="kubelet-double", daemon=True)
        self._thread.start()

    def wait(self, timeout: float = 20.0) -> None:
        if not self.done.wait(timeout):
            raise TimeoutError("the kubelet double did not finish")
        if self.error is not None:
            raise self.error

    @contextmanager
    def install(self, monkeypatch: Any) -> Iterator[KubeletDouble]:
        """Start this double when join (not in dry-run) records `systemctl restart kubelet`."""
        real_run = Host.run

        def run(host: Host, argv: Any, **kw: Any) -> Any:
            res = real_run(host, argv, **kw)
            if list(argv) == ["systemctl", "restart", "kubelet"] and not host.dry_run:
                self.start()
            return res

        monkeypatch.setattr(Host, "run", run)
        yield self

    def _run(self) -> None:
        try:
            self.bootstrap()
        except BaseException as e:  # handed to the test through wait()
            self.error = e
        finally:
            self.done.set()

    # --- the kubelet's TLS bootstrap -------------------------------------------------------------
    def at(self, host_path: str) -> Path:
        return self.root / host_path.lstrip("/")

    def _client(self, server: str, ca_pem: bytes, *, token: str | None = None, cert: bytes | None = None,
                key: bytes | None = None) -> apiclient.Client:
        kc = apiclient.KubeConfig(path="kubelet", server=server, cluster={}, ca_pem=ca_pem, cert_pem=cert,
                                  key_pem=key, token=token)
        return apiclient.Client(apiclient.KubernetesTransport(kc), timeout=self.timeout, interval=self.poll)

    def bootstrap(self) -> None:
        path = self.at("/etc/kubernetes/bootstrap-kubelet.conf")
        self.bootstrap_conf_mode = path.stat().st_mode & 0o7777
        boot = self.bootstrap_conf = parse_kubeconfig(path.read_text(), "bootstrap")
        assert boot.ca_pem is not None and boot.token
        client = self._client(boot.server, boot.ca_pem, token=boot.token)
        try:
            key = keys.generate_key("ECDSA-P256")
            csr = certs.new_csr(key, f"system:node:{self.node_name}", organizations=["system:nodes"])
            body = {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
                    "metadata": {"generateName": "csr-"},
                    "spec": {"request": base64.b64encode(certs.encode_csr_pem(csr)).decode(),
                             "signerName": SIGNER, "usages": ["digital signature", "client auth"]}}
            status, data = client.transport.request("POST", CSR_PATH, body)
            if status != 201:
                raise AssertionError(f"CSR POST answered {status}: {data[:300]!r}")
            self.csr_name = json.loads(data)["metadata"]["name"]
            cert_pem = self._wait_for_certificate(client)
        finally:
            client.close()
        self._write_credentials(boot.server, boot.ca_pem, cert_pem, keys.encode_private_key_pem(key))
        self._register(boot.server, boot.ca_pem, cert_pem, keys.encode_private_key_pem(key))

    def _wait_for_certificate(self, client: apiclient.Client) -> bytes:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            items = client.list("CertificateSigningRequest", field_selector=f"metadata.name={self.csr_name}")
            status = (items[0].get("status") or {}) if items else {}
            if any(c.get("type") == "Denied" for c in status.get("conditions") or []):
                raise AssertionError(f"CSR {self.csr_name} was denied")
            if status.get("certificate"):
                return base64.b64decode(status["certificate"])
            time.sleep(self.poll)
        raise TimeoutError(f"CSR {self.csr_name} got no certificate within {self.timeout} s")

    def _write_credentials(self, server: str, ca_pem: bytes, cert_pem: bytes, key_pem: bytes) -> None:
        pki = self.at("/var/lib/kubelet/pki")
        pki.mkdir(parents=True, exist_ok=True)
        pki.chmod(0o700)
        _atomic(self.at(CLIENT_PEM), cert_pem + key_pem, 0o600)
        conf = {"apiVersion": "v1", "kind": "Config",
                "clusters": [{"name": "default-cluster",
                              "cluster": {"certificate-authority-data": base64.b64encode(ca_pem).decode(),
                                          "server": server}}],
                "contexts": [{"name": "default-context",
                              "context": {"cluster": "default-cluster", "namespace": "default",
                                          "user": "default-auth"}}],
                "current-context": "default-context", "preferences": {},
                "users": [{"name": "default-auth",
                           "user": {"client-certificate": CLIENT_PEM, "client-key": CLIENT_PEM}}]}
        _atomic(self.at("/etc/kubernetes/kubelet.conf"), yaml.safe_dump(conf).encode(), 0o600)

    def _register(self, server: str, ca_pem: bytes, cert_pem: bytes, key_pem: bytes) -> None:
        client = self._client(server, ca_pem, cert=cert_pem, key=key_pem)
        name = self.node_name
        try:
            try:
                client.create({"apiVersion": "v1", "kind": "Node",
                               "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name,
                                                                     "kubernetes.io/os": "linux"}}})
            except apiclient.APIError as e:
                if not e.already_exists:
                    raise
            if self.ready:
                patch = {"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                                    "message": "kubelet is posting ready status"}]}}
                status, data = client.transport.request("PATCH", f"/api/v1/nodes/{name}/status", patch,
                                                        "application/merge-patch+json")
                if status != 200:
                    raise AssertionError(f"node status PATCH answered {status}: {data[:300]!r}")
        finally:
            client.close()


def _atomic(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)
