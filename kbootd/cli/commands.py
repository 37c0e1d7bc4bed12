"""The light commands: `version`, `token generate` and the bare `token`/`config` groups.

`kbootd version` and `kbootd token generate` reach these through cli/main.py's fast path,
before argparse, so this module imports only what they need (no `typing`, `re`,
`dataclasses`, `argparse`); every other command lives in its area's module
(cli/workflows.py, cli/tokens.py, cli/configcmds.py, cli/completion.py).
"""

from __future__ import annotations

import os
import sys

from kbootd.errors import ValidationError
from kbootd.token import BootstrapToken
from kbootd.version import DEFAULT_KUBERNETES_VERSION, __version__

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing `typing` on the fast path
if TYPE_CHECKING:
    import argparse


def token(args: argparse.Namespace) -> int:  # pragma: no cover - argparse requires a subcommand
    raise ValidationError("token: a subcommand is required")


def token_generate(args: argparse.Namespace) -> int:
    # Printing the secret is the purpose of this command; stdout is the operator's.
    sys.stdout.write(BootstrapToken.generate().full + "\n")
    return 0


def config(args: argparse.Namespace) -> int:  # pragma: no cover
    raise ValidationError("config: a subcommand is required")


def version(args: argparse.Namespace) -> int:
    info = {
        "gitVersion": f"v{__version__}",
        "defaultKubernetesVersion": DEFAULT_KUBERNETES_VERSION,
        "pythonVersion": sys.version.split()[0],
        "platform": f"{sys.platform}/{_arch(os.uname().machine)}",
    }
    if args.output == "json":
        import json  # json imports `re`: only for -o json, off the fast path

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
