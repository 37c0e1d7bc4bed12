"""Handlers of `kbootd certs ...` and `kbootd kubeconfig user` (parsers: kbootd.cli.certsparser).

    kbootd certs check-expiration [-o text|yaml|json] [--config F] [--cert-dir D]
    kbootd certs renew <name>|all [--config F] [--cert-dir D]
    kbootd certs certificate-key
    kbootd kubeconfig user --client-name N [--org O] [--validity-period D] [--config F]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

from kbootd import kubeconfigfile
from kbootd.cluster import uploadcerts
from kbootd.config.load import load_file
from kbootd.config.model import InitConfig
from kbootd.config.yamlsrc import read_capped
from kbootd.daemon.lock import DAEMON, InstanceLock, LockHeld
from kbootd.duration import parse_duration
from kbootd.errors import KbootdError, ValidationError
from kbootd.hostio import Host
from kbootd.node import host_port
from kbootd.paths import DEFAULT_CERT_DIR, Paths, check_config_paths, check_setting
from kbootd.pki import certs as c
from kbootd.pki import expiry, inventory, keys
from kbootd.pki import renew as r
from kbootd.pki.inventory import CA_BY_NAME, Layout


def missing_subcommand(args: argparse.Namespace) -> int:  # pragma: no cover - argparse requires one
    return 3


class _Settings:
    """--config (certificatesDir, etcd mode, validity, key algorithm), --cert-dir, --root."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.cfg: InitConfig | None = None
        if getattr(args, "config", None):
            cfg = load_file(args.config, "init", lambda msg: sys.stderr.write(f"W {msg}\n"),
                            text=read_capped(args.config, "--config"))
            if not isinstance(cfg, InitConfig):
                raise ValidationError(f"{args.config}: expected an InitConfiguration/ClusterConfiguration")
            check_config_paths(cfg, args.config)
            self.cfg = cfg
        self.paths = Paths.rooted(args.root or "/")
        self.host = Host(self.paths, say=lambda text: sys.stderr.write(text + "\n"))
        cluster = self.cfg.cluster if self.cfg is not None else None
        if getattr(args, "cert_dir", None):
            self.cert_dir = check_setting(args.cert_dir, "--cert-dir")
        else:
            self.cert_dir = cluster.certificates_dir if cluster else DEFAULT_CERT_DIR
        self.local_etcd = (cluster.etcd_local is not None) if cluster else None
        self.validity = timedelta(seconds=cluster.cert_validity) if cluster else r.DEFAULT_VALIDITY

    def layout(self) -> Layout:
        return Layout(self.host, cert_dir=self.cert_dir, kubeconfig_dir=self.paths.kubernetes_dir,
                      local_etcd=self.local_etcd)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def check_expiration(args: argparse.Namespace) -> int:
    leaves, cas = inventory.survey(_Settings(args).layout())
    render = {"text": expiry.text, "yaml": expiry.to_yaml, "json": expiry.to_json}[args.output]
    sys.stdout.write(render(leaves, cas, _now()))
    return 0


@contextmanager
def _renew_lock(host: Host) -> Iterator[None]:
    """The host-wide lock, except against the supervising daemon: it holds the lock for as long
    as the node is up, and renewing beside it is safe, since a renewal is one atomic write of a
    certificate for the key already there (two renewals leave one valid certificate or the
    other). Against init, join, reset or another renew in progress: refused, naming the holder."""
    lock = InstanceLock(host, "kbootd certs renew")
    try:
        lock.acquire()
    except LockHeld:
        if lock.holder()[1] != DAEMON:
            raise
        yield
        return
    try:
        yield
    finally:
        lock.release()


def renew(args: argparse.Namespace) -> int:
    s = _Settings(args)
    layout = s.layout()
    chosen = layout.leaves() if args.name == "all" else (inventory.leaf(args.name),)
    with _renew_lock(s.host):
        for leaf in chosen:
            sys.stdout.write(r.renew(layout, leaf, validity=s.validity, now=_now()).line + "\n")
    if args.name == "all":
        sys.stdout.write(f"\n{r.RESTART_HINT}\n")
    return 0


def certificate_key(args: argparse.Namespace) -> int:
    # The key is this command's output (kubeadm's `certs certificate-key`): stdout only.
    sys.stdout.write(uploadcerts.generate_key() + "\n")
    return 0


def kubeconfig_user(args: argparse.Namespace) -> int:
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
    ca_cert, ca_key = r.load_ca(layout, "ca")
    server, cluster_name = _server(s, layout)
    algorithm = keys.algorithm_for(s.cfg.cluster) if s.cfg is not None else "RSA-2048"
    key = keys.new_private_key(algorithm)
    cert = c.sign_certificate(key.public_key(), ca_cert, ca_key, common_name=args.client_name,
                              organizations=tuple(args.org or ()), usages=(c.CLIENT_AUTH,),
                              validity=timedelta(seconds=validity), now=_now())
    # A kubeconfig with its key is this command's output, as kubeadm prints it: stdout only.
    sys.stdout.write(kubeconfigfile.build(server, c.encode_cert_pem(ca_cert), cluster_name, args.client_name,
                                          c.encode_cert_pem(cert), keys.encode_private_key_pem(key)))
    return 0


def _server(s: _Settings, layout: Layout) -> tuple[str, str]:
    """(server URL, cluster name): from --config as init computes them, else from admin.conf."""
    if s.cfg is not None:
        cfg = s.cfg
        endpoint = cfg.cluster.control_plane_endpoint
        if not endpoint:
            addr = cfg.advertise_address
            if not addr or addr in ("0.0.0.0", "::"):
                raise ValidationError(f"{cfg.source}: kubeconfig user needs controlPlaneEndpoint or "
                                      "localAPIEndpoint.advertiseAddress to name the server")
            endpoint = host_port(addr, cfg.bind_port)
        return f"https://{endpoint}", cfg.cluster.cluster_name
    path = layout.kubeconfig("admin.conf")
    data = layout.host.read_bytes(path)
    if data is None:
        raise ValidationError(f"{path}: not found; give --config so kbootd knows the API server's address")
    kc = kubeconfigfile.parse(data, path)
    return kc.server, kc.cluster_name
