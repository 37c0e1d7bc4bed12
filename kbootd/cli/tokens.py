"""`kbootd token create | list | delete`: bootstrap tokens on the cluster (`token generate` is in cli/commands.py)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from kbootd.cli.common import api_context, kubeconfig_path
from kbootd.cluster import tokens
from kbootd.duration import parse_duration


def token_create(args: argparse.Namespace) -> int:
    ctx = api_context(args)
    kw: dict[str, Any] = {"ttl": parse_duration(args.ttl, what="--ttl"), "description": args.description,
                          "print_join_command": args.print_join_command}
    if args.usages is not None:
        kw["usages"] = args.usages
    if args.groups is not None:
        kw["groups"] = args.groups
    # The new token (or join command) is this command's output: straight to stdout, unredacted.
    sys.stdout.write(tokens.run_create(ctx, kubeconfig_path(args, ctx), args.token, **kw))
    return 0


def token_list(args: argparse.Namespace) -> int:
    ctx = api_context(args)
    sys.stdout.write(tokens.run_list(ctx, kubeconfig_path(args, ctx), args.output))
    return 0


def token_delete(args: argparse.Namespace) -> int:
    ctx = api_context(args, dry_run=args.dry_run)
    sys.stdout.write(tokens.run_delete(ctx, kubeconfig_path(args, ctx), args.tokens))
    return 0


