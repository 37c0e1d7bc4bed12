"""`kbootd ca generate`: a cluster CA made before any machine boots, and the pin workers need.

With the CA's certificate and key written to the control plane by cloud-init
(/etc/kubernetes/pki/ca.crt and ca.key, which init reuses as kubeadm does) and the pin
given to the workers, every machine's user-data can be written up front: no one has to
wait for init to print a hash. The CA is made like kubeadm's own (kbootd.pki.certs).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, TextIO

from kbootd.cluster import sharedpki
from kbootd.duration import parse_duration
from kbootd.errors import ValidationError
from kbootd.hostio import Host
from kbootd.paths import Paths
from kbootd.pin import pin_of
from kbootd.pki.certs import encode_cert_pem, new_self_signed_ca
from kbootd.pki.keys import encode_private_key_pem, new_private_key

if TYPE_CHECKING:
    import argparse

DEFAULT_COMMON_NAME = "kubernetes"
DEFAULT_VALIDITY = sharedpki.DEFAULT_VALIDITY


@dataclass(frozen=True)
class CAMaterial:
    cert_pem: str
    key_pem: str  # the CA's private key: it goes to the control plane only
    pin: str  # sha256:<hex> of the public key, for caCertHashes / kbootd-ca-cert-hash


def generate(common_name: str = DEFAULT_COMMON_NAME, validity: timedelta = DEFAULT_VALIDITY,
             algorithm: str = "RSA-2048") -> CAMaterial:
    key = new_private_key(algorithm)
    cert = new_self_signed_ca(key, common_name, validity)
    return CAMaterial(encode_cert_pem(cert).decode(), encode_private_key_pem(key).decode(), pin_of(cert))


def control_plane_user_data(m: CAMaterial) -> str:
    """The write_files entries that put the CA where init picks it up."""
    d = sharedpki.CERT_DIR
    return sharedpki.write_files(sharedpki.SharedMaterial(
        (sharedpki.SharedFile(f"{d}/ca.crt", m.cert_pem, 0o644), sharedpki.SharedFile(f"{d}/ca.key", m.key_pem, 0o600)),
        m.pin))


def command(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """`kbootd ca generate [--common-name CN] [--validity DURATION] [--algorithm ALG] [-o text|json] [--out-dir DIR]`."""
    out = out or sys.stdout
    validity = DEFAULT_VALIDITY
    if getattr(args, "validity", None):
        validity = timedelta(seconds=parse_duration(args.validity, what="--validity"))
    if getattr(args, "control_plane", False):
        return control_plane_command(args, validity, out)
    m = generate(getattr(args, "common_name", None) or DEFAULT_COMMON_NAME, validity,
                 getattr(args, "algorithm", None) or "RSA-2048")
    out_dir = getattr(args, "out_dir", None)
    if out_dir:
        out_dir = os.path.abspath(out_dir)
        host = Host(Paths.rooted("/"), say=lambda s: None)
        host.ensure_dir(out_dir, 0o755)
        host.write_file(f"{out_dir.rstrip('/')}/ca.crt", m.cert_pem, 0o644)
        host.write_file(f"{out_dir.rstrip('/')}/ca.key", m.key_pem, 0o600, sensitive=True)
        out.write(f"wrote {out_dir}/ca.crt and {out_dir}/ca.key (0600)\npin: {m.pin}\n")
        return 0
    if getattr(args, "output", None) == "json":
        out.write(json.dumps({"caCert": m.cert_pem, "caKey": m.key_pem, "caCertHash": m.pin}, indent=2) + "\n")
        return 0
    out.write(
        "# kbootd ca generate: a cluster CA for user-data. Keep the key secret.\n"
        f"# CA pin, for every worker (caCertHashes, or metadata kbootd-ca-cert-hash):\n"
        f"#   {m.pin}\n"
        "#\n"
        "# For the control plane's user-data (cloud-config):\n"
        + control_plane_user_data(m)
    )
    return 0


def control_plane_command(args: argparse.Namespace, validity: timedelta, out: TextIO) -> int:
    """`ca generate --control-plane`: everything the control planes share (kbootd.cluster.sharedpki),
    so any number of them can boot at once, init on one and join on the others."""
    if getattr(args, "common_name", None):
        raise ValidationError("--common-name: not with --control-plane (each CA keeps kubeadm's name)")
    m = sharedpki.generate(validity, getattr(args, "algorithm", None) or "RSA-2048")
    out_dir = getattr(args, "out_dir", None)
    if out_dir:
        out_dir = os.path.abspath(out_dir).rstrip("/")
        host = Host(Paths.rooted("/"), say=lambda s: None)
        for f in m.files:
            rel = f.path[len(sharedpki.CERT_DIR) + 1:]
            path = f"{out_dir}/{rel}"
            host.ensure_dir(path.rsplit("/", 1)[0], 0o700)
            host.write_file(path, f.content, f.mode, sensitive=f.private)
        out.write(f"wrote {len(m.files)} files under {out_dir} (keys 0600)\npin: {m.pin}\n")
        return 0
    if getattr(args, "output", None) == "json":
        out.write(json.dumps({"files": [{"path": f.path, "permissions": f"{f.mode:04o}", "content": f.content}
                                        for f in m.files], "caCertHash": m.pin}, indent=2) + "\n")
        return 0
    out.write(sharedpki.user_data_text(m))
    return 0
