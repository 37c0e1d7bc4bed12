"""The first, not-yet-trusted fetch of kube-public/cluster-info: anonymous HTTPS, server unverified.

Nothing about the server can be verified yet: its CA is what this fetch is for. What makes
the answer trustworthy is checked afterwards (the token's JWS over the kubeconfig, the CA
pin, then a second fetch over TLS verified against that CA). This is the only request
kbootd sends without verifying TLS, so it lives here, apart (through kbootd.transport
with TLS(verify=False)): no credentials are ever sent on it (cluster-info is readable by system:anonymous only;
a bootstrap token would even get 403, fixture 27).

Every failure here is transient: the API server may not listen yet, may not have
cluster-info yet (anonymous gets 403 until init's RBAC exists, fixture 06), or may be
restarting.
"""

from __future__ import annotations

import json
from typing import Any

from kbootd import transport
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


def _status_cause(status: int, body: bytes) -> str:
    try:
        message = str(json.loads(body).get("message") or "")[:200]
    except (ValueError, AttributeError, RecursionError):
        message = ""
    why = {
        401: "anonymous requests are refused (the API server may run with --anonymous-auth=false)",
        403: "cluster-info is not readable yet (init has not created it and its RBAC, "
             "or anonymous access to it was turned off)",
        404: "cluster-info does not exist yet",
    }.get(status, "the API server is not ready" if status >= 500 or status == 429 else "unexpected answer")
    return f"{why} (HTTP {status}{': ' + message if message else ''})"


def fetch_unverified(endpoint: str, *, timeout: float = DEFAULT_TIMEOUT, connect_timeout: float = CONNECT_TIMEOUT,
                     user_agent: str = "kbootd", until: float | None = None) -> dict[str, Any]:
    """The `data` of cluster-info as served by `endpoint` (host:port). Raises TransientError.

    The whole request (connect, handshake, headers, body) ends by min(now + timeout, until).
    """
    host, port = split_endpoint(endpoint)
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        with transport.Session(f"https://{netloc}", transport.TLS(verify=False), timeout=timeout,
                               max_body=MAX_BODY, user_agent=user_agent) as session:
            r = session.request("GET", PATH, until=until, connect_timeout=connect_timeout)
    except transport.ResponseTooLarge:
        raise TransientError(f"cluster-info answer larger than {MAX_BODY} bytes") from None
    except TransientError as e:
        raise type(e)(str(e).split(": ", 1)[-1]) from None  # the caller names the endpoint
    except transport.RedirectRefused as e:
        raise TransientError(f"the API server answered with a redirect ({e.message.split(': ', 1)[-1]})") from None
    if r.status != 200:
        raise TransientError(_status_cause(r.status, r.body))
    try:
        obj = json.loads(r.body)
    except (ValueError, RecursionError):
        raise TransientError("cluster-info answer is not JSON") from None
    data = obj.get("data") if isinstance(obj, dict) and obj.get("kind", "ConfigMap") == "ConfigMap" else None
    if not isinstance(data, dict):
        raise TransientError("the answer is not a ConfigMap with data")
    return {str(k): v for k, v in data.items() if isinstance(v, str)}
