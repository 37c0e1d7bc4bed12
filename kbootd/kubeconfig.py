"""`kbootd init` phase "kubeconfig", plus the kubeconfig builder and parser join uses.

Files and identities are kubeadm v1.32's (phases/kubeconfig getKubeConfigSpecsBase):
admin, super-admin and kubelet talk to the control-plane endpoint; controller-manager and
scheduler talk to this node's own API server (the local advertise address and bind port).
An existing file is reused when it has the same CA and server and its client credentials
are valid; otherwise it is an error naming the file and what differs. In External CA
mode (ca.crt without ca.key) every file must already be there and valid.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from cryptography import x509

from kbootd import kubeconfigfile, node
from kbootd.errors import KbootdError, ValidationError
from kbootd.kubeconfigfile import Kubeconfig
from kbootd.pin import pin_of
from kbootd.pki import certlist, keys
from kbootd.pki import certs as c
from kbootd.pki import files as pki

if TYPE_CHECKING:
    from kbootd.context import Context

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
        return self.user.format(node=ctx.data.node_name)


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


# --- building and parsing (kbootd.kubeconfigfile) ----------------------------------------

build_kubeconfig = kubeconfigfile.build


def parse_kubeconfig(text: str | bytes, where: str) -> Kubeconfig:
    """kubeconfigfile.parse, and the embedded CA must be a PEM certificate."""
    kc = kubeconfigfile.parse(text, where)
    _ = kc.ca_cert  # raises a ValidationError naming the file when it is not a certificate
    return kc


# --- the init phase -----------------------------------------------------------------------

def local_api_url(ctx: Context) -> str:
    addr = ctx.data.advertise_address
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


# --- phase entry point (the sub-phases are made from KUBECONFIGS in kbootd.phases) --------

def kubeconfig(ctx: Context) -> None:
    ctx.reporter.info(PHASE, f'Using kubeconfig folder "{ctx.paths.kubernetes_dir}"')
