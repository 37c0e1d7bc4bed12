"""`kbootd config view | upload | print | migrate | validate | images list`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace

from kbootd import apiclient
from kbootd.cli.common import api_context, kubeconfig_path, reporter
from kbootd.cli.workflows import load_init
from kbootd.cluster import uploadconfig
from kbootd.config import validate as v
from kbootd.config.load import load_file, read_config_file
from kbootd.config.migrate import migrate, validate
from kbootd.config.model import ClusterConfig, InitConfig, JoinConfig
from kbootd.config.printer import dump, init_defaults_docs, join_defaults_doc
from kbootd.context import make_context
from kbootd.errors import KbootdError, ValidationError
from kbootd.images import images_for


def config_view(args: argparse.Namespace) -> int:
    ctx = api_context(args)
    client = apiclient.client_for(ctx, kubeconfig_path(args, ctx))
    try:
        cm = client.get("ConfigMap", "kubeadm-config", "kube-system")
    finally:
        client.close()
    if not cm or "ClusterConfiguration" not in (cm.get("data") or {}):
        raise KbootdError("the cluster has no kube-system/kubeadm-config ConfigMap (was it set up by kbootd or kubeadm?)")
    sys.stdout.write(cm["data"]["ClusterConfiguration"])
    return 0


def config_upload(args: argparse.Namespace) -> int:
    rep = reporter(args)
    if args.upload_from == "from-file":
        cfg = load_file(args.config, "init", lambda m: rep.warn("config", m))
    else:
        args.config = None
        cfg = load_init(args, rep)
    ctx = make_context(root=args.root or "/", reporter=rep, dry_run=args.dry_run, init=cfg)
    if args.kubeconfig and not args.dry_run:
        ctx.data.api_client = apiclient.client_for(ctx, kubeconfig_path(args, ctx))
    uploadconfig.upload_all(ctx)
    return 0


def config_print_init(args: argparse.Namespace) -> int:
    sys.stdout.write(dump(init_defaults_docs(InitConfig())))
    return 0


def config_print_join(args: argparse.Namespace) -> int:
    sys.stdout.write(dump([join_defaults_doc(JoinConfig())]))
    return 0


def config_migrate(args: argparse.Namespace) -> int:
    rep = reporter(args)
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
    rep = reporter(args)
    validate(args.config, lambda m: rep.warn("config", m))
    sys.stdout.write("ok\n")
    return 0


def config_images_list(args: argparse.Namespace) -> int:
    rep = reporter(args)
    if args.config:
        if args.kubernetes_version or args.image_repository:
            raise ValidationError("--kubernetes-version/--image-repository: cannot be mixed with --config")
        cfg = load_file(args.config, "init", lambda m: rep.warn("config", m)).cluster
    else:
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
            sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        else:
            import yaml

            sys.stdout.write(yaml.safe_dump(doc, sort_keys=False))
    return 0


