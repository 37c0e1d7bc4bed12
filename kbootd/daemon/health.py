"""Health of a set-up node: kubelet unit, Node Ready, /healthz.

The supervisor runs these every interval for as long as the machine is up, so nothing
here imports `kubernetes` or `cryptography`; kubelet.conf is read by kbootd.kubeconfigfile
(PyYAML, once per change of the file) and requests go through kbootd.transport (a total
deadline, a size cap, no redirects). Credentials come from kubelet.conf as kubeadm writes
it (a client certificate by path after TLS bootstrap, or embedded data): the same identity
the kubelet uses, which the Node authorizer lets read its own Node. Key material reaches
OpenSSL through a sealed memfd, never a file on disk.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from kbootd import kubeconfigfile, transport
from kbootd.errors import KbootdError
from kbootd.hostio import Host

TIMEOUT = 5.0
MAX_BODY = 1 << 20


@dataclass(frozen=True)
class Health:
    kubelet: str  # active | inactive | failed | activating | unknown
    node: str  # Ready | NotReady | unknown (<why>)
    apiserver: str | None = None  # ok | <why>; control planes only

    @property
    def healthy(self) -> bool:
        return self.kubelet == "active" and self.node == "Ready" and self.apiserver in (None, "ok")


def load_credentials(host: Host, path: str) -> tuple[str, transport.TLS]:
    """(server, TLS settings) of a kubeconfig; file references are read through host (under --root).

    Raises KbootdError (a ValidationError naming the file and field for a malformed file).
    """
    text = host.read_bytes(path)
    if text is None:
        raise KbootdError(f"no {path}")
    kc = kubeconfigfile.parse(text, path)

    def data(embedded: bytes | None, ref: str | None, what: str) -> bytes | None:
        if embedded is not None or not ref:
            return embedded
        ref = kubeconfigfile.resolve_ref(ref, path)
        content = host.read_bytes(ref)
        if content is None:
            raise KbootdError(f"{path}: {what} file {ref} does not exist")
        return content

    ca = data(kc.ca_pem, kc.ca_file, "certificate-authority")
    cert = data(kc.client_cert_pem, kc.client_cert_file, "client-certificate")
    key = data(kc.client_key_pem, kc.client_key_file, "client-key")
    if (cert is None) != (key is None):
        raise KbootdError(f"{path}: a client certificate without its key, or a key without its certificate")
    return kc.server, transport.TLS(ca_pem=ca, system_ca=ca is None, cert_pem=cert, key_pem=key,
                                    verify=not kc.insecure, server_name=kc.tls_server_name)


def _why(e: KbootdError) -> str:
    """The cause without the request line the transport puts first."""
    text = str(e)
    return text.split(": ", 1)[-1] if text.startswith(("GET ", "POST ")) else text


def kubelet_state(host: Host) -> str:
    r = host.query(["systemctl", "is-active", "kubelet.service"])
    if r is None:
        return "unknown"
    return r.stdout.strip() or "unknown"


def node_state(session: transport.Session, node_name: str) -> str:
    try:
        r = session.request("GET", f"/api/v1/nodes/{node_name}", timeout=TIMEOUT)
    except KbootdError as e:
        return f"unknown ({_why(e)})"
    if r.status != 200:
        return f"unknown (HTTP {r.status})"
    try:
        doc = json.loads(r.body)
        conds = (doc.get("status") or {}).get("conditions") or [] if isinstance(doc, dict) else []
    except (ValueError, RecursionError, AttributeError):
        return "unknown (bad response)"
    for c in conds if isinstance(conds, list) else []:
        if isinstance(c, dict) and c.get("type") == "Ready":
            return "Ready" if c.get("status") == "True" else "NotReady"
    return "NotReady"


def apiserver_state(session: transport.Session) -> str:
    try:
        r = session.request("GET", "/healthz", timeout=TIMEOUT)
    except KbootdError as e:
        return _why(e)
    return "ok" if r.status == 200 and r.body.strip() == b"ok" else f"HTTP {r.status}"


class Checker:
    """Loads credentials once (and again when kubelet.conf changes), then checks on demand."""

    def __init__(self, host: Host, role: str, node_name: str, kubeconfig: str | None = None,
                 local_apiserver: str | None = None) -> None:
        self.host = host
        self.role = role
        self.node_name = node_name
        self.kubeconfig = kubeconfig or host.paths.kubelet_conf
        self.local_apiserver = local_apiserver
        self._stamp: tuple[float, int] | None = None
        self._server: str | None = None
        self._tls: transport.TLS | None = None
        self._context: Any = None  # one ssl.SSLContext per credentials, shared by the sessions
        self._sessions: dict[str, transport.Session] = {}
        self._problem = ""

    def _forget(self) -> None:
        for s in self._sessions.values():
            s.close()
        self._sessions = {}
        self._server, self._tls, self._context = None, None, None

    def _load(self) -> None:
        try:
            st = os.stat(self.host.paths.at(self.kubeconfig))
        except OSError:
            self._forget()
            self._stamp = None
            self._problem = f"no {self.kubeconfig}"
            return
        stamp = (st.st_mtime, st.st_size)
        if stamp == self._stamp:
            return
        self._stamp = stamp
        self._forget()
        try:
            self._server, self._tls = load_credentials(self.host, self.kubeconfig)
            self._context = transport.ssl_context(self._tls)
        except (KbootdError, OSError, ValueError) as e:
            # The kubelet rotates its client certificate; try again next round.
            self._forget()
            self._problem = f"{self.kubeconfig}: credentials: {_why(e) if isinstance(e, KbootdError) else e}"
            self._stamp = None

    def _session(self, server: str) -> transport.Session:
        if server not in self._sessions:
            self._sessions[server] = transport.Session(server, self._tls, context=self._context, timeout=TIMEOUT,
                                                       max_body=MAX_BODY)
        return self._sessions[server]

    def check(self) -> Health:
        kubelet = kubelet_state(self.host)
        self._load()
        if self._server is None or self._context is None:
            node = f"unknown ({self._problem})"
            api = None if self.role != "control-plane" else f"unknown ({self._problem})"
            return Health(kubelet, node, api)
        node = node_state(self._session(self._server), self.node_name)
        if node.startswith("unknown"):
            self._stamp = None  # reload next round: the kubelet may have rotated its certificate
        api = None
        if self.role == "control-plane":
            api = apiserver_state(self._session(self.local_apiserver or self._server))
        return Health(kubelet, node, api)
