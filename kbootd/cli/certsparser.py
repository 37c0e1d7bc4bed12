"""The parsers of `kbootd certs ...` and `kbootd kubeconfig user`, in their own module so other
work can add certs subcommands (e.g. HA's upload-certs helpers) without touching cli/parser.py.
Only argparse here: building the parser must stay cheap. Handlers: kbootd.cli.certscmd.
"""

from __future__ import annotations

import argparse
from typing import Any

HANDLERS = "kbootd.cli.certscmd"
OUTPUTS = ("text", "yaml", "json")
# kubeadm's names, in its order (kbootd.pki.inventory.LEAVES; a test keeps them equal).
LEAF_NAMES = ("admin.conf", "apiserver", "apiserver-etcd-client", "apiserver-kubelet-client",
              "controller-manager.conf", "etcd-healthcheck-client", "etcd-peer", "etcd-server",
              "front-proxy-client", "scheduler.conf", "super-admin.conf")
CERTS_HELP = "Commands related to handling Kubernetes certificates"
KUBECONFIG_HELP = "Kubeconfig file utilities"


def _flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE",
                   help="a kubeadm configuration file (certificatesDir, etcd mode, certificateValidityPeriod)")
    p.add_argument("--cert-dir", metavar="DIR", help="where certificates are stored (default /etc/kubernetes/pki)")
    p.add_argument("--root", default=None, metavar="DIR", help="treat DIR as the host's root filesystem")
    p.add_argument("-v", "--verbosity", type=int, default=0, metavar="N", help="log level")


def add_certs(p: argparse.ArgumentParser, parser_class: type[argparse.ArgumentParser]) -> Any:
    """Fill in the `certs` command's parser; returns its subparsers (for more subcommands)."""
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
    rn.add_argument("name", choices=(*LEAF_NAMES, "all"), metavar="NAME",
                    help=f"all, or one of: {', '.join(LEAF_NAMES)}")
    _flags(rn)
    rn.set_defaults(_handler=f"{HANDLERS}:renew")
    ck = cs.add_parser("certificate-key", help="Generate certificate keys",
                       description="Print a new random key (32 bytes as 64 hex digits) for encrypting the "
                                   "control-plane certificates in the kubeadm-certs Secret")
    ck.set_defaults(_handler=f"{HANDLERS}:certificate_key")
    return cs


def add_kubeconfig(p: argparse.ArgumentParser, parser_class: type[argparse.ArgumentParser]) -> Any:
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
