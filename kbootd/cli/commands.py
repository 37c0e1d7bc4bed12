"""Command handlers. Each imports what it needs when it runs, keeping start-up light."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from kbootd.errors import KbootdError, ValidationError

if TYPE_CHECKING:
    import argparse


def _reporter(args: argparse.Namespace):
    from kbootd.report import ConsoleReporter

    return ConsoleReporter(getattr(args, "verbosity", 0) or 0)


def _env_kubernetes_dir(rep: Any) -> str | None:
    d = os.environ.get("KUBE_KUBERNETES_DIR")
    if d:
        from kbootd.paths import check_setting

        check_setting(d, "KUBE_KUBERNETES_DIR")
        rep.warn("init", "KUBE_KUBERNETES_DIR is deprecated (the spec's environment variable); "
                 f"using {d} instead of /etc/kubernetes")
    return d


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
    from kbootd.daemon.lock import InstanceLock, LockHeld
    from kbootd.hostio import Host
    from kbootd.paths import Paths

    host = Host(Paths.rooted(args.root or "/"), say=lambda text: None)
    lock = InstanceLock(host, command)
    try:
        lock.acquire()
    except LockHeld:
        # reset stops the daemon anyway; on this machine and with --force it may do so first.
        _, holder = lock.holder()
        if not (command.startswith("kbootd reset") and getattr(args, "force", False)
                and host.paths.is_host and holder == "kbootd run"):
            raise
        host.systemctl("stop", "kbootd", check=False)
        lock.acquire(wait=30)
    try:
        yield
    finally:
        lock.release()


def _load(args: argparse.Namespace, rep: Any, role: str):
    from kbootd.config.load import config_conflicts, init_from_flags, join_from_flags, load_file

    config_conflicts(args)
    warn = lambda msg: rep.warn("config", msg)  # noqa: E731
    from kbootd.paths import check_config_paths

    if args.config:
        from kbootd.config.yamlsrc import read_capped

        cfg = load_file(args.config, role, warn, text=read_capped(args.config, "--config"))
    else:
        cfg = (init_from_flags if role == "init" else join_from_flags)(args, warn)
    # Relative or escaping path settings are refused before anything runs (issue 11 #3).
    check_config_paths(cfg, args.config or "flags")
    return cfg


def load_init(args: argparse.Namespace, rep: Any):
    return _load(args, rep, "init")


def load_join(args: argparse.Namespace, rep: Any):
    cfg = _load(args, rep, "join")
    if cfg.discovery_file and cfg.discovery_file.startswith("/"):
        # ValidateDiscoveryKubeConfigPath: a discovery file must exist before any phase runs.
        from kbootd.paths import Paths

        if not Paths.rooted(args.root or "/").at(cfg.discovery_file).is_file():
            where = ("--discovery-file" if cfg.source == "flags"
                     else f"{cfg.source}: JoinConfiguration.discovery.file.kubeConfigPath")
            raise ValidationError(f"{where}: {cfg.discovery_file}: no such file "
                                  "(expected a kubeconfig file or an https:// URL)")
    if getattr(args, "discovery_timeout", None):
        from dataclasses import replace

        from kbootd.duration import parse_duration

        t = parse_duration(args.discovery_timeout, what="--discovery-timeout")
        cfg = replace(cfg, timeouts=replace(cfg.timeouts, discovery=t))
    return cfg


def _run_workflow(args: argparse.Namespace, role: str, only: str | None = None) -> int:
    from kbootd import engine

    rep = _reporter(args)
    cfg = load_init(args, rep) if role == "init" else load_join(args, rep)
    from kbootd.config import validate as v

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
        from kbootd.joincmd import print_join_command

        print_join_command(ctx)
    return 0


def _reset(args: argparse.Namespace, only: str | None = None) -> int:
    from kbootd import engine
    from kbootd.config import validate as v
    from kbootd.paths import check_setting
    from kbootd.reset import ResetOptions

    opts = ResetOptions(
        cert_dir=check_setting(args.cert_dir, "--cert-dir"), force=args.force, remove_node=args.remove_node,
        cri_socket=v.cri_socket(args.cri_socket, "--cri-socket") if args.cri_socket else None,
        kubeconfig=check_setting(args.kubeconfig, "--kubeconfig") if args.kubeconfig else None,
        node_name=v.node_name(args.node_name, "--node-name") if args.node_name else None)
    with host_lock(args, "kbootd reset" + (f" phase {only}" if only else "")):
        engine.run_reset(opts, reporter=_reporter(args), root=args.root or "/", dry_run=args.dry_run,
                         only=only, skip_phases=tuple(args.skip_phases or ()))
    return 0


def reset(args: argparse.Namespace) -> int:
    return _reset(args)


def init(args: argparse.Namespace) -> int:
    return _run_workflow(args, "init")


def join(args: argparse.Namespace) -> int:
    return _run_workflow(args, "join")


def phase(args: argparse.Namespace) -> int:
    from kbootd import workflow
    from kbootd.phases import WORKFLOWS

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


def token(args: argparse.Namespace) -> int:  # pragma: no cover - argparse requires a subcommand
    raise ValidationError("token: a subcommand is required")


def token_generate(args: argparse.Namespace) -> int:
    from kbootd.token import BootstrapToken

    # Printing the secret is the purpose of this command; stdout is the operator's.
    sys.stdout.write(BootstrapToken.generate().full + "\n")
    return 0


def _api_context(args: argparse.Namespace, dry_run: bool = False):
    from kbootd.context import make_context

    return make_context(root=args.root or "/", reporter=_reporter(args), dry_run=dry_run)


def _kubeconfig(args: argparse.Namespace, ctx) -> str:
    if args.kubeconfig:
        # A user-given file is read through the root like every host path.
        return args.kubeconfig if args.kubeconfig.startswith("/") else os.path.abspath(args.kubeconfig)
    return ctx.paths.admin_conf


def token_create(args: argparse.Namespace) -> int:
    from kbootd.cluster import tokens
    from kbootd.duration import parse_duration

    ctx = _api_context(args)
    kw: dict[str, Any] = {"ttl": parse_duration(args.ttl, what="--ttl"), "description": args.description,
                          "print_join_command": args.print_join_command}
    if args.usages is not None:
        kw["usages"] = args.usages
    if args.groups is not None:
        kw["groups"] = args.groups
    # The new token (or join command) is this command's output: straight to stdout, unredacted.
    sys.stdout.write(tokens.run_create(ctx, _kubeconfig(args, ctx), args.token, **kw))
    return 0


def token_list(args: argparse.Namespace) -> int:
    from kbootd.cluster import tokens

    ctx = _api_context(args)
    sys.stdout.write(tokens.run_list(ctx, _kubeconfig(args, ctx), args.output))
    return 0


def token_delete(args: argparse.Namespace) -> int:
    from kbootd.cluster import tokens

    ctx = _api_context(args, dry_run=args.dry_run)
    sys.stdout.write(tokens.run_delete(ctx, _kubeconfig(args, ctx), args.tokens))
    return 0


def config_view(args: argparse.Namespace) -> int:
    from kbootd import apiclient

    ctx = _api_context(args)
    client = apiclient.client_for(ctx, _kubeconfig(args, ctx))
    try:
        cm = client.get("ConfigMap", "kubeadm-config", "kube-system")
    finally:
        client.close()
    if not cm or "ClusterConfiguration" not in (cm.get("data") or {}):
        raise KbootdError("the cluster has no kube-system/kubeadm-config ConfigMap (was it set up by kbootd or kubeadm?)")
    sys.stdout.write(cm["data"]["ClusterConfiguration"])
    return 0


def config_upload(args: argparse.Namespace) -> int:
    from kbootd.cluster import uploadconfig
    from kbootd.context import make_context

    rep = _reporter(args)
    if args.upload_from == "from-file":
        from kbootd.config.load import load_file

        cfg = load_file(args.config, "init", lambda m: rep.warn("config", m))
    else:
        args.config = None
        cfg = load_init(args, rep)
    ctx = make_context(root=args.root or "/", reporter=rep, dry_run=args.dry_run, init=cfg)
    if args.kubeconfig and not args.dry_run:
        from kbootd import apiclient

        ctx.data.api_client = apiclient.client_for(ctx, _kubeconfig(args, ctx))
    uploadconfig.upload_all(ctx)
    return 0


def config(args: argparse.Namespace) -> int:  # pragma: no cover
    raise ValidationError("config: a subcommand is required")


def config_print_init(args: argparse.Namespace) -> int:
    from kbootd.config.model import InitConfig
    from kbootd.config.printer import dump, init_defaults_docs

    sys.stdout.write(dump(init_defaults_docs(InitConfig())))
    return 0


def config_print_join(args: argparse.Namespace) -> int:
    from kbootd.config.model import JoinConfig
    from kbootd.config.printer import dump, join_defaults_doc

    sys.stdout.write(dump([join_defaults_doc(JoinConfig())]))
    return 0


def config_migrate(args: argparse.Namespace) -> int:
    from kbootd.config.load import read_config_file
    from kbootd.config.migrate import migrate

    rep = _reporter(args)
    try:
        text = read_config_file(args.old_config)
    except ValidationError as e:
        raise ValidationError(str(e).replace("--config:", "--old-config:", 1)) from None
    out = migrate(args.old_config, lambda m: rep.warn("config", m), text)
    if not args.new_config:
        sys.stdout.write(out)
        return 0
    try:
        # 0600: the file may hold bootstrap tokens, as the old one did.
        fd = os.open(args.new_config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # also when the file already existed with a wider mode
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(out)
    except OSError as e:
        raise ValidationError(f"--new-config: {args.new_config}: cannot write: {e}") from None
    return 0


def config_validate(args: argparse.Namespace) -> int:
    from kbootd.config.migrate import validate

    rep = _reporter(args)
    validate(args.config, lambda m: rep.warn("config", m))
    sys.stdout.write("ok\n")
    return 0


def config_images_list(args: argparse.Namespace) -> int:
    from kbootd.images import images_for

    rep = _reporter(args)
    if args.config:
        if args.kubernetes_version or args.image_repository:
            raise ValidationError("--kubernetes-version/--image-repository: cannot be mixed with --config")
        from kbootd.config.load import load_file

        cfg = load_file(args.config, "init", lambda m: rep.warn("config", m)).cluster
    else:
        from dataclasses import replace

        from kbootd.config import validate as v
        from kbootd.config.model import ClusterConfig

        cfg = ClusterConfig()
        if args.kubernetes_version:
            cfg = replace(cfg, kubernetes_version=v.kubernetes_version(
                args.kubernetes_version, "--kubernetes-version", lambda m: rep.warn("config", m)))
        if args.image_repository:
            cfg = replace(cfg, image_repository=args.image_repository)
    imgs = images_for(cfg, warn=lambda m: rep.warn("images", m))
    if args.output == "text":
        sys.stdout.write("".join(i + "\n" for i in imgs.all()))
    else:
        doc = {"kind": "Images", "apiVersion": "output.kubeadm.k8s.io/v1alpha1", "images": imgs.all()}
        if args.output == "json":
            import json

            sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        else:
            import yaml

            sys.stdout.write(yaml.safe_dump(doc, sort_keys=False))
    return 0


def completion(args: argparse.Namespace) -> int:
    import shtab

    from kbootd.cli.parser import build

    sys.stdout.write(shtab.complete(build(), shell=args.shell))
    return 0


def version(args: argparse.Namespace) -> int:
    from kbootd.version import DEFAULT_KUBERNETES_VERSION, __version__

    info = {
        "gitVersion": f"v{__version__}",
        "defaultKubernetesVersion": DEFAULT_KUBERNETES_VERSION,
        "pythonVersion": sys.version.split()[0],
        "platform": f"{sys.platform}/{_arch(os.uname().machine)}",
    }
    if args.output == "json":
        import json

        sys.stdout.write(json.dumps({"clientVersion": info}, indent=2) + "\n")
    elif args.output == "yaml":
        import yaml

        sys.stdout.write(yaml.safe_dump({"clientVersion": info}, sort_keys=True))
    else:
        body = ", ".join(f'{k[0].upper()}{k[1:]}:"{v}"' for k, v in info.items())
        sys.stdout.write(f"kbootd version: &version.Info{{{body}}}\n")
    return 0


def _arch(machine: str) -> str:
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)
