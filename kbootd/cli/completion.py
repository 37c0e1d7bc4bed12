"""`kbootd completion`: shell completion generated from the argparse tree."""

from __future__ import annotations

import argparse
import sys

import shtab

from kbootd.cli.parser import build


def completion(args: argparse.Namespace) -> int:
    sys.stdout.write(shtab.complete(build(), shell=args.shell))
    return 0
