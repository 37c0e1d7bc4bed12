"""kubeconfig files: the one reader (shape validated) and writer.

    kc = parse(text, "/etc/kubernetes/admin.conf")   # Kubeconfig of the current context
    text = build(server, ca_pem, "kubernetes", "kubernetes-admin", cert_pem, key_pem)

A file of the wrong shape (`clusters: 5`, `current-context: [x]`, a context naming a user
that is not there, a non-string server) is a ValidationError naming the file and the field
path of what is wrong (`admin.conf: clusters[0].cluster.server: expected a string, got a
list`), never an internal error. Secrets (client keys, tokens) are registered for
redaction the moment they are read and never quoted in errors.

Pure: no I/O (file references are returned for the caller to read through its Host) and
no cryptography. PyYAML is imported when a file is parsed or written, not before.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from kbootd import redact
from kbootd.errors import ValidationError

MAX_SIZE = 1 << 20  # kubeconfigs are a few KiB; anything this big is not one

_CLUSTER_STR = ("server", "certificate-authority", "certificate-authority-data", "tls-server-name",
                "proxy-url")
_CONTEXT_STR = ("cluster", "user", "namespace")
_USER_STR = ("client-certificate", "client-certificate-data", "client-key", "client-key-data", "token",
             "tokenFile", "username", "password")


@dataclass(frozen=True)
class Kubeconfig:
    """The current context of a kubeconfig: its cluster and its user."""

    where: str
    server: str
    cluster_name: str
    cluster: dict[str, Any]  # the raw cluster entry (cluster-info republishes it)
    clusters: int  # how many clusters the file defines (discovery files need exactly one)
    ca_pem: bytes | None = None  # certificate-authority-data, decoded
    ca_file: str | None = None  # certificate-authority (a path, for the caller to read)
    insecure: bool = False
    tls_server_name: str | None = None
    user_name: str = ""
    client_cert_pem: bytes | None = None
    client_cert_file: str | None = None
    client_key_pem: bytes | None = field(default=None, repr=False)
    client_key_file: str | None = None
    token: str | None = field(default=None, repr=False)
    token_file: str | None = None

    @property
    def endpoint(self) -> str:
        """host:port of the server, as the join command takes it."""
        return urlsplit(self.server).netloc or self.server

    @property
    def ca_cert(self) -> Any:
        """certificate-authority-data as an x509.Certificate (None without it); ValidationError if not PEM."""
        if self.ca_pem is None:
            return None
        from kbootd.pki.certs import load_cert_pem

        return load_cert_pem(self.ca_pem, f"{self.where}: certificate-authority-data")


def _kind(v: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "nothing"}.get(type(v), type(v).__name__)


class _Checker:
    """Type checks that name the field path."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, path: str, problem: str) -> ValidationError:
        return ValidationError(f"{self.where}: {path}: {problem}" if path else f"{self.where}: {problem}")

    def expect(self, value: Any, typ: type, path: str, what: str) -> Any:
        if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
            raise self.fail(path, f"expected {what}, got {_kind(value)}")
        return value

    def mapping(self, value: Any, path: str) -> dict[str, Any]:
        return {} if value is None else self.expect(value, dict, path, "a mapping")

    def strings(self, body: dict[str, Any], keys: tuple[str, ...], path: str) -> None:
        for k in keys:
            if body.get(k) is not None:
                self.expect(body[k], str, f"{path}.{k}", "a string")

    def named(self, doc: dict[str, Any], section: str) -> dict[str, tuple[int, dict[str, Any]]]:
        """name -> (index, body) of clusters / contexts / users."""
        items = doc.get(section)
        if items is None:
            return {}
        self.expect(items, list, section, "a list")
        inner = section[:-1]
        out: dict[str, tuple[int, dict[str, Any]]] = {}
        for i, item in enumerate(items):
            at = f"{section}[{i}]"
            self.expect(item, dict, at, "a mapping with name and " + inner)
            name = item.get("name")
            self.expect(name, str, f"{at}.name", "a string")
            out.setdefault(name, (i, self.mapping(item.get(inner), f"{at}.{inner}")))
        return out

    def b64(self, body: dict[str, Any], key: str, path: str) -> bytes | None:
        raw = body.get(key)
        if raw in (None, ""):
            return None
        try:
            return base64.b64decode(str(raw), validate=True)
        except (binascii.Error, ValueError):
            raise self.fail(f"{path}.{key}", "not valid base64") from None


def load_document(text: str | bytes, where: str) -> dict[str, Any]:
    """The YAML mapping of a kubeconfig, or a ValidationError naming where."""
    import yaml

    if len(text) > MAX_SIZE:
        raise ValidationError(f"{where}: larger than {MAX_SIZE} bytes; not a kubeconfig")
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if not text.strip():
        raise ValidationError(f"{where}: the file is empty; expected a kubeconfig")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ValidationError(f"{where}: not valid YAML{at}; expected a kubeconfig") from None
    except (ValueError, RecursionError, TypeError):  # PyYAML's own conversions, deep nesting
        raise ValidationError(f"{where}: not a YAML document kbootd can read; expected a kubeconfig") from None
    if not isinstance(doc, dict):
        raise ValidationError(f"{where}: expected a kubeconfig mapping (kind: Config), got {_kind(doc)}")
    return doc


def parse(text: str | bytes, where: str) -> Kubeconfig:
    """Parse and validate a kubeconfig; errors name `where` and the field, and never quote secrets."""
    return from_document(load_document(text, where), where)


def from_document(doc: dict[str, Any], where: str) -> Kubeconfig:
    ck = _Checker(where)
    kind = doc.get("kind", "Config")
    if kind != "Config":
        raise ck.fail("kind", f"kind is {kind!r}; expected Config" if isinstance(kind, str)
                      else f"expected Config, got {_kind(kind)}")
    clusters = ck.named(doc, "clusters")
    contexts = ck.named(doc, "contexts")
    users = ck.named(doc, "users")
    current = doc.get("current-context")
    current = ck.expect(current, str, "current-context", "a string") if current is not None else ""
    if current:
        if current not in contexts:
            raise ck.fail("current-context", f"{current!r} is not among its contexts")
        ci, context = contexts[current]
        ck.strings(context, _CONTEXT_STR, f"contexts[{ci}].context")
        cluster_name, user_name = context.get("cluster") or "", context.get("user") or ""
        cluster_at = f"contexts[{ci}].context.cluster"
    elif len(contexts) == 1:
        ci, context = next(iter(contexts.values()))
        ck.strings(context, _CONTEXT_STR, f"contexts[{ci}].context")
        cluster_name, user_name = context.get("cluster") or "", context.get("user") or ""
        cluster_at = f"contexts[{ci}].context.cluster"
    elif len(clusters) == 1:
        cluster_name, user_name = next(iter(clusters)), next(iter(users), "")
        cluster_at = "clusters"
    else:
        raise ck.fail("current-context", "no current-context, and not exactly one cluster to fall back on")
    if cluster_name not in clusters:
        raise ck.fail(cluster_at, f"cluster {cluster_name!r} is not defined")
    i, cl = clusters[cluster_name]
    at = f"clusters[{i}].cluster"
    ck.strings(cl, _CLUSTER_STR, at)
    if cl.get("insecure-skip-tls-verify") is not None:
        ck.expect(cl["insecure-skip-tls-verify"], bool, f"{at}.insecure-skip-tls-verify", "true or false")
    server = cl.get("server") or ""
    if not server:
        raise ck.fail(f"{at}.server", f"cluster {cluster_name!r} has no server")
    try:
        u = urlsplit(server)
        ok = u.scheme == "https" and bool(u.hostname) and (u.port or 443) > 0
    except ValueError:
        ok = False
    if not ok:
        raise ck.fail(f"{at}.server", f"{server!r} is not an https:// URL")
    ca_pem = ck.b64(cl, "certificate-authority-data", at)

    user: dict[str, Any] = {}
    if user_name:
        if user_name not in users:
            raise ck.fail("users", f"user {user_name!r} (of the current context) is not defined")
        ui, user = users[user_name]
        uat = f"users[{ui}].user"
        ck.strings(user, _USER_STR, uat)
    else:
        uat = "user"
    key_pem = ck.b64(user, "client-key-data", uat)
    token = user.get("token") or None
    # Registered at once so they vanish from any later output.
    redact.register(user.get("client-key-data") or None)
    redact.register(token)
    redact.register(user.get("password") or None)
    return Kubeconfig(
        where=where, server=server.rstrip("/"), cluster_name=cluster_name, cluster=dict(cl),
        clusters=len(clusters), ca_pem=ca_pem, ca_file=cl.get("certificate-authority") or None,
        insecure=bool(cl.get("insecure-skip-tls-verify")), tls_server_name=cl.get("tls-server-name") or None,
        user_name=user_name, client_cert_pem=ck.b64(user, "client-certificate-data", uat),
        client_cert_file=user.get("client-certificate") or None, client_key_pem=key_pem,
        client_key_file=user.get("client-key") or None, token=token, token_file=user.get("tokenFile") or None)


def resolve_ref(ref: str, where: str) -> str:
    """A file a kubeconfig refers to, as an absolute path: relative ones are relative to the file."""
    if ref.startswith("/"):
        return ref
    base = where.rsplit("/", 1)[0] if "/" in where else ""
    return f"{base}/{ref}"


# --- writing -------------------------------------------------------------------------------------

def _b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def build(server: str, ca_pem: bytes | str, cluster_name: str, user: str,
          client_cert_pem: bytes | str | None = None, client_key_pem: bytes | str | None = None,
          token: str | None = None) -> str:
    """A kubeconfig with embedded CA data and either a client certificate and key or a token,
    laid out like client-go's clientcmd.Write (keys sorted, context "<user>@<cluster>")."""
    import yaml

    if (client_cert_pem is None) != (client_key_pem is None):
        raise ValueError("a client certificate needs its key, and a key its certificate")
    creds: dict[str, str] = {}
    if client_cert_pem is not None and client_key_pem is not None:
        creds = {"client-certificate-data": _b64(client_cert_pem), "client-key-data": _b64(client_key_pem)}
    if token is not None:
        creds["token"] = token
    context = f"{user}@{cluster_name}"
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name,
                      "cluster": {"certificate-authority-data": _b64(ca_pem), "server": server}}],
        "contexts": [{"name": context, "context": {"cluster": cluster_name, "user": user}}],
        "current-context": context,
        "preferences": {},
        "users": [{"name": user, "user": creds}],
    }
    return yaml.safe_dump(doc, sort_keys=True, default_flow_style=False)


def replace_client_certificate(text: str | bytes, where: str, cert_pem: bytes) -> str:
    """The same kubeconfig with the current context's user holding a new client certificate
    (certificate renewal: everything else, the key included, stays as it was)."""
    import yaml

    doc = load_document(text, where)
    kc = from_document(doc, where)
    for item in doc.get("users") or []:
        if item.get("name") == kc.user_name:
            user = item.setdefault("user", {})
            if user.get("client-certificate-data") is None:
                raise ValidationError(f"{where}: user {kc.user_name!r} has no embedded client certificate to renew")
            user["client-certificate-data"] = _b64(cert_pem)
            return yaml.safe_dump(doc, sort_keys=True, default_flow_style=False)
    raise ValidationError(f"{where}: the current context has no user with a client certificate")
