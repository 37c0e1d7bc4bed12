"""upload-certs / download-certs: the kubeadm-certs Secret, byte-compatible with kubeadm.

kubeadm (phases/copycerts) stores the control plane's shared material in Secret
kube-system/kubeadm-certs, each value `nonce(12) || AES-256-GCM(ciphertext+tag)` with the AES
key = the hex-decoded certificate key and no associated data. The Secret is owned by a
bootstrap token with a 2-hour expiration and no usages: when the token cleaner deletes the
expired token, the garbage collector deletes the Secret. Role and RoleBinding
kubeadm:kubeadm-certs let the default-node-token group `get` that one Secret.

Downloading decrypts and validates everything before writing anything: a wrong key (an
authentication failure) is a security failure that leaves no partial PKI, and a file already
on disk is never overwritten with different content.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from typing import Any

from kbootd import redact
from kbootd.api.objects import create_or_update
from kbootd.cluster import admin_client
from kbootd.cluster.tokens import create_token
from kbootd.config import validate as v
from kbootd.errors import KbootdError, SecurityError, TransientError
from kbootd.pin import pin_of
from kbootd.pki import certs, keys

SECRET_NAME = "kubeadm-certs"
NAMESPACE = "kube-system"
ROLE_NAME = "kubeadm:kubeadm-certs"
BOOTSTRAP_GROUP = "system:bootstrappers:kubeadm:default-node-token"
TOKEN_TTL_SECONDS = 2 * 3600.0  # kubeadm's DefaultCertTokenDuration
TOKEN_DESCRIPTION = "Proxy for managing TTL for the kubeadm-certs secret"
KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # the GCM standard nonce size kubeadm uses
PHASE_UP = "upload-certs"
PHASE_DOWN = "download-certs"
_RBAC = "rbac.authorization.k8s.io"


class CertsNotUploaded(TransientError):
    """kubeadm-certs is absent: not uploaded yet, or expired with its token. Worth waiting for."""


# --- the certificate key ---------------------------------------------------------------------

def generate_key() -> str:
    """kubeadm's CreateCertificateKey: 32 random bytes as 64 lower-case hex digits."""
    key = os.urandom(KEY_BYTES).hex()
    redact.register(key)
    return key


def parse_key(text: str, source: str) -> bytes:
    """The AES key from its hex text (checked and registered for redaction by the one validator)."""
    return bytes.fromhex(v.certificate_key(text or "", source))


def encrypt(data: bytes, key: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, data, None)


def decrypt(blob: bytes, key: bytes, name: str) -> bytes:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if len(blob) < NONCE_BYTES + 16:
        raise SecurityError(f'Secret "{SECRET_NAME}": {name}: too short to be AES-256-GCM data')
    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], None)
    except InvalidTag:
        raise SecurityError(
            f'Secret "{SECRET_NAME}": cannot decrypt {name} with the given certificate key '
            "(message authentication failed)",
            hint="the certificate key is wrong, or the certificates were uploaded again with another key; "
                 "nothing was written") from None


# --- what is transferred -----------------------------------------------------------------------

@dataclass(frozen=True)
class Item:
    name: str  # the Secret's data key (kubeadm's certOrKeyNameToSecretName)
    path: str  # where the file lives on this host
    private: bool  # written 0600

    @property
    def mode(self) -> int:
        return 0o600 if self.private else 0o644


def items(cluster: Any) -> list[Item]:
    """kubeadm's certsToTransfer, in its order; etcd's CA only for a local (stacked) etcd,
    the external etcd client files when configured."""
    d = cluster.certificates_dir
    out = [Item("ca.crt", f"{d}/ca.crt", False), Item("ca.key", f"{d}/ca.key", True),
           Item("front-proxy-ca.crt", f"{d}/front-proxy-ca.crt", False),
           Item("front-proxy-ca.key", f"{d}/front-proxy-ca.key", True),
           Item("sa.key", f"{d}/sa.key", True), Item("sa.pub", f"{d}/sa.pub", True)]
    ext = cluster.etcd_external
    if ext is None:
        out += [Item("etcd-ca.crt", f"{d}/etcd/ca.crt", False), Item("etcd-ca.key", f"{d}/etcd/ca.key", True)]
    else:
        for name, path, private in (("external-etcd-ca.crt", ext.ca_file, False),
                                    ("external-etcd.crt", ext.cert_file, False),
                                    ("external-etcd.key", ext.key_file, True)):
            if path:
                out.append(Item(name, path, private))
    return out


# --- the objects ---------------------------------------------------------------------------------

def owner_reference(token_secret: dict[str, Any]) -> dict[str, Any]:
    """metav1.NewControllerRef(token Secret): the Secret dies with the token."""
    md = token_secret["metadata"]
    return {"apiVersion": "v1", "kind": "Secret", "name": md["name"], "uid": md["uid"],
            "controller": True, "blockOwnerDeletion": True}


def certs_secret(data: dict[str, bytes], owner: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": SECRET_NAME, "namespace": NAMESPACE, "ownerReferences": [owner]},
            "type": "Opaque",
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()}}


def rbac_objects() -> list[dict[str, Any]]:
    return [
        {"apiVersion": f"{_RBAC}/v1", "kind": "Role", "metadata": {"name": ROLE_NAME, "namespace": NAMESPACE},
         "rules": [{"apiGroups": [""], "resourceNames": [SECRET_NAME], "resources": ["secrets"],
                    "verbs": ["get"]}]},
        {"apiVersion": f"{_RBAC}/v1", "kind": "RoleBinding", "metadata": {"name": ROLE_NAME, "namespace": NAMESPACE},
         "roleRef": {"apiGroup": _RBAC, "kind": "Role", "name": ROLE_NAME},
         "subjects": [{"apiGroup": _RBAC, "kind": "Group", "name": BOOTSTRAP_GROUP}]},
    ]


def encrypted_data(ctx: Any, key: bytes) -> dict[str, bytes]:
    """Each file present on disk, encrypted; missing ones are skipped as kubeadm does, but the
    cluster CA must be there (without it there is nothing worth sharing)."""
    out = {}
    for item in items(ctx.cfg.cluster):
        data = ctx.host.read_bytes(item.path)
        if data is None:
            if item.name in ("ca.crt", "ca.key"):
                raise KbootdError(f"{item.path}: not found; upload-certs needs the cluster CA and its key",
                                  hint="run the certs phase first")
            continue
        out[item.name] = encrypt(data, key)
    return out


# --- upload ------------------------------------------------------------------------------------

def upload(ctx: Any, client: Any, key_hex: str, *, source: str = "certificateKey") -> dict[str, Any]:
    """Encrypt, create the 2-hour owner token, write the Secret and its RBAC. Returns the Secret sent.

    A re-run creates a new owner token and moves the Secret to it (kubeadm does the same); the
    older token expires on its own within two hours.
    """
    key = parse_key(key_hex, source)
    data = encrypted_data(ctx, key)
    token = create_token(client, ttl=TOKEN_TTL_SECONDS, usages=(), groups=(), description=TOKEN_DESCRIPTION,
                         now=ctx.seams.now())
    live = client.retry(lambda: client.get("Secret", token.secret_name, NAMESPACE),
                        f"read bootstrap token Secret {token.secret_name}")
    if getattr(client, "dry_run", False):  # nothing was created: no uid to own the Secret by
        live = {"metadata": {"name": token.secret_name, "uid": "<uid of the token Secret>"}}
    if live is None or not (live.get("metadata") or {}).get("uid"):
        raise TransientError(f"bootstrap token Secret {token.secret_name} vanished right after its creation")
    secret = certs_secret(data, owner_reference(live))
    create_or_update(client, secret)
    for obj in rbac_objects():
        create_or_update(client, obj)
    return secret


def print_key(ctx: Any, key_hex: str) -> None:
    """The key is this phase's product for the operator: straight to the console, as kubeadm prints it.
    A dry run creates nothing worth a key, so it shows none. The daemon's reporter has no console (its
    stdout goes to the journal, where a key must never appear), and its key came from its settings."""
    console = getattr(ctx.reporter, "stdout", None)
    if console is None:
        ctx.reporter.info(PHASE_UP, "Using the certificate key from this node's settings (not shown)")
        return
    shown = redact.REDACTED if ctx.dry_run else key_hex
    console.write(f"[{PHASE_UP}] Using certificate key:\n{shown}\n")
    console.flush()


def resolve_key(ctx: Any) -> str:
    """The configured key (InitConfiguration.certificateKey or --certificate-key), else a new one,
    kept for this run so the join command printed later carries the same key."""
    key = ctx.data.known("certificate_key") or getattr(ctx.init, "certificate_key", None) or generate_key()
    ctx.data.certificate_key = key
    return key


def upload_phase(ctx: Any) -> None:
    """init's upload-certs phase."""
    if not getattr(ctx.init, "upload_certs", False):
        ctx.reporter.info(PHASE_UP, "Skipping phase. Please see --upload-certs")
        return

    key = resolve_key(ctx)
    ctx.reporter.info(PHASE_UP, f'Storing the certificates in Secret "{SECRET_NAME}" in the "{NAMESPACE}" Namespace')
    upload(ctx, admin_client(ctx), key)
    print_key(ctx, key)


# --- download ----------------------------------------------------------------------------------

def fetch(client: Any) -> dict[str, Any]:
    secret = client.retry(lambda: client.get("Secret", SECRET_NAME, NAMESPACE), f"get Secret {SECRET_NAME}")
    if secret is None:
        raise CertsNotUploaded(
            f'Secret "{SECRET_NAME}" was not found in the "{NAMESPACE}" Namespace. This Secret might have expired',
            hint="run `kbootd init phase upload-certs --upload-certs` on a control plane to upload them again "
                 "(they expire after 2 hours), or pre-share them (`kbootd ca generate --control-plane`)")
    return secret


def decrypt_secret(secret: dict[str, Any], key: bytes) -> dict[str, bytes]:
    """Every value decrypted, or SecurityError for the first that does not authenticate."""
    out = {}
    for name, value in sorted((secret.get("data") or {}).items()):
        try:
            blob = base64.b64decode(value, validate=True)
        except (ValueError, TypeError):
            raise SecurityError(f'Secret "{SECRET_NAME}": {name} is not base64') from None
        out[name] = decrypt(blob, key, name)
    return out


def check_material(plain: dict[str, bytes], expected_pin: str | None) -> None:
    """Each CA certificate matches its key, and the cluster CA is the one discovery trusted."""
    for base in ("ca", "front-proxy-ca", "etcd-ca"):
        crt, key = plain.get(f"{base}.crt"), plain.get(f"{base}.key")
        if crt is None and key is None:
            continue
        if crt is None or key is None:
            raise SecurityError(f'Secret "{SECRET_NAME}": {base}.crt and {base}.key must come together')
        cert = certs.load_cert_pem(crt, f'Secret "{SECRET_NAME}" {base}.crt')
        if not certs.key_matches(cert, keys.load_private_key_pem(key, f'Secret "{SECRET_NAME}" {base}.key')):
            raise SecurityError(f'Secret "{SECRET_NAME}": {base}.key does not belong to {base}.crt')
    if "ca.crt" not in plain:
        raise SecurityError(f'Secret "{SECRET_NAME}" holds no ca.crt')
    if expected_pin is not None:
        got = pin_of(certs.load_cert_pem(plain["ca.crt"], "ca.crt"))
        if got != expected_pin:
            raise SecurityError(f'Secret "{SECRET_NAME}": its ca.crt ({got}) is not the cluster CA discovery '
                                f"trusted ({expected_pin})")
    if ("sa.key" in plain) != ("sa.pub" in plain):
        raise SecurityError(f'Secret "{SECRET_NAME}": sa.key and sa.pub must come together')
    if "sa.key" in plain:
        priv = keys.load_private_key_pem(plain["sa.key"], f'Secret "{SECRET_NAME}" sa.key')
        pub = keys.load_public_key_pem(plain["sa.pub"], f'Secret "{SECRET_NAME}" sa.pub')
        if not keys.same_public_key(priv, pub):
            raise SecurityError(f'Secret "{SECRET_NAME}": sa.pub is not the public half of sa.key')


def plan_writes(ctx: Any, plain: dict[str, bytes]) -> list[tuple[Item, bytes]]:
    """What to write: files already present with the same content are kept; a different file is
    never overwritten (a CA or key is never replaced)."""
    todo = []
    for item in items(ctx.cfg.cluster):
        if item.name not in plain:
            continue
        have = ctx.host.read_bytes(item.path)
        if have is None:
            todo.append((item, plain[item.name]))
        elif have != plain[item.name]:
            raise SecurityError(
                f"{item.path}: already exists and differs from {item.name} in Secret \"{SECRET_NAME}\"",
                hint="this host holds other cluster material; remove it (kbootd reset) or check the cluster")
    unknown = sorted(set(plain) - {i.name for i in items(ctx.cfg.cluster)})
    if unknown:
        ctx.reporter.warn(PHASE_DOWN, f'ignoring unexpected keys in Secret "{SECRET_NAME}": {", ".join(unknown)}')
    return todo


def download(ctx: Any, client: Any, key_hex: str, *, source: str = "--certificate-key",
             expected_pin: str | None = None) -> list[str]:
    """Fetch, decrypt all, validate, then write (keys before certificates). Returns the paths written."""
    key = parse_key(key_hex, source)
    plain = decrypt_secret(fetch(client), key)
    check_material(plain, expected_pin)
    todo = plan_writes(ctx, plain)
    todo.sort(key=lambda t: not t[0].private)  # a crash in between leaves a key, never a lone cert
    written = []
    for item, data in todo:
        parent = item.path.rsplit("/", 1)[0]
        ctx.host.ensure_dir(parent, 0o700 if parent.startswith(ctx.cfg.cluster.certificates_dir) else 0o755)
        ctx.host.write_file(item.path, data, item.mode, sensitive=item.private)
        written.append(item.path)
    return written
