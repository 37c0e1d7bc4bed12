"""`kbootd certs ...` and `kbootd kubeconfig user`: their parsers and handlers, in one module so
other work can add certs subcommands here without touching the main parser.

    kbootd certs check-expiration [-o text|yaml|json] [--config F] [--cert-dir D]
    kbootd certs renew <name>|all [--config F] [--cert-dir D]
    kbootd certs certificate-key
    kbootd kubeconfig user --client-name N [--org O] [--validity-period D] [--config F]

Handlers import what they need when they run (`cryptography` only for renew and kubeconfig).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kbootd.pki.inventory import Layout

HANDLERS = "kbootd.cli.certscmd"
OUTPUTS = ("text", "yaml", "json")


def _flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE",
                   help="a kubeadm configuration file (certificatesDir, etcd mode, certificateValidityPeriod)")
    p.add_argument("--cert-dir", metavar="DIR", help="where certificates are stored (default /etc/kubernetes/pki)")
    p.add_argument("--root", default=None, metavar="DIR", help="treat DIR as the host's root filesystem")
    p.add_argument("-v", "--verbosity", type=int, default=0, metavar="N", help="log level")


def add_certs(sub: Any, parser_class: type[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """The `certs` command under the top-level subparsers `sub`."""
    from kbootd.pki.inventory import LEAF_BY_NAME

    p = sub.add_parser("certs", help="Commands related to handling Kubernetes certificates",
                       description="Commands related to handling Kubernetes certificates")
    p.set_defaults(_handler=f"{HANDLERS}:missing_subcommand")
    cs = p.add_subparsers(dest="certs_command", metavar="SUBCOMMAND", parser_class=parser_class)
    cs.required = True
    ce = cs.add_parser("check-expiration", help="Check certificates expiration for a Kubernetes cluster",
                       description="Checks expiration for the certificates in the local PKI managed by kbootd")
    ce.add_argument("-o", "--output", choices=OUTPUTS, default="text", help="output format")
    _flags(ce)
    ce.set_defaults(_handler=f"{HANDLERS}:check_expiration")
    rn = cs.add_parser("renew", help="Renew certificates for a Kubernetes cluster",
                       description="Renew one certificate (kubeadm's names) or all of them, keeping subject, "
                                   "SANs, usages, CA and private key. CAs are never renewed.")
    rn.add_argument("name", choices=(*LEAF_BY_NAME, "all"), metavar="NAME",
                    help=f"all, or one of: {', '.join(LEAF_BY_NAME)}")
    _flags(rn)
    rn.set_defaults(_handler=f"{HANDLERS}:renew")
    ck = cs.add_parser("certificate-key", help="Generate certificate keys",
                       description="Print a new random key (32 bytes as 64 hex digits) for encrypting the "
                                   "control-plane certificates in the kubeadm-certs Secret")
    ck.set_defaults(_handler=f"{HANDLERS}:certificate_key")
    return cs


def add_kubeconfig(sub: Any, parser_class: type[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    p = sub.add_parser("kubeconfig", help="Kubeconfig file utilities",
                       description="Kubeconfig file utilities")
    p.set_defaults(_handler=f"{HANDLERS}:missing_subcommand")
    ks = p.add_subparsers(dest="kubeconfig_command", metavar="SUBCOMMAND", parser_class=parser_class)
    ks.required = True
    u = ks.add_parser("user", help="Output a kubeconfig file for an additional user",
                      description="Print a kubeconfig with a client certificate signed by the cluster CA "
                                  "for an additional user")
    u.add_argument("--client-name", required=True, metavar="NAME",
                   help="the user's name (the client certificate's common name)")
    u.add_argument("--org", action="append", default=None, metavar="ORG",
                   help="an organization (group) of the client certificate; repeatable")
    u.add_argument("--validity-period", default="8760h", metavar="DURATION",
                   help="how long the client certificate is valid (default 8760h)")
    _flags(u)
    u.set_defaults(_handler=f"{HANDLERS}:kubeconfig_user")
    return ks


# --- handlers ---------------------------------------------------------------------------------

def missing_subcommand(args: argparse.Namespace) -> int:  # pragma: no cover - argparse requires one
    return 3


class _Settings:
    def __init__(self, args: argparse.Namespace) -> None:
        from kbootd.hostio import Host
        from kbootd.paths import Paths

        self.cfg = None
        if getattr(args, "config", None):
            from kbootd.config.load import load_file

            self.cfg = load_file(args.config, "init", lambda msg: sys.stderr.write(f"W {msg}\n"))
        self.paths = Paths.rooted(args.root or "/")
        self.host = Host(self.paths, say=lambda text: sys.stderr.write(text + "\n"))
        cluster = self.cfg.cluster if self.cfg is not None else None
        self.cert_dir = args.cert_dir or (cluster.certificates_dir if cluster else "/etc/kubernetes/pki")
        self.local_etcd = (cluster.etcd_local is not None) if cluster else None
        self.validity = timedelta(seconds=cluster.cert_validity) if cluster else timedelta(hours=8760)

    def layout(self) -> Layout:
        from kbootd.pki.inventory import Layout

        return Layout(self.host, cert_dir=self.cert_dir, kubeconfig_dir=self.paths.kubernetes_dir,
                      local_etcd=self.local_etcd)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def check_expiration(args: argparse.Namespace) -> int:
    from kbootd.pki import expiry, inventory

    leaves, cas = inventory.survey(_Settings(args).layout())
    render = {"text": expiry.text, "yaml": expiry.to_yaml, "json": expiry.to_json}[args.output]
    sys.stdout.write(render(leaves, cas, _now()))
    return 0


def renew(args: argparse.Namespace) -> int:
    from kbootd.pki import inventory
    from kbootd.pki import renew as r

    s = _Settings(args)
    layout = s.layout()
    chosen = layout.leaves() if args.name == "all" else (inventory.leaf(args.name),)
    for leaf in chosen:
        sys.stdout.write(r.renew(layout, leaf, validity=s.validity, now=_now()).line + "\n")
    if args.name == "all":
        sys.stdout.write(f"\n{r.RESTART_HINT}\n")
    return 0


def certificate_key(args: argparse.Namespace) -> int:
    import secrets

    # The key is this command's output (kubeadm's `certs certificate-key`): stdout only.
    sys.stdout.write(secrets.token_hex(32) + "\n")
    return 0


def kubeconfig_user(args: argparse.Namespace) -> int:
    from kbootd import kubeconfigfile
    from kbootd.duration import parse_duration
    from kbootd.errors import KbootdError, ValidationError
    from kbootd.pki import certs as c
    from kbootd.pki import keys
    from kbootd.pki import renew as r
    from kbootd.pki.inventory import CA_BY_NAME

    s = _Settings(args)
    layout = s.layout()
    if not args.client_name.strip():
        raise ValidationError("--client-name: must not be empty")
    validity = parse_duration(args.validity_period, what="--validity-period")
    if validity <= 0:
        raise ValidationError(f"--validity-period: must be positive, got {args.validity_period!r}")
    if layout.external("ca"):
        raise KbootdError(f"{layout.key(CA_BY_NAME['ca'].base)}: missing (External CA mode); kbootd cannot sign "
                          "a client certificate without the CA key")
    ca_cert, ca_key = r._load_ca(layout, "ca")
    server, cluster_name = _server(s, layout)
    algorithm = keys.algorithm_for(s.cfg.cluster) if s.cfg is not None else "RSA-2048"
    key = keys.new_private_key(algorithm)
    cert = c.sign_certificate(key.public_key(), ca_cert, ca_key, common_name=args.client_name,
                              organizations=tuple(args.org or ()), usages=(c.CLIENT_AUTH,),
                              validity=timedelta(seconds=validity), now=_now())
    sys.stdout.write(kubeconfigfile.build(server, c.encode_cert_pem(ca_cert), cluster_name, args.client_name,
                                          c.encode_cert_pem(cert), keys.encode_private_key_pem(key)))
    return 0


def _server(s: _Settings, layout: Layout) -> tuple[str, str]:
    """(server URL, cluster name): from --config as init computes them, else from admin.conf."""
    from kbootd import kubeconfigfile
    from kbootd.errors import ValidationError

    if s.cfg is not None:
        cfg = s.cfg
        endpoint = cfg.cluster.control_plane_endpoint
        if not endpoint:
            addr = cfg.advertise_address
            if not addr or addr in ("0.0.0.0", "::"):
                raise ValidationError(f"{s.cfg.source}: kubeconfig user needs controlPlaneEndpoint or "
                                      "localAPIEndpoint.advertiseAddress to name the server")
            endpoint = f"[{addr}]:{cfg.bind_port}" if ":" in addr else f"{addr}:{cfg.bind_port}"
        return f"https://{endpoint}", cfg.cluster.cluster_name
    path = layout.kubeconfig("admin.conf")
    data = layout.host.read_bytes(path)
    if data is None:
        raise ValidationError(f"{path}: not found; give --config so kbootd knows the API server's address")
    kc = kubeconfigfile.parse(data, path)
    return kc.server, kc.cluster_name
