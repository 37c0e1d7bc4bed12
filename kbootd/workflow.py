"""Phases as data, and the runner that walks them.

A workflow (init, join, reset) is one tuple of Phase declarations (kbootd.phases). A phase
holds the function that implements it and, optionally, a predicate that gives a reason to
skip it. Sub-phases are addressed as "parent/child".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kbootd.errors import KbootdError, PhaseError, ValidationError

if TYPE_CHECKING:
    from kbootd.context import Context

Step = Callable[["Context"], None]
SkipIf = Callable[["Context"], "str | None"]


@dataclass(frozen=True)
class Phase:
    name: str
    summary: str
    run: Step | None = None  # called with the context
    skip_if: SkipIf | None = None  # the phase is skipped when it returns a reason
    children: tuple[Phase, ...] = ()

    def walk(self, prefix: str = "") -> Iterator[tuple[str, Phase]]:
        path = f"{prefix}{self.name}"
        yield path, self
        for c in self.children:
            yield from c.walk(path + "/")


def all_phases(workflow: tuple[Phase, ...]) -> list[tuple[str, Phase]]:
    return [item for p in workflow for item in p.walk()]


def find(workflow: tuple[Phase, ...], name: str, what: str) -> Phase:
    for path, p in all_phases(workflow):
        if path == name:
            return p
    names = ", ".join(path for path, _ in all_phases(workflow))
    raise ValidationError(f"{what}: no phase named {name!r}; phases are: {names}")


def check_skips(workflow: tuple[Phase, ...], skips: tuple[str, ...] | list[str], what: str) -> None:
    for s in skips:
        find(workflow, s, what)


def run(workflow: tuple[Phase, ...], ctx: Context, *, only: str | None = None,
        skip: tuple[str, ...] | list[str] = ()) -> None:
    """Run the whole workflow, or one phase (with its sub-phases) when `only` is given."""
    check_skips(workflow, skip, "--skip-phases")
    if only is not None:
        targets = [(only, find(workflow, only, "phase"))]
    else:
        targets = [(p.name, p) for p in workflow]
    for path, phase in targets:
        _run_one(path, phase, ctx, set(skip))


def _run_one(path: str, phase: Phase, ctx: Context, skip: set[str]) -> None:
    rep = ctx.reporter
    if path in skip:
        rep.phase_skipped(path, "skipped by --skip-phases")
        return
    if phase.skip_if:
        why = phase.skip_if(ctx)
        if why:
            rep.phase_skipped(path, why)
            return
    started = time.monotonic()
    rep.phase_start(path)
    try:
        if phase.run:
            phase.run(ctx)
        for child in phase.children:
            _run_one(f"{path}/{child.name}", child, ctx, skip)
    except PhaseError:
        raise
    except KbootdError as e:
        rep.phase_failed(path, e)
        raise PhaseError(path, e) from e
    except OSError as e:
        rep.phase_failed(path, e)
        raise PhaseError(path, KbootdError(f"{e.strerror or e}: {e.filename or ''}".rstrip(": "))) from e
    rep.phase_done(path, time.monotonic() - started)
    ctx.phase_done(path)
