"""Entry point: parse, dispatch, and turn errors into one clear line and an exit code."""

from __future__ import annotations

import sys

from kbootd.cli import commands
from kbootd.errors import exit_code_for, render
from kbootd.redact import install_filter


def _verbosity(argv: list[str]) -> int:
    for i, a in enumerate(argv):
        if a in ("-v", "--verbosity") and i + 1 < len(argv):
            try:
                return int(argv[i + 1])
            except ValueError:
                return 0
        if a.startswith(("--verbosity=", "-v=")):
            try:
                return int(a.split("=", 1)[1])
            except ValueError:
                return 0
    return 0


# Commands that run without building the argparse tree (argparse and `re` cost more than
# the rest of these commands together); any other spelling goes through the parser.
FAST_PATHS = {("version",): "version", ("token", "generate"): "token_generate"}


class _FastArgs:
    """The namespace a fast-path handler reads (types.SimpleNamespace would import `types`)."""

    output = None
    verbosity = 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    fast = FAST_PATHS.get(tuple(argv))
    if fast:
        return int(getattr(commands, fast)(_FastArgs()) or 0)
    # argparse (and `re`, `gettext` under it) only off the fast path.
    from kbootd.cli.parser import COMMANDS, build

    first = next((a for a in argv if not a.startswith("-")), None)
    parser = build(only=first if first in COMMANDS else None)
    verbosity = _verbosity(argv)
    try:
        args = parser.parse_args(argv)
        verbosity = getattr(args, "verbosity", verbosity) or 0
        if verbosity:
            _setup_logging(verbosity)
        mod, _, fn = args._handler.partition(":")
        import importlib  # dispatch: a handler's module is imported only when its command runs

        handler = getattr(importlib.import_module(mod), fn)
        return int(handler(args) or 0)
    except KeyboardInterrupt as e:
        sys.stderr.write("interrupted\n")
        return exit_code_for(e)
    except BrokenPipeError:
        return 1
    except Exception as e:  # KbootdError: the user's to fix; anything else: a bug, said as such
        sys.stderr.write(render(e, verbosity))
        return exit_code_for(e)


def _setup_logging(verbosity: int) -> None:
    import logging  # logging imports `re`, `traceback`, `threading`: only with -v

    level = logging.DEBUG if verbosity >= 4 else logging.INFO if verbosity >= 2 else logging.WARNING
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname).1s %(name)s: %(message)s")
    install_filter()
