"""A kubeconfig's credentials, and HTTPS to one API server through kbootd.transport.

The kubeconfig is read by kbootd.kubeconfigfile (the one parser); file references (CA,
client certificate and key, tokenFile) are read through ctx.host, so `--root` applies.
Key material stays in memory: the transport hands it to OpenSSL through a sealed memfd.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from kbootd import kubeconfigfile, redact, transport
from kbootd.api.errors import APIUnavailable
from kbootd.errors import KbootdError, SecurityError, TransientError, ValidationError
from kbootd.version import __version__

USER_AGENT = "kbootd"
REQUEST_TIMEOUT = 10.0


@dataclass(frozen=True)
class KubeConfig:
    """What a client needs of a kubeconfig's current context, file references resolved."""

    path: str
    server: str
    cluster: dict[str, Any]  # the raw cluster entry, CA inlined (cluster-info copies it)
    ca_pem: bytes | None = field(default=None, repr=False)
    cert_pem: bytes | None = field(default=None, repr=False)
    key_pem: bytes | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    insecure: bool = False
    tls_server_name: str | None = None

    @property
    def endpoint(self) -> str:
        """host:port of the server, as the join command takes it."""
        return self.server.split("://", 1)[-1].split("/", 1)[0]

    def tls(self) -> transport.TLS:
        return transport.TLS(ca_pem=self.ca_pem, system_ca=self.ca_pem is None, cert_pem=self.cert_pem,
                             key_pem=self.key_pem, verify=not self.insecure, server_name=self.tls_server_name)


def load_kubeconfig(ctx: Any, path: str) -> KubeConfig:
    """Parse a kubeconfig file read through ctx.host; file references are read the same way."""
    text = ctx.host.read_bytes(path)
    if text is None:
        raise KbootdError(f"{path}: no such kubeconfig file",
                          hint="run the kubeconfig phase first, or pass --kubeconfig")
    kc = kubeconfigfile.parse(text, path)

    def data(embedded: bytes | None, ref: str | None, what: str) -> bytes | None:
        if embedded is not None or not ref:
            return embedded
        ref = kubeconfigfile.resolve_ref(ref, path)
        content = ctx.host.read_bytes(ref)
        if content is None:
            raise KbootdError(f"{path}: {what} file {ref} does not exist")
        return content

    ca = data(kc.ca_pem, kc.ca_file, "certificate-authority")
    cluster = dict(kc.cluster)
    if ca is not None:
        cluster.pop("certificate-authority", None)
        cluster["certificate-authority-data"] = base64.b64encode(ca).decode()
    cert = data(kc.client_cert_pem, kc.client_cert_file, "client-certificate")
    key = data(kc.client_key_pem, kc.client_key_file, "client-key")
    if (cert is None) != (key is None):
        raise ValidationError(f"{path}: user {kc.user_name!r} has a client certificate without its key, "
                              "or a key without its certificate")
    token = kc.token
    if not token and kc.token_file:
        token = (ctx.host.read_text(kubeconfigfile.resolve_ref(kc.token_file, path)) or "").strip() or None
        redact.register(token)
    return KubeConfig(path=path, server=kc.server, cluster=cluster, ca_pem=ca, cert_pem=cert, key_pem=key,
                      token=token, insecure=kc.insecure, tls_server_name=kc.tls_server_name)


def _version() -> str:
    return __version__


class APITransport:
    """HTTPS to one API server: kbootd.transport's deadline, size cap, no redirects, TLS from memory."""

    def __init__(self, kc: KubeConfig, *, server: str | None = None,
                 request_timeout: float = REQUEST_TIMEOUT) -> None:
        self.server = (server or kc.server).rstrip("/")
        self.request_timeout = request_timeout
        self._token = kc.token
        self._session = transport.Session(self.server, kc.tls(), timeout=request_timeout,
                                          user_agent=f"{USER_AGENT}/{_version()}")

    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json", *,
                until: float | None = None) -> tuple[int, bytes]:
        """(status, body) of one request; APIUnavailable when the server cannot be reached."""
        headers = {"Accept": "application/json"}
        data: bytes | None = None
        if body is not None:
            data = body if isinstance(body, bytes) else \
                body.encode() if isinstance(body, str) else json.dumps(body).encode()
            headers["Content-Type"] = content_type
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        try:
            r = self._session.request(method, path, data, headers, until=until)
        except SecurityError:
            raise
        except TransientError as e:
            err = APIUnavailable(str(e), hint=e.hint)
            err.deadline_reached = getattr(e, "deadline_reached", False)  # type: ignore[attr-defined]
            raise err from None
        return r.status, r.body

    def close(self) -> None:
        self._session.close()


KubernetesTransport = APITransport  # its name before kbootd had its own transport
