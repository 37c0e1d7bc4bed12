"""Run a table of checks the way kubeadm does: collect everything, then fail once.

A check is data: a kubeadm name, a function returning its problems, and the severity
of those problems. Every check runs even after one fails, so a user sees the whole list
at once. Warnings (and errors the user ignores with --ignore-preflight-errors) print as
kubeadm prints them, `\t[WARNING Swap]: ...`; the remaining errors are raised together
in one PreflightError (exit code 2).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from kbootd.errors import KbootdError, PreflightError

if TYPE_CHECKING:
    from kbootd.context import Context
    from kbootd.preflight.facts import Facts

PHASE = "preflight"
Severity = Literal["error", "warning"]
ERROR: Severity = "error"
WARNING: Severity = "warning"
CheckFn = Callable[["Context", "Facts"], list[str]]


@dataclass(frozen=True)
class Check:
    name: str  # kubeadm's name: what --ignore-preflight-errors takes
    run: CheckFn
    severity: Severity


class NotChecked(Exception):  # noqa: N818 - an outcome, not a failure
    """A check could not look (e.g. a host-only fact under --root).

    `warn` makes it a kubeadm-style warning (kubeadm warns when it cannot get the
    kubelet version); otherwise it is only listed in one "not checked" line.
    """

    def __init__(self, reason: str, *, warn: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.warn = warn


@dataclass
class Outcome:
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (check name, message)
    errors: list[tuple[str, str]] = field(default_factory=list)
    not_checked: dict[str, list[str]] = field(default_factory=dict)  # reason -> check names


def evaluate(ctx: Context, checks: list[Check], facts: Facts) -> Outcome:
    """Run every check; sort its problems into warnings and (unignored) errors."""
    out = Outcome()
    for check in checks:
        try:
            problems = check.run(ctx, facts)
        except NotChecked as e:
            if e.warn:
                out.warnings.append((check.name, e.reason))
            else:
                names = out.not_checked.setdefault(e.reason, [])
                if check.name not in names:
                    names.append(check.name)
            continue
        except (KbootdError, OSError) as e:
            # A check that cannot read what it needs has found a problem, not a bug.
            problems = [str(e)]
        fatal = check.severity == ERROR and not ctx.ignores(check.name)
        for msg in problems:
            (out.errors if fatal else out.warnings).append((check.name, msg))
    return out


def error_block(errors: list[tuple[str, str]]) -> str:
    lines = "".join(f"\n\t[ERROR {name}]: {msg}" for name, msg in errors)
    return f"[preflight] Some fatal errors occurred:{lines}"


def ignore_hint(errors: list[tuple[str, str]]) -> str:
    names = ",".join(dict.fromkeys(name for name, _ in errors))
    return ("[preflight] If you know what you are doing, you can make a check non-fatal with "
            f"`--ignore-preflight-errors=...` (here: --ignore-preflight-errors={names})")


def run_checks(ctx: Context, checks: list[Check], facts: Facts) -> Outcome:
    """Print warnings and what was not checked; raise PreflightError listing every error."""
    out = evaluate(ctx, checks, facts)
    for name, msg in out.warnings:
        ctx.reporter.out(f"\t[WARNING {name}]: {msg}")
    for reason, names in out.not_checked.items():
        ctx.reporter.info(PHASE, f"Not checked ({reason}): {', '.join(names)}")
    if out.errors:
        raise PreflightError(error_block(out.errors), hint=ignore_hint(out.errors))
    return out
