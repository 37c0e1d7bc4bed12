"""The one module that talks to a Kubernetes API server.

Objects are plain JSON-ready dicts. Traffic goes through the official `kubernetes`
client's REST layer (imported lazily: light commands must not pay for it), using only
what exists from Debian 12's 22.6 to today's releases: `Configuration`,
`rest.RESTClientObject.request` and `rest.ApiException`. The generated typed APIs are
avoided on purpose: their signatures and models changed across those releases.

Helpers mirror kubeadm's util/apiclient: create-or-update (so a re-run converges),
create-or-keep, create-or-mutate, node patching with retries, and a dry-run client that
prints every action as kubeadm's does and changes nothing.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from kbootd import redact
from kbootd.errors import KbootdError, SecurityError, TransientError, ValidationError, WaitTimeout

Obj = dict[str, Any]

DEFAULT_TIMEOUT = 60.0  # kubeadm's timeouts.kubernetesAPICall
RETRY_INTERVAL = 0.5  # kubeadm's APICallRetryInterval
USER_AGENT = "kbootd"


# --- resources -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Resource:
    kind: str
    group: str
    version: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_label(self) -> str:
        """As kubeadm's dry-run names it: "core/v1", "rbac.authorization.k8s.io/v1"."""
        return f"{self.group or 'core'}/{self.version}"

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced:
            if not namespace:
                raise KbootdError(f"{self.kind} {name or '(list)'}: a namespace is required")
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        return base + (f"/{quote(name, safe='')}" if name else "")


_RBAC = "rbac.authorization.k8s.io"
RESOURCES: dict[str, Resource] = {r.kind: r for r in (
    Resource("ConfigMap", "", "v1", "configmaps", True),
    Resource("Secret", "", "v1", "secrets", True),
    Resource("ServiceAccount", "", "v1", "serviceaccounts", True),
    Resource("Service", "", "v1", "services", True),
    Resource("Node", "", "v1", "nodes", False),
    Resource("Namespace", "", "v1", "namespaces", False),
    Resource("Role", _RBAC, "v1", "roles", True),
    Resource("RoleBinding", _RBAC, "v1", "rolebindings", True),
    Resource("ClusterRole", _RBAC, "v1", "clusterroles", False),
    Resource("ClusterRoleBinding", _RBAC, "v1", "clusterrolebindings", False),
    Resource("Deployment", "apps", "v1", "deployments", True),
    Resource("DaemonSet", "apps", "v1", "daemonsets", True),
    Resource("CertificateSigningRequest", "certificates.k8s.io", "v1", "certificatesigningrequests", False),
)}


_BY_PLURAL = {r.plural: r for r in RESOURCES.values()}


def resource(kind: str) -> Resource:
    """By kind ("ConfigMap") or by plural resource name ("configmaps")."""
    r = RESOURCES.get(kind) or _BY_PLURAL.get(kind)
    if r is None:
        raise KbootdError(f"kbootd does not know the API resource for kind {kind!r}")
    return r


def describe(kind: str, name: str, namespace: str | None = None) -> str:
    return f'{kind} "{namespace}/{name}"' if namespace else f'{kind} "{name}"'


def _meta(obj: Obj) -> tuple[str, str, str | None]:
    md = obj.get("metadata") or {}
    if not obj.get("kind") or not md.get("name"):
        raise KbootdError("an API object needs kind and metadata.name")
    return obj["kind"], md["name"], md.get("namespace")


# --- errors ----------------------------------------------------------------------------------

class APIError(KbootdError):
    """The API server answered with an error Status."""

    def __init__(self, status: int, reason: str, message: str, *, action: str,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{action}: {message} (HTTP {status}{', ' + reason if reason else ''})")
        self.status = status
        self.reason = reason
        self.details = details or {}

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def already_exists(self) -> bool:
        return self.status == 409 and self.reason == "AlreadyExists"

    @property
    def conflict(self) -> bool:
        return self.status == 409 and self.reason != "AlreadyExists"

    @property
    def forbidden(self) -> bool:
        return self.status == 403


class APIUnavailable(TransientError):
    """The API server could not be reached, or is not ready yet."""


_TRANSIENT_STATUS = {429, 500, 502, 503, 504}


def is_transient(err: BaseException) -> bool:
    if isinstance(err, TransientError):
        return True
    if isinstance(err, APIError):
        if err.status in _TRANSIENT_STATUS or err.conflict:
            return True
        # A namespaced create before the API server's start-up hook made the namespace.
        return err.not_found and err.details.get("kind") == "namespaces"
    return False


def with_retries(fn: Callable[[], Any], *, what: str, timeout: float, interval: float = RETRY_INTERVAL,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 on_retry: Callable[[int, str, float], None] | None = None) -> Any:
    """Call fn until it succeeds, retrying transient errors until the deadline."""
    deadline = clock() + timeout
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except KbootdError as e:
            if not is_transient(e):
                raise
            if clock() + interval > deadline:
                raise WaitTimeout(f"{what}: still failing after {timeout:g}s: {e}") from e
            if on_retry:
                on_retry(attempt, str(e), interval)
            sleep(interval)


# --- kubeconfig ------------------------------------------------------------------------------

@dataclass(frozen=True)
class KubeConfig:
    """The parts of a kubeconfig's current context that a client needs."""

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
        u = urlsplit(self.server)
        return u.netloc or self.server


def _b64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=False)
    except (ValueError, TypeError) as e:
        raise ValidationError(f"{what}: not valid base64") from e


def load_kubeconfig(ctx: Any, path: str) -> KubeConfig:
    """Parse a kubeconfig file read through ctx.host; file references are read the same way."""
    import yaml

    text = ctx.host.read_text(path)
    if text is None:
        raise KbootdError(f"{path}: no such kubeconfig file",
                          hint="run the kubeconfig phase first, or pass --kubeconfig")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValidationError(f"{path}: not a kubeconfig (invalid YAML: {e})") from None
    if not isinstance(doc, dict):
        raise ValidationError(f"{path}: not a kubeconfig (expected a mapping)")

    def named(section: str, name: str, key: str) -> dict[str, Any]:
        for item in doc.get(section) or []:
            if isinstance(item, dict) and item.get("name") == name:
                return item.get(key) or {}
        raise ValidationError(f"{path}: {section} has no entry named {name!r}")

    current = doc.get("current-context") or ""
    contexts = doc.get("contexts") or []
    if current:
        context = named("contexts", current, "context")
    elif len(contexts) == 1 and isinstance(contexts[0], dict):
        context = contexts[0].get("context") or {}
    else:
        raise ValidationError(f"{path}: no current-context")
    cluster = dict(named("clusters", context.get("cluster", ""), "cluster"))
    user = named("users", context["user"], "user") if context.get("user") else {}
    server = cluster.get("server")
    if not server or not str(server).startswith("https://"):
        raise ValidationError(f"{path}: cluster {context.get('cluster')!r} needs an https:// server URL, got {server!r}")
    base = path.rsplit("/", 1)[0] or "/"

    def data(entry: dict[str, Any], key: str, what: str) -> bytes | None:
        if entry.get(f"{key}-data"):
            return _b64(entry[f"{key}-data"], f"{path}: {what}")
        ref = entry.get(key)
        if not ref:
            return None
        ref = ref if ref.startswith("/") else f"{base}/{ref}"
        content = ctx.host.read_bytes(ref)
        if content is None:
            raise KbootdError(f"{path}: {what} file {ref} does not exist")
        return content

    ca = data(cluster, "certificate-authority", "certificate-authority")
    if ca is not None:
        cluster.pop("certificate-authority", None)
        cluster["certificate-authority-data"] = base64.b64encode(ca).decode()
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = (ctx.host.read_text(user["tokenFile"]) or "").strip() or None
    redact.register(token)
    return KubeConfig(
        path=path, server=str(server).rstrip("/"), cluster=cluster, ca_pem=ca,
        cert_pem=data(user, "client-certificate", "client-certificate"),
        key_pem=data(user, "client-key", "client-key"), token=token,
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        tls_server_name=cluster.get("tls-server-name"))


# --- transport -------------------------------------------------------------------------------

class MemFile:
    """Key material handed to OpenSSL by path without touching a disk: a sealed memfd.

    The kubernetes client (and urllib3) take only file paths for the CA, client
    certificate and key, and re-read them for every new connection. kubeadm never puts
    admin credentials in /tmp; neither do we: /proc/self/fd/N of an anonymous memory file
    lives exactly as long as the client.
    """

    def __init__(self, name: str, data: bytes) -> None:
        self.fd = os.memfd_create(f"kbootd-{name}", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]
        import fcntl

        fcntl.fcntl(self.fd, fcntl.F_ADD_SEALS,
                    fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE)
        self.path = f"/proc/self/fd/{self.fd}"

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class KubernetesTransport:
    """HTTPS to one API server through the kubernetes client's REST layer."""

    def __init__(self, kc: KubeConfig, *, server: str | None = None, request_timeout: float = 10.0) -> None:
        from kubernetes.client import Configuration, rest

        self.server = (server or kc.server).rstrip("/")
        self.request_timeout = request_timeout
        self._token = kc.token
        self._files: list[MemFile] = []
        conf = Configuration()
        conf.host = self.server
        conf.verify_ssl = not kc.insecure
        if kc.ca_pem:
            conf.ssl_ca_cert = self._file("ca", kc.ca_pem)
        if kc.cert_pem and kc.key_pem:
            conf.cert_file = self._file("cert", kc.cert_pem)
            conf.key_file = self._file("key", kc.key_pem)
        if kc.tls_server_name:
            if hasattr(conf, "tls_server_name"):
                conf.tls_server_name = kc.tls_server_name  # SNI and the name the certificate must hold
            else:
                # 22.6 has no tls_server_name: without this the name would be silently ignored and the
                # certificate checked against the URL's host. urllib3 checks assert_hostname instead.
                conf.assert_hostname = kc.tls_server_name
        if hasattr(conf, "retries"):
            conf.retries = False  # our own loop retries, with a deadline and progress
        self._rest = rest.RESTClientObject(conf)
        self._api_exception = rest.ApiException

    def _file(self, name: str, data: bytes) -> str:
        f = MemFile(name, data)
        self._files.append(f)
        return f.path

    def request(self, method: str, path: str, body: Any = None,
                content_type: str = "application/json") -> tuple[int, bytes]:
        import urllib3

        headers = {"Accept": "application/json", "Content-Type": content_type,
                   "User-Agent": f"{USER_AGENT}/{_version()}"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        url = self.server + path
        t = float(self.request_timeout)
        try:
            # A (connect, read) tuple: 22.6 ignores a bare float timeout.
            r = self._rest.request(method, url, headers=headers, body=body, _request_timeout=(t, t))
        except self._api_exception as e:  # 22.6 raises for every non-2xx; all versions for TLS errors
            if not e.status:
                _raise_tls(self.server, str(e.reason or e))
            return int(e.status), _bytes(e.body)
        except urllib3.exceptions.HTTPError as e:
            raise APIUnavailable(f"{method} {self.server}{path.split('?')[0]}: {_cause(e)}") from None
        except OSError as e:
            raise APIUnavailable(f"{method} {self.server}{path.split('?')[0]}: {e}") from None
        data = r.data if getattr(r, "data", None) is not None else r.read()
        return int(r.status), _bytes(data)

    def close(self) -> None:
        for f in self._files:
            f.close()
        self._files = []


def _version() -> str:
    from kbootd.version import __version__

    return __version__


def _bytes(data: Any) -> bytes:
    if data is None:
        return b""
    return data.encode() if isinstance(data, str) else bytes(data)


def _cause(e: BaseException) -> str:
    reason = getattr(e, "reason", None)
    return str(reason or e).split(": ", 1)[-1] if reason else str(e)


def _raise_tls(server: str, text: str) -> None:
    low = text.lower()
    if "certificate verify failed" in low or "hostname" in low or "doesn't match" in low:
        raise SecurityError(f"TLS verification of the API server at {server} failed: {text.strip().splitlines()[-1]}",
                            hint="the server's certificate is not signed by the cluster CA in the kubeconfig")
    raise APIUnavailable(f"TLS connection to {server} failed: {text.strip().splitlines()[-1]}")


# --- client ----------------------------------------------------------------------------------

class Client:
    """API verbs on plain-dict objects. `get` returns None for 404; other errors raise APIError."""

    dry_run = False

    def __init__(self, transport: Any, *, timeout: float = DEFAULT_TIMEOUT, interval: float = RETRY_INTERVAL,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
        self.transport = transport
        self.timeout = timeout
        self.interval = interval
        self.sleep = sleep
        self.clock = clock

    # the verbs
    def get(self, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        try:
            return self._call("GET", resource(kind).path(namespace, name), action=f"get {describe(kind, name, namespace)}")
        except APIError as e:
            if e.not_found and e.details.get("kind") != "namespaces":
                return None
            raise

    def create(self, obj: Obj) -> Obj:
        kind, name, ns = _meta(obj)
        return self._call("POST", resource(kind).path(ns), _with_type(obj), action=f"create {describe(kind, name, ns)}")

    def update(self, obj: Obj) -> Obj:
        kind, name, ns = _meta(obj)
        return self._call("PUT", resource(kind).path(ns, name), _with_type(obj), action=f"update {describe(kind, name, ns)}")

    def patch(self, kind: str, name: str, patch: Obj, namespace: str | None = None, *,
              patch_type: str = "strategic") -> Obj:
        ct = {"strategic": "application/strategic-merge-patch+json",
              "merge": "application/merge-patch+json"}[patch_type]
        return self._call("PATCH", resource(kind).path(namespace, name), patch, ct,
                          action=f"patch {describe(kind, name, namespace)}")

    def delete(self, kind: str, name: str, namespace: str | None = None) -> bool:
        try:
            self._call("DELETE", resource(kind).path(namespace, name), action=f"delete {describe(kind, name, namespace)}")
        except APIError as e:
            if e.not_found:
                return False
            raise
        return True

    def list(self, kind: str, namespace: str | None = None, *, field_selector: str | None = None,
             label_selector: str | None = None) -> list[Obj]:
        r = resource(kind)
        path = r.path(namespace) if r.namespaced else r.path()
        query = {k: v for k, v in (("fieldSelector", field_selector), ("labelSelector", label_selector)) if v}
        if query:
            path += "?" + urlencode(query)
        out = self._call("GET", path, action=f"list {r.plural}" + (f" in {namespace}" if namespace else ""))
        return list(out.get("items") or [])

    def raw_get(self, path: str) -> tuple[int, str]:
        """A non-resource GET (/healthz, /livez): status and body text."""
        status, data = self.transport.request("GET", path)
        return status, data.decode("utf-8", errors="replace")

    def close(self) -> None:
        close = getattr(self.transport, "close", None)
        if close:
            close()

    # retries with this client's deadline
    def retry(self, fn: Callable[[], Any], what: str, *, timeout: float | None = None,
              on_retry: Callable[[int, str, float], None] | None = None) -> Any:
        return with_retries(fn, what=what, timeout=self.timeout if timeout is None else timeout,
                            interval=self.interval, sleep=self.sleep, clock=self.clock, on_retry=on_retry)

    def _call(self, method: str, path: str, body: Any = None, content_type: str = "application/json", *,
              action: str) -> Obj:
        status, data = self.transport.request(method, path, body, content_type)
        try:
            doc = json.loads(data) if data.strip() else {}
        except ValueError:
            doc = {"message": data.decode("utf-8", errors="replace").strip()[:300]}
        if 200 <= status < 300:
            return doc if isinstance(doc, dict) else {}
        if not isinstance(doc, dict):
            doc = {}
        raise APIError(status, str(doc.get("reason") or ""), redact.redact(str(doc.get("message") or "")),
                       action=action, details=doc.get("details") if isinstance(doc.get("details"), dict) else {})


def _with_type(obj: Obj) -> Obj:
    """apiVersion filled from the kind, so builders may leave it out."""
    if obj.get("apiVersion"):
        return obj
    return {"apiVersion": resource(obj["kind"]).api_version, **obj}


# --- dry-run -----------------------------------------------------------------------------------

# Bootstrap token Secret keys that are not secret: shown in dry-run output, the rest is redacted.
_PUBLIC_SECRET_KEYS = frozenset({"token-id", "expiration", "usage-bootstrap-authentication",
                                 "usage-bootstrap-signing", "auth-extra-groups", "description"})


def printable(obj: Obj) -> Obj:
    """A copy fit for printing: Secret values other than the public bootstrap-token fields redacted."""
    if obj.get("kind") != "Secret":
        return obj
    out = copy.deepcopy(obj)
    for key in ("data", "stringData"):
        for k in list(out.get(key) or {}):
            if k not in _PUBLIC_SECRET_KEYS:
                out[key][k] = redact.REDACTED
    return out


class DryRunClient(Client):
    """Prints what would be done, as kubeadm's dry-run client does, and changes nothing.

    Objects it "created" are remembered so later reads in the same run see them; a Node
    read returns a stand-in (the kubelet would have registered it), as kubeadm's does.
    """

    dry_run = True

    def __init__(self, say: Callable[[str], None], *, node_name: str | None = None) -> None:
        super().__init__(None, timeout=0.0, interval=0.0, sleep=lambda _s: None)
        self.say = say
        self.node_name = node_name
        self.objects: dict[tuple[str, str | None, str], Obj] = {}
        self.actions: list[tuple[str, str, str | None, str]] = []

    def _action(self, verb: str, kind: str, name: str | None, namespace: str | None) -> None:
        r = resource(kind)
        self.actions.append((verb, kind, namespace, name or ""))
        self.say(f'[dryrun] Would perform action {verb} on resource "{r.plural}" in API group "{r.group_label}"')
        if name is not None:
            self.say(f'[dryrun] Resource name "{name}", namespace "{namespace or ""}"')

    def _attach(self, label: str, obj: Obj) -> None:
        from kbootd.cluster import kyaml

        self.say(f"[dryrun] Attached {label}:\n{kyaml.dump(printable(obj)).rstrip()}\n")

    def get(self, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        self._action("GET", kind, name, namespace)
        obj = self.objects.get((kind, namespace, name))
        if obj is None and kind == "Node":
            obj = {"apiVersion": "v1", "kind": "Node",
                   "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}, "spec": {}}
        if obj is None:
            self.say("[dryrun] The object does not exist (nothing was created in this dry run)")
            return None
        return copy.deepcopy(obj)

    def create(self, obj: Obj) -> Obj:
        kind, name, ns = _meta(obj)
        self._action("CREATE", kind, None, ns)
        self._attach("object", _with_type(obj))
        if (kind, ns, name) in self.objects:
            raise APIError(409, "AlreadyExists", f'{resource(kind).plural} "{name}" already exists',
                           action=f"create {describe(kind, name, ns)}")
        self.objects[(kind, ns, name)] = copy.deepcopy(_with_type(obj))
        return copy.deepcopy(obj)

    def update(self, obj: Obj) -> Obj:
        kind, name, ns = _meta(obj)
        self._action("UPDATE", kind, None, ns)
        self._attach("object", _with_type(obj))
        self.objects[(kind, ns, name)] = copy.deepcopy(_with_type(obj))
        return copy.deepcopy(obj)

    def patch(self, kind: str, name: str, patch: Obj, namespace: str | None = None, *,
              patch_type: str = "strategic") -> Obj:
        self._action("PATCH", kind, name, namespace)
        self._attach("patch", patch)
        current = self.objects.get((kind, namespace, name)) or {"kind": kind, "metadata": {"name": name}}
        merged = merge_patch_apply(current, patch)
        self.objects[(kind, namespace, name)] = merged
        return copy.deepcopy(merged)

    def delete(self, kind: str, name: str, namespace: str | None = None) -> bool:
        self._action("DELETE", kind, name, namespace)
        return self.objects.pop((kind, namespace, name), None) is not None

    def list(self, kind: str, namespace: str | None = None, *, field_selector: str | None = None,
             label_selector: str | None = None) -> list[Obj]:
        self._action("LIST", kind, None, namespace)
        return [copy.deepcopy(o) for (k, ns, _), o in self.objects.items()
                if k == kind and (namespace is None or ns == namespace)]

    def raw_get(self, path: str) -> tuple[int, str]:
        self.say(f"[dryrun] Would GET {path}")
        return 200, "ok"


# --- comparing and patching ------------------------------------------------------------------------

def _empty(v: Any) -> bool:
    return v is None or v == {} or v == [] or v == "" or v is False or v == 0


def contains(actual: Any, desired: Any) -> bool:
    """True when every field of desired is in actual with the same value.

    Fields the server adds (defaults, uid, status) do not count, and an empty desired
    value matches an absent one (the server omits empty fields).
    """
    if isinstance(desired, dict):
        if not isinstance(actual, dict):
            return actual is None and all(_empty(v) for v in desired.values())
        return all(contains(actual[k], v) if k in actual else _empty(v) for k, v in desired.items())
    if isinstance(desired, list):
        return (isinstance(actual, list) and len(actual) == len(desired)
                and all(contains(a, d) for a, d in zip(actual, desired, strict=True)))
    if actual is None:
        return _empty(desired)
    return bool(actual == desired)


def merge_patch(old: Any, new: Any) -> Any:
    """The RFC 7386 patch from old to new: changed keys, None for removed ones, lists whole.

    Sent as a strategic-merge patch this is what kubeadm's CreateTwoWayMergePatch gives
    for the fields it touches: labels and annotations merge, and taints (an atomic list)
    travel whole.
    """
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return new
    out: dict[str, Any] = {}
    for k, v in new.items():
        if k not in old:
            out[k] = v
        elif old[k] != v:
            sub = merge_patch(old[k], v)
            if sub != {} or not isinstance(v, dict):
                out[k] = sub
    for k in old:
        if k not in new:
            out[k] = None
    return out


def merge_patch_apply(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch_apply(out.get(k), v)
    return out


# --- idempotent writes (kubeadm's util/apiclient/idempotency.go) -----------------------------------

def _create_or_current(client: Client, obj: Obj) -> Obj | None:
    """Create obj: None when created, else the live object (kubeadm's AlreadyExists branch)."""
    kind, name, ns = _meta(obj)
    try:
        client.create(obj)
        return None
    except APIError as e:
        if not e.already_exists:
            raise
    current = client.get(kind, name, ns)
    if current is None:
        raise APIUnavailable(f"{describe(kind, name, ns)} vanished while being read")
    return current


def create_or_update(client: Client, obj: Obj) -> str:
    """Create; if it exists, update it unless it already holds everything. Returns what happened."""
    kind, name, ns = _meta(obj)

    def attempt() -> str:
        current = _create_or_current(client, obj)
        if current is None:
            return "created"
        if contains(current, obj):
            return "unchanged"
        new = copy.deepcopy(obj)
        # The read version makes the update conditional: a concurrent writer gives 409, and we retry.
        new.setdefault("metadata", {})["resourceVersion"] = (current.get("metadata") or {}).get("resourceVersion")
        client.update(new)
        return "updated"

    return client.retry(attempt, f"create or update {describe(kind, name, ns)}")


def create_or_keep(client: Client, obj: Obj) -> tuple[str, Obj | None]:
    """Create, or keep what is there. Returns ("created", None) or ("kept", existing)."""
    kind, name, ns = _meta(obj)

    def attempt() -> tuple[str, Obj | None]:
        current = _create_or_current(client, obj)
        return ("created", None) if current is None else ("kept", current)

    return client.retry(attempt, f"create {describe(kind, name, ns)}")


def create_or_mutate(client: Client, obj: Obj, mutate: Callable[[Obj], None]) -> str:
    """Create; if it exists, apply mutate to the live object (keeping what others added) and update."""
    kind, name, ns = _meta(obj)

    def attempt() -> str:
        current = _create_or_current(client, obj)
        if current is None:
            return "created"
        new = copy.deepcopy(current)
        mutate(new)
        if new == current:
            return "unchanged"
        client.update(new)
        return "updated"

    return client.retry(attempt, f"create or update {describe(kind, name, ns)}")


class NodeNotRegistered(TransientError):
    """The kubelet has not registered the Node yet."""


def patch_node(client: Client, name: str, mutate: Callable[[Obj], None], *,
               timeout: float | None = None,
               on_retry: Callable[[int, str, float], None] | None = None) -> bool:
    """Read the Node, apply mutate, send the difference as a strategic-merge patch.

    Retries while the Node does not exist yet and on conflicts. The patch carries the
    read resourceVersion, so a taint another controller added in between is never lost.
    Returns False when there was nothing to change.
    """

    def attempt() -> bool:
        node = client.get("Node", name)
        if node is None:
            raise NodeNotRegistered(f'node "{name}" is not registered yet')
        new = copy.deepcopy(node)
        mutate(new)
        patch = merge_patch(node, new)
        if not patch:
            return False
        rv = (node.get("metadata") or {}).get("resourceVersion")
        if rv:
            patch.setdefault("metadata", {})["resourceVersion"] = rv
        client.patch("Node", name, patch)
        return True

    return client.retry(attempt, f'patch node "{name}"', timeout=timeout, on_retry=on_retry)


# --- building clients ------------------------------------------------------------------------------

def client_for(ctx: Any, kubeconfig: str | None = None, *, server: str | None = None,
               timeout: float | None = None) -> Client:
    """A client from a kubeconfig (admin.conf by default); the dry-run client in dry-run.

    ctx.data.api_client, when set, is used as is (tests, and a client already built),
    except that dry-run only ever uses a DryRunClient.
    """
    given = ctx.data.api_client
    if ctx.dry_run:
        # Never a real client in dry-run, whatever was handed over.
        return given if isinstance(given, DryRunClient) else DryRunClient(ctx.reporter.out)
    if given is not None:
        return given
    if timeout is None:
        timeout = ctx.init.timeouts.kubernetes_api_call if ctx.init is not None else DEFAULT_TIMEOUT
    kc = load_kubeconfig(ctx, kubeconfig or ctx.paths.admin_conf)
    return Client(KubernetesTransport(kc, server=server), timeout=timeout)
