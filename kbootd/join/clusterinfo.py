"""The first, not-yet-trusted fetch of kube-public/cluster-info: anonymous HTTPS, server unverified.

Nothing about the server can be verified yet: its CA is what this fetch is for. What makes
the answer trustworthy is checked afterwards (the token's JWS over the kubeconfig, the CA
pin, then a second fetch over TLS verified against that CA). This is the only request
kbootd sends without verifying TLS, so it lives here, apart, on the standard library:
no credentials are ever sent on it (cluster-info is readable by system:anonymous only;
a bootstrap token would even get 403, fixture 27).

Every failure here is transient: the API server may not listen yet, may not have
cluster-info yet (anonymous gets 403 until init's RBAC exists, fixture 06), or may be
restarting.
"""

from __future__ import annotations

import http.client
import json
import ssl
from typing import Any

from kbootd.errors import TransientError

PATH = "/api/v1/namespaces/kube-public/configmaps/cluster-info"
MAX_BODY = 1 << 20  # cluster-info is a few KiB; a hostile endpoint must not make us read forever
DEFAULT_TIMEOUT = 10.0
# Short: an endpoint that drops SYNs must not hold up the other endpoints of the attempt for long.
CONNECT_TIMEOUT = 5.0


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """("10.0.0.10", 6443) of "10.0.0.10:6443"; IPv6 endpoints are bracketed ("[fd00::1]:6443")."""
    if endpoint.startswith("["):
        host, _, rest = endpoint[1:].partition("]")
        port = rest.lstrip(":")
    else:
        host, _, port = endpoint.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"{endpoint!r} is not host:port")
    return host, int(port)


def _unverified_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # deliberate: the CA is not known yet (see the module docstring)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def _status_cause(status: int, body: bytes) -> str:
    try:
        message = str(json.loads(body).get("message") or "")[:200]
    except (ValueError, AttributeError):
        message = ""
    why = {
        401: "anonymous requests are refused (the API server may run with --anonymous-auth=false)",
        403: "cluster-info is not readable yet (init has not created it and its RBAC, "
             "or anonymous access to it was turned off)",
        404: "cluster-info does not exist yet",
    }.get(status, "the API server is not ready" if status >= 500 or status == 429 else "unexpected answer")
    return f"{why} (HTTP {status}{': ' + message if message else ''})"


def fetch_unverified(endpoint: str, *, timeout: float = DEFAULT_TIMEOUT, connect_timeout: float = CONNECT_TIMEOUT,
                     user_agent: str = "kbootd") -> dict[str, Any]:
    """The `data` of cluster-info as served by `endpoint` (host:port). Raises TransientError."""
    host, port = split_endpoint(endpoint)
    conn = http.client.HTTPSConnection(host, port, timeout=min(connect_timeout, timeout),
                                       context=_unverified_context())
    try:
        conn.connect()  # TCP and TLS handshake under the connect timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        conn.request("GET", PATH, headers={"Accept": "application/json", "User-Agent": user_agent})
        resp = conn.getresponse()
        body = resp.read(MAX_BODY + 1)
    except ConnectionRefusedError:
        raise TransientError("connection refused") from None
    except TimeoutError:
        raise TransientError(f"no answer within {timeout:g} s") from None
    except ssl.SSLError as e:
        raise TransientError(f"TLS handshake failed: {e.reason or e}") from None
    except (http.client.HTTPException, OSError) as e:
        raise TransientError(getattr(e, "strerror", None) or str(e) or type(e).__name__) from None
    finally:
        conn.close()
    if resp.status != 200:
        raise TransientError(_status_cause(resp.status, body))
    if len(body) > MAX_BODY:
        raise TransientError(f"cluster-info answer larger than {MAX_BODY} bytes")
    try:
        obj = json.loads(body)
    except ValueError:
        raise TransientError("cluster-info answer is not JSON") from None
    data = obj.get("data") if isinstance(obj, dict) and obj.get("kind", "ConfigMap") == "ConfigMap" else None
    if not isinstance(data, dict):
        raise TransientError("the answer is not a ConfigMap with data")
    return {str(k): v for k, v in data.items() if isinstance(v, str)}
