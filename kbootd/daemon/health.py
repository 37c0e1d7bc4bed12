"""Health of a set-up node, with the standard library only: kubelet unit, Node Ready, /healthz.

The supervisor runs these every interval for as long as the machine is up, so nothing
here imports `kubernetes`, `yaml` or `requests`. Credentials come from kubelet.conf as
kubeadm writes it (one cluster, one user; a client certificate by path, or embedded
data): the same identity the kubelet uses, which the Node authorizer lets read its own
Node. Embedded key material is handed to `ssl` through a memfd, never a file on disk.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import ssl
from dataclasses import dataclass

from kbootd.hostio import Host

TIMEOUT = 5.0
_KEY = re.compile(r"^\s*(?:-\s+)?(server|certificate-authority-data|certificate-authority|"
                  r"client-certificate-data|client-certificate|client-key-data|client-key):\s*(\S+)\s*$")


@dataclass(frozen=True)
class Credentials:
    server: str
    ca_pem: str | None = None
    ca_file: str | None = None
    cert_pem: bytes | None = None
    cert_file: str | None = None
    key_pem: bytes | None = None
    key_file: str | None = None


@dataclass(frozen=True)
class Health:
    kubelet: str  # active | inactive | failed | activating | unknown
    node: str  # Ready | NotReady | unknown (<why>)
    apiserver: str | None = None  # ok | <why>; control planes only

    @property
    def healthy(self) -> bool:
        return self.kubelet == "active" and self.node == "Ready" and self.apiserver in (None, "ok")


def parse_kubeconfig(text: str) -> Credentials | None:
    """The first cluster's server and CA and the first user's client credentials."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        m = _KEY.match(line)
        if m and m.group(1) not in found:
            found[m.group(1)] = m.group(2).strip("\"'")
    if "server" not in found:
        return None

    def b64(key: str) -> bytes | None:
        return base64.b64decode(found[key]) if key in found else None

    ca = b64("certificate-authority-data")
    return Credentials(
        server=found["server"], ca_pem=ca.decode() if ca else None,
        ca_file=found.get("certificate-authority"), cert_pem=b64("client-certificate-data"),
        cert_file=found.get("client-certificate"), key_pem=b64("client-key-data"),
        key_file=found.get("client-key"))


def _memfile(data: bytes) -> tuple[int, str]:
    fd = os.memfd_create("kbootd-cred", os.MFD_CLOEXEC)
    os.write(fd, data)
    return fd, f"/proc/self/fd/{fd}"


def ssl_context(host: Host, creds: Credentials) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cadata=creds.ca_pem) if creds.ca_pem else \
        ssl.create_default_context(cafile=str(host.paths.at(creds.ca_file)) if creds.ca_file else None)
    fds: list[int] = []
    try:
        if creds.cert_pem is not None:
            fd, cert = _memfile(creds.cert_pem)
            fds.append(fd)
        else:
            cert = str(host.paths.at(creds.cert_file)) if creds.cert_file else None
        if creds.key_pem is not None:
            fd, key = _memfile(creds.key_pem)
            fds.append(fd)
        else:
            key = str(host.paths.at(creds.key_file)) if creds.key_file else None
        if cert:
            ctx.load_cert_chain(cert, key)
    finally:
        for fd in fds:
            os.close(fd)
    return ctx


def _split(server: str) -> tuple[str, int]:
    hostport = server.split("://", 1)[-1].rstrip("/")
    if hostport.startswith("["):
        host, _, port = hostport[1:].partition("]:")
        return host, int(port or 443)
    host, _, port = hostport.rpartition(":") if ":" in hostport else (hostport, "", "")
    return host, int(port or 443)


def get(server: str, ctx: ssl.SSLContext, path: str, timeout: float = TIMEOUT) -> tuple[int, bytes]:
    host, port = _split(server)
    conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Accept": "application/json", "User-Agent": "kbootd"})
        resp = conn.getresponse()
        return resp.status, resp.read(1 << 20)
    finally:
        conn.close()


def _why(e: BaseException) -> str:
    if isinstance(e, ssl.SSLError):
        return f"TLS: {e.reason or e}"
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, TimeoutError):
        return "timed out"
    return str(e) or type(e).__name__


def kubelet_state(host: Host) -> str:
    r = host.query(["systemctl", "is-active", "kubelet.service"])
    if r is None:
        return "unknown"
    return r.stdout.strip() or "unknown"


def node_state(server: str, ctx: ssl.SSLContext, node_name: str) -> str:
    try:
        code, body = get(server, ctx, f"/api/v1/nodes/{node_name}")
    except (OSError, ssl.SSLError, http.client.HTTPException) as e:
        return f"unknown ({_why(e)})"
    if code != 200:
        return f"unknown (HTTP {code})"
    try:
        conds = json.loads(body).get("status", {}).get("conditions") or []
    except ValueError:
        return "unknown (bad response)"
    for c in conds:
        if c.get("type") == "Ready":
            return "Ready" if c.get("status") == "True" else "NotReady"
    return "NotReady"


def apiserver_state(server: str, ctx: ssl.SSLContext) -> str:
    try:
        code, body = get(server, ctx, "/healthz")
    except (OSError, ssl.SSLError, http.client.HTTPException) as e:
        return _why(e)
    return "ok" if code == 200 and body.strip() == b"ok" else f"HTTP {code}"


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
        self._creds: Credentials | None = None
        self._ctx: ssl.SSLContext | None = None
        self._problem = ""

    def _load(self) -> None:
        try:
            st = os.stat(self.host.paths.at(self.kubeconfig))
        except OSError:
            self._creds, self._ctx, self._stamp = None, None, None
            self._problem = f"no {self.kubeconfig}"
            return
        stamp = (st.st_mtime, st.st_size)
        if stamp == self._stamp:
            return
        self._stamp = stamp
        self._creds = parse_kubeconfig(self.host.read_text(self.kubeconfig) or "")
        self._ctx = None
        if self._creds is None:
            self._problem = f"{self.kubeconfig}: no server in it"
            return
        try:
            self._ctx = ssl_context(self.host, self._creds)
        except (OSError, ssl.SSLError, ValueError) as e:
            # The kubelet rotates its client certificate; try again next round.
            self._problem = f"{self.kubeconfig}: credentials: {_why(e)}"
            self._stamp = None

    def check(self) -> Health:
        kubelet = kubelet_state(self.host)
        self._load()
        if self._creds is None or self._ctx is None:
            node = f"unknown ({self._problem})"
            api = None if self.role != "control-plane" else f"unknown ({self._problem})"
            return Health(kubelet, node, api)
        node = node_state(self._creds.server, self._ctx, self.node_name)
        if node.startswith("unknown"):
            self._stamp = None  # reload next round: the kubelet may have rotated its certificate
        api = None
        if self.role == "control-plane":
            api = apiserver_state(self.local_apiserver or self._creds.server, self._ctx)
        return Health(kubelet, node, api)
