"""What the CLI's handler modules share: the console reporter, the API context, the kubeconfig path."""

from __future__ import annotations

import argparse
import os

from kbootd.context import Context, make_context
from kbootd.report import ConsoleReporter


def reporter(args: argparse.Namespace) -> ConsoleReporter:
    return ConsoleReporter(getattr(args, "verbosity", 0) or 0)


def api_context(args: argparse.Namespace, dry_run: bool = False) -> Context:
    return make_context(root=args.root or "/", reporter=reporter(args), dry_run=dry_run)


def kubeconfig_path(args: argparse.Namespace, ctx: Context) -> str:
    if args.kubeconfig:
        # A user-given file is read through the root like every host path.
        return args.kubeconfig if args.kubeconfig.startswith("/") else os.path.abspath(args.kubeconfig)
    return ctx.paths.admin_conf
