"""The material every control plane of a cluster shares, made before any machine boots (the Cluster
API way): the cluster CA, the service-account key pair, the front-proxy CA and etcd's CA.

Written to each control plane by cloud-init, it lets any number of control planes boot at once with
no 2-hour kubeadm-certs Secret to race against: init reuses it (kbootd never regenerates a CA), a
joining control plane checks it against the cluster it discovered before using it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from kbootd.errors import SecurityError
from kbootd.paths import DEFAULT_CERT_DIR
from kbootd.pin import pin_of
from kbootd.pki import certs, files, keys
from kbootd.pki.certs import encode_cert_pem, new_self_signed_ca
from kbootd.pki.keys import encode_private_key_pem, encode_public_key_pem, new_private_key

CERT_DIR = DEFAULT_CERT_DIR
CAS = (("ca", "kubernetes"), ("front-proxy-ca", "front-proxy-ca"), ("etcd/ca", "etcd-ca"))  # kubeadm's CNs
DEFAULT_VALIDITY = timedelta(days=3650)  # kubeadm's CA validity


@dataclass(frozen=True)
class SharedFile:
    path: str
    content: str = ""
    mode: int = 0o644

    @property
    def private(self) -> bool:
        return self.mode == 0o600


@dataclass(frozen=True)
class SharedMaterial:
    files: tuple[SharedFile, ...]
    pin: str  # of the cluster CA: what workers and joining control planes trust


def generate(validity: timedelta = DEFAULT_VALIDITY, algorithm: str = "RSA-2048",
             cert_dir: str = CERT_DIR) -> SharedMaterial:
    out = []
    pin = ""
    for base, cn in CAS:
        key = new_private_key(algorithm)
        cert = new_self_signed_ca(key, cn, validity)
        if base == "ca":
            pin = pin_of(cert)
        out += [SharedFile(f"{cert_dir}/{base}.crt", encode_cert_pem(cert).decode(), 0o644),
                  SharedFile(f"{cert_dir}/{base}.key", encode_private_key_pem(key).decode(), 0o600)]
    sa = new_private_key("RSA-2048")  # kubeadm's service-account key is RSA whatever the algorithm
    out += [SharedFile(f"{cert_dir}/sa.key", encode_private_key_pem(sa).decode(), 0o600),
              SharedFile(f"{cert_dir}/sa.pub", encode_public_key_pem(sa).decode(), 0o600)]
    return SharedMaterial(tuple(out), pin)


def _indent(text: str, n: int) -> str:
    pad = " " * n
    return "".join(pad + line + "\n" for line in text.rstrip("\n").splitlines())


def write_files(m: SharedMaterial) -> str:
    """cloud-init write_files entries, the same for every control plane."""
    out = "write_files:\n"
    for f in m.files:
        out += f"  - path: {f.path}\n    permissions: '{f.mode:04o}'\n    content: |\n" + _indent(f.content, 6)
    return out


def user_data_text(m: SharedMaterial) -> str:
    return ("# kbootd ca generate --control-plane: the material every control plane shares. Keep it secret.\n"
            "# CA pin, for every worker and joining control plane (caCertHashes, or metadata kbootd-ca-cert-hash):\n"
            f"#   {m.pin}\n#\n# For each control plane's user-data (cloud-config):\n" + write_files(m))


# --- checking what is on disk against the cluster ----------------------------------------------------

def check_against_cluster(ctx: Any, cluster_ca_pem: bytes) -> None:
    """Pre-shared material on this host must be the discovered cluster's. SecurityError otherwise."""
    cluster_pins = {pin_of(c) for c in certs.load_cert_chain_pem(cluster_ca_pem, "the discovered cluster CA")}
    bases = ["ca", "front-proxy-ca"] + (["etcd/ca"] if ctx.cfg.cluster.etcd_local is not None else [])
    for base in bases:
        cpath, kpath = files.crt_path(ctx, base), files.key_path(ctx, base)
        crt, key = ctx.host.read_bytes(cpath), ctx.host.read_bytes(kpath)
        if crt is None or key is None:
            raise SecurityError(f"pre-shared material incomplete: {cpath if crt is None else kpath} is missing",
                                hint="write every file `kbootd ca generate --control-plane` printed, or join "
                                     "with --certificate-key")
        cert = certs.load_cert_pem(crt, cpath)
        if not certs.key_matches(cert, keys.load_private_key_pem(key, kpath)):
            raise SecurityError(f"{kpath} is not the key of {cpath}")
        if base == "ca" and pin_of(cert) not in cluster_pins:
            raise SecurityError(
                f"{cpath} ({pin_of(cert)}) is not the CA of the cluster this node discovered "
                f"({', '.join(sorted(cluster_pins))})",
                hint="the pre-shared material belongs to another cluster; fix the user-data or join with "
                     "--certificate-key")
    spath, ppath = files.key_path(ctx, "sa"), files.pub_path(ctx, "sa")
    sk, sp = ctx.host.read_bytes(spath), ctx.host.read_bytes(ppath)
    if sk is None or sp is None:
        raise SecurityError(f"pre-shared material incomplete: {spath if sk is None else ppath} is missing")
    if not keys.same_public_key(keys.load_private_key_pem(sk, spath), keys.load_public_key_pem(sp, ppath)):
        raise SecurityError(f"{ppath} is not the public half of {spath}")
    ctx.reporter.info("download-certs", "The pre-shared certificates match the cluster's CA")
