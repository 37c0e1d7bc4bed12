"""`kbootd init`, `join`, `reset` and `phase`: load the configuration, run the workflow."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from kbootd import engine, workflow
from kbootd.cli.common import reporter
from kbootd.config import validate as v
from kbootd.config.load import config_conflicts, init_from_flags, join_from_flags, load_file
from kbootd.config.model import InitConfig, JoinConfig
from kbootd.config.yamlsrc import read_capped
from kbootd.daemon.lock import DAEMON, InstanceLock, LockHeld
from kbootd.duration import parse_duration
from kbootd.errors import ValidationError
from kbootd.hostio import Host
from kbootd.joincmd import print_join_command
from kbootd.paths import Paths, check_config_paths, check_setting
from kbootd.phases import WORKFLOWS
from kbootd.reset import ResetOptions


def _env_kubernetes_dir(rep: Any) -> str | None:
    d = os.environ.get("KUBE_KUBERNETES_DIR")
    if d:
        check_setting(d, "KUBE_KUBERNETES_DIR")
        rep.warn("init", "KUBE_KUBERNETES_DIR is deprecated (the spec's environment variable); "
                 f"using {d} instead of /etc/kubernetes")
    return d


def _load(args: argparse.Namespace, rep: Any, role: str):
    config_conflicts(args)
    warn = lambda msg: rep.warn("config", msg)  # noqa: E731
    if args.config:
        cfg = load_file(args.config, role, warn, text=read_capped(args.config, "--config"))
    else:
        cfg = (init_from_flags if role == "init" else join_from_flags)(args, warn)
    # Relative or escaping path settings are refused before anything runs (issue 11 #3).
    check_config_paths(cfg, args.config or "flags")
    if role == "init" and getattr(args, "upload_certs", False):
        cfg = replace(cfg, upload_certs=True)  # a flag only, with or without --config (as kubeadm)
    return cfg


@contextmanager
def host_lock(args: argparse.Namespace, command: str) -> Iterator[None]:
    """The host-wide lock the daemon takes too (issue 11 #2), for every command that changes the host.

    init, join, reset and `phase` take it; a dry run changes nothing and takes none, and
    token/config commands only talk to the API server. A second run fails at once naming
    the holder (pid, command) rather than interleaving its writes with the first.
    """
    if getattr(args, "dry_run", False):
        yield
        return
    host = Host(Paths.rooted(args.root or "/"), say=lambda text: None)
    lock = InstanceLock(host, command)
    try:
        lock.acquire()
    except LockHeld:
        # reset stops the daemon anyway; on this machine and with --force it may do so first.
        _, holder = lock.holder()
        if not (command.startswith("kbootd reset") and getattr(args, "force", False)
                and host.paths.is_host and holder == DAEMON):
            raise
        host.systemctl("stop", "kbootd", check=False)
        lock.acquire(wait=30)
    try:
        yield
    finally:
        lock.release()


def load_init(args: argparse.Namespace, rep: Any) -> InitConfig:
    return _load(args, rep, "init")


def load_join(args: argparse.Namespace, rep: Any) -> JoinConfig:
    cfg = _load(args, rep, "join")
    if cfg.discovery_file and cfg.discovery_file.startswith("/"):
        # ValidateDiscoveryKubeConfigPath: a discovery file must exist before any phase runs.
        if not Paths.rooted(args.root or "/").at(cfg.discovery_file).is_file():
            where = ("--discovery-file" if cfg.source == "flags"
                     else f"{cfg.source}: JoinConfiguration.discovery.file.kubeConfigPath")
            raise ValidationError(f"{where}: {cfg.discovery_file}: no such file "
                                  "(expected a kubeconfig file or an https:// URL)")
    if getattr(args, "discovery_timeout", None):
        t = parse_duration(args.discovery_timeout, what="--discovery-timeout")
        cfg = replace(cfg, timeouts=replace(cfg.timeouts, discovery=t))
    return cfg


def _run_workflow(args: argparse.Namespace, role: str, only: str | None = None) -> int:
    rep = reporter(args)
    cfg = load_init(args, rep) if role == "init" else load_join(args, rep)
    # kubeadm's ValidateIgnorePreflightErrors over the flag and the file together.
    v.ignore_preflight_errors(tuple(args.ignore_preflight_errors or ()) + tuple(cfg.node.ignore_preflight_errors),
                              "--ignore-preflight-errors")
    ignore = tuple(args.ignore_preflight_errors or ()) + (("all",) if args.skip_preflight_checks else ())
    with host_lock(args, f"kbootd {role}" + (f" phase {only}" if only else "")):
        ctx = engine.run(
            role, cfg, reporter=rep, root=args.root or "/", dry_run=args.dry_run,
            ignore_preflight_errors=ignore, skip_phases=tuple(args.skip_phases or ()), only=only,
            skip_token_print=getattr(args, "skip_token_print", False),
            kubernetes_dir=_env_kubernetes_dir(rep),
        )
    if only is None and role == "init":
        print_join_command(ctx)
    return 0


def _reset(args: argparse.Namespace, only: str | None = None) -> int:
    opts = ResetOptions(
        cert_dir=check_setting(args.cert_dir, "--cert-dir"), force=args.force, remove_node=args.remove_node,
        cri_socket=v.cri_socket(args.cri_socket, "--cri-socket") if args.cri_socket else None,
        kubeconfig=check_setting(args.kubeconfig, "--kubeconfig") if args.kubeconfig else None,
        node_name=v.node_name(args.node_name, "--node-name") if args.node_name else None)
    with host_lock(args, "kbootd reset" + (f" phase {only}" if only else "")):
        engine.run_reset(opts, reporter=reporter(args), root=args.root or "/", dry_run=args.dry_run,
                         only=only, skip_phases=tuple(args.skip_phases or ()))
    return 0


def reset(args: argparse.Namespace) -> int:
    return _reset(args)


def init(args: argparse.Namespace) -> int:
    return _run_workflow(args, "init")


def join(args: argparse.Namespace) -> int:
    return _run_workflow(args, "join")


def phase(args: argparse.Namespace) -> int:
    phases = WORKFLOWS[args.workflow]
    if not args.phase_name:
        rows = workflow.all_phases(phases)
        if not rows:
            print(f"(no {args.workflow} phases are built yet)")
        width = max((len(p) for p, _ in rows), default=0)
        for path, p in rows:
            indent = "  " * path.count("/")
            print(f"{indent}{path.split('/')[-1]:<{width}}  {p.summary}")
        return 0
    workflow.find(phases, args.phase_name, "phase")
    if args.workflow == "reset":
        return _reset(args, only=args.phase_name)
    return _run_workflow(args, args.workflow, only=args.phase_name)


