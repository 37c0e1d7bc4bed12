"""`kbootd init` phase "kubeconfig", plus the kubeconfig builder and parser join uses.

Files and identities are kubeadm v1.32's (phases/kubeconfig getKubeConfigSpecsBase):
admin, super-admin and kubelet talk to the control-plane endpoint; controller-manager and
scheduler talk to this node's own API server (the local advertise address and bind port).
An existing file is reused when it has the same CA and server and its client credentials
are valid; otherwise it is an error naming the file and what differs. In External CA
mode (ca.crt without ca.key) every file must already be there and valid.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import yaml
from cryptography import x509

from kbootd import node, redact
from kbootd.context import Context
from kbootd.errors import KbootdError, ValidationError
from kbootd.pin import pin_of
from kbootd.pki import certlist, keys
from kbootd.pki import certs as c
from kbootd.pki import phase as pki

PHASE = "kubeconfig"
FILE_MODE = 0o600
DIR_MODE = 0o755  # /etc/kubernetes itself holds no keys; kubeadm creates it 0755
NODES_GROUP = "system:nodes"
SYSTEM_MASTERS = "system:masters"


@dataclass(frozen=True)
class KubeconfigSpec:
    name: str  # phase name
    file: str  # file name in the kubeconfig folder
    user: str  # client certificate CN; "{node}" is the node name
    orgs: tuple[str, ...]
    local: bool  # True: this node's API server; False: the control-plane endpoint
    summary: str

    def user_name(self, ctx: Context) -> str:
        return self.user.format(node=node.node_name(ctx))


KUBECONFIGS: tuple[KubeconfigSpec, ...] = (
    KubeconfigSpec("admin", "admin.conf", "kubernetes-admin", (certlist.CLUSTER_ADMINS,), False,
                   "Generate a kubeconfig file for the admin to use and for kbootd itself"),
    KubeconfigSpec("super-admin", "super-admin.conf", "kubernetes-super-admin", (SYSTEM_MASTERS,), False,
                   "Generate a kubeconfig file for the super-admin"),
    KubeconfigSpec("kubelet", "kubelet.conf", "system:node:{node}", (NODES_GROUP,), False,
                   "Generate a kubeconfig file for the kubelet to use *only* for cluster bootstrapping purposes"),
    KubeconfigSpec("controller-manager", "controller-manager.conf", "system:kube-controller-manager", (), True,
                   "Generate a kubeconfig file for the controller manager to use"),
    KubeconfigSpec("scheduler", "scheduler.conf", "system:kube-scheduler", (), True,
                   "Generate a kubeconfig file for the scheduler to use"),
)
BY_NAME = {k.name: k for k in KUBECONFIGS}


# --- building and parsing -----------------------------------------------------------------

def _b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def build_kubeconfig(server: str, ca_pem: bytes | str, cluster_name: str, user: str,
                     client_cert_pem: bytes | str | None = None, client_key_pem: bytes | str | None = None,
                     token: str | None = None) -> str:
    """A kubeconfig with embedded CA data and either a client certificate and key or a token,
    laid out like client-go's clientcmd.Write (keys sorted, context "<user>@<cluster>")."""
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


@dataclass(frozen=True)
class Kubeconfig:
    """The parts of a kubeconfig kbootd uses: the current context's cluster and user."""

    server: str
    cluster_name: str
    ca_cert: x509.Certificate | None = None  # from certificate-authority-data
    ca_pem: bytes | None = None
    ca_file: str | None = None  # certificate-authority (a path) when no data is embedded
    insecure: bool = False
    user_name: str = ""
    client_cert_pem: bytes | None = None
    client_cert_file: str | None = None
    client_key_pem: bytes | None = field(default=None, repr=False)
    client_key_file: str | None = None
    token: str | None = field(default=None, repr=False)


def _named(items: Any, kind: str, where: str) -> dict[str, dict[str, Any]]:
    if items is None:
        return {}
    if not isinstance(items, list):
        raise ValidationError(f"{where}: {kind} must be a list")
    out: dict[str, dict[str, Any]] = {}
    inner = kind[:-1]  # clusters -> cluster
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ValidationError(f"{where}: {kind}[{i}] needs a name")
        body = item.get(inner) or {}
        if not isinstance(body, dict):
            raise ValidationError(f"{where}: {kind}[{i}].{inner} must be a mapping")
        out[item["name"]] = body
    return out


def _data(body: dict[str, Any], key: str, where: str) -> bytes | None:
    raw = body.get(key)
    if raw in (None, ""):
        return None
    try:
        return base64.b64decode(str(raw), validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError(f"{where}: {key} is not valid base64") from None


def parse_kubeconfig(text: str | bytes, where: str) -> Kubeconfig:
    """Parse a kubeconfig (or a join discovery file); errors name `where` and never quote secrets."""
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
    if not isinstance(doc, dict):
        raise ValidationError(f"{where}: expected a kubeconfig mapping (kind: Config)")
    if doc.get("kind", "Config") != "Config":
        raise ValidationError(f"{where}: kind is {doc.get('kind')!r}; expected Config")
    clusters = _named(doc.get("clusters"), "clusters", where)
    contexts = _named(doc.get("contexts"), "contexts", where)
    users = _named(doc.get("users"), "users", where)
    current = doc.get("current-context") or ""
    if current:
        if current not in contexts:
            raise ValidationError(f"{where}: current-context {current!r} is not among its contexts")
        cluster_name, user_name = contexts[current].get("cluster", ""), contexts[current].get("user", "")
    elif len(clusters) == 1:
        cluster_name, user_name = next(iter(clusters)), next(iter(users), "")
    else:
        raise ValidationError(f"{where}: no current-context, and not exactly one cluster to fall back on")
    if cluster_name not in clusters:
        raise ValidationError(f"{where}: cluster {cluster_name!r} (of the current context) is not defined")
    cl = clusters[cluster_name]
    server = str(cl.get("server") or "")
    if not server:
        raise ValidationError(f"{where}: cluster {cluster_name!r} has no server")
    if not server.startswith("https://"):
        raise ValidationError(f"{where}: server {server!r} is not an https:// URL")
    ca_pem = _data(cl, "certificate-authority-data", where)
    ca_cert = c.load_cert_pem(ca_pem, f"{where}: certificate-authority-data") if ca_pem else None
    u = users.get(user_name, {}) if user_name else {}
    if user_name and user_name not in users:
        raise ValidationError(f"{where}: user {user_name!r} (of the current context) is not defined")
    key_pem = _data(u, "client-key-data", where)
    token = u.get("token")
    # Registered at once so they vanish from any later output.
    redact.register(str(u.get("client-key-data") or ""))
    redact.register(str(token) if token else None)
    return Kubeconfig(
        server=server, cluster_name=cluster_name, ca_cert=ca_cert, ca_pem=ca_pem,
        ca_file=cl.get("certificate-authority") or None, insecure=bool(cl.get("insecure-skip-tls-verify")),
        user_name=user_name, client_cert_pem=_data(u, "client-certificate-data", where),
        client_cert_file=u.get("client-certificate") or None, client_key_pem=key_pem,
        client_key_file=u.get("client-key") or None, token=str(token) if token else None)


# --- the init phase -----------------------------------------------------------------------

def local_api_url(ctx: Context) -> str:
    addr = node.advertise_address(ctx)
    host = f"[{addr}]" if ":" in addr else addr
    return f"https://{host}:{ctx.cfg.bind_port}"


def server_for(ctx: Context, spec: KubeconfigSpec) -> str:
    return local_api_url(ctx) if spec.local else node.control_plane_url(ctx)


def path_of(ctx: Context, spec: KubeconfigSpec) -> str:
    return ctx.paths.kubeconfig(spec.file)


def _read_ref(ctx: Context, path: str | None, where: str) -> bytes | None:
    """A file a kubeconfig points to (kubelet.conf does after certificate rotation)."""
    if not path:
        return None
    if not path.startswith("/"):
        raise ValidationError(f"{where}: refers to {path!r}; kbootd needs an absolute path there")
    data = ctx.host.read_bytes(path)
    if data is None:
        raise ValidationError(f"{where}: refers to {path}, which does not exist")
    return data


def _problems(ctx: Context, spec: KubeconfigSpec, kc: Kubeconfig, ca_cert: x509.Certificate, path: str) -> list[str]:
    problems = []
    ca_pem = kc.ca_pem or _read_ref(ctx, kc.ca_file, path)
    if ca_pem is None:
        problems.append("it has no certificate-authority-data")
    else:
        theirs = c.load_cert_pem(ca_pem, f"{path}: certificate authority")
        # Compared by public key (the pin), not bytes: a CA certificate re-issued for the same
        # key after a crash (pki.phase.ensure_ca) is the same CA to every client.
        if not keys.same_public_key(theirs.public_key(), ca_cert.public_key()):
            problems.append(f"its CA ({c.common_name(theirs)!r}, {pin_of(theirs)}) is not "
                            f"{pki.crt_path(ctx, certlist.CA.base)} ({pin_of(ca_cert)})")
    want = server_for(ctx, spec)
    if kc.server != want:
        problems.append(f"its server is {kc.server}, expected {want}")
    cert_pem = kc.client_cert_pem or _read_ref(ctx, kc.client_cert_file, path)
    key_pem = kc.client_key_pem or _read_ref(ctx, kc.client_key_file, path)
    if cert_pem is None:
        if not kc.token:
            problems.append(f"user {kc.user_name!r} has no client certificate or token")
        return problems
    chain = c.load_cert_chain_pem(cert_pem, f"{path}: client certificate")
    if bad := c.chain_problem(chain[0], chain[1:], ca_cert):
        problems.append(f"its client certificate: {bad}")
    if expired := c.expiry_problem(chain[0]):
        problems.append(f"its client certificate: {expired}")
    if key_pem is None:
        problems.append("its client certificate has no key")
    elif not c.key_matches(chain[0], keys.load_private_key_pem(key_pem, f"{path}: client key")):
        problems.append("its client key does not belong to its client certificate")
    if c.common_name(chain[0]) != spec.user_name(ctx):
        ctx.reporter.warn(PHASE, f"{path}: the client certificate is for {c.common_name(chain[0])!r}, "
                                 f"kbootd would use {spec.user_name(ctx)!r}")
    return problems


def validate_existing(ctx: Context, spec: KubeconfigSpec, ca_cert: x509.Certificate) -> bool:
    """False if the file is absent; True if present and valid; a ValidationError otherwise."""
    path = path_of(ctx, spec)
    data = ctx.host.read_bytes(path)
    if data is None:
        return False
    kc = parse_kubeconfig(data, path)
    problems = _problems(ctx, spec, kc, ca_cert, path)
    if problems:
        raise ValidationError(
            f"{path}: a kubeconfig file exists but does not fit this cluster: {'; '.join(problems)}. "
            "Fix it, or remove it to have it generated")
    return True


def check_provided(ctx: Context) -> None:
    """External CA mode: every kubeconfig must be present and valid, since nothing can sign new ones."""
    ca_cert, _ = pki.load_ca(ctx, certlist.CA, need_key=False)
    for spec in KUBECONFIGS:
        if not validate_existing(ctx, spec, ca_cert):
            raise ValidationError(
                f"{path_of(ctx, spec)}: missing; with {pki.crt_path(ctx, certlist.CA.base)} but no "
                f"{pki.key_path(ctx, certlist.CA.base)} (External CA mode) every kubeconfig file must be provided")


def ensure(ctx: Context, spec: KubeconfigSpec) -> None:
    path = path_of(ctx, spec)
    if pki.external_ca(ctx):
        ca_cert, _ = pki.load_ca(ctx, certlist.CA, need_key=False)
        if not validate_existing(ctx, spec, ca_cert):
            raise ValidationError(f"{path}: missing; in External CA mode (no {pki.key_path(ctx, certlist.CA.base)}) "
                                  "it must be provided")
        ctx.reporter.info(PHASE, f"External CA mode: Using user provided {spec.file}")
        return
    if not ctx.host.exists(pki.crt_path(ctx, certlist.CA.base)):
        raise KbootdError(f"{pki.crt_path(ctx, certlist.CA.base)}: the CA files do not exist; "
                          "run `kbootd phase init certs/ca` first")
    ca_cert, ca_key = pki.load_ca(ctx, certlist.CA, need_key=True)
    assert ca_key is not None
    if validate_existing(ctx, spec, ca_cert):
        ctx.reporter.info(PHASE, f'Using existing kubeconfig file: "{path}"')
        return
    key = keys.new_private_key(keys.algorithm_for(ctx.cfg.cluster))
    user = spec.user_name(ctx)
    cert = c.sign_certificate(key.public_key(), ca_cert, ca_key, common_name=user, organizations=spec.orgs,
                              usages=(c.CLIENT_AUTH,),
                              validity=timedelta(seconds=ctx.cfg.cluster.cert_validity))
    text = build_kubeconfig(server_for(ctx, spec), c.encode_cert_pem(ca_cert), ctx.cfg.cluster.cluster_name,
                            user, c.encode_cert_pem(cert), keys.encode_private_key_pem(key))
    ctx.reporter.info(PHASE, f'Writing "{spec.file}" kubeconfig file')
    ctx.host.ensure_dir(ctx.paths.kubernetes_dir, DIR_MODE)
    ctx.host.write_file(path, text, FILE_MODE, sensitive=True)


# --- phase entry points -------------------------------------------------------------------

def kubeconfig(ctx: Context) -> None:
    ctx.reporter.info(PHASE, f'Using kubeconfig folder "{ctx.paths.kubernetes_dir}"')


def admin(ctx: Context) -> None:
    ensure(ctx, BY_NAME["admin"])


def super_admin(ctx: Context) -> None:
    ensure(ctx, BY_NAME["super-admin"])


def kubelet(ctx: Context) -> None:
    ensure(ctx, BY_NAME["kubelet"])


def controller_manager(ctx: Context) -> None:
    ensure(ctx, BY_NAME["controller-manager"])


def scheduler(ctx: Context) -> None:
    ensure(ctx, BY_NAME["scheduler"])


def run_all(ctx: Context) -> None:
    kubeconfig(ctx)
    for spec in KUBECONFIGS:
        ensure(ctx, spec)
