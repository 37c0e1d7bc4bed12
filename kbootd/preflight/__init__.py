"""Preflight: kubeadm's pre-flight checks for `init` and `join`. Changes nothing on the host.

Phase entry points: run_init and run_join (declared in kbootd.phases).
The checks come from tables.py, run through runner.py, and ask the machine through a
Facts object: HostFacts by default, or the stand-in a caller (a test) put in
ctx.seams.preflight_facts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbootd.preflight.facts import HostFacts
from kbootd.preflight.runner import PHASE, run_checks
from kbootd.preflight.tables import init_checks, join_checks

if TYPE_CHECKING:
    from kbootd.context import Context
    from kbootd.preflight.facts import Facts

def facts_for(ctx: Context) -> Facts:
    if ctx.seams.preflight_facts is not None:
        return ctx.seams.preflight_facts
    if ctx.data.preflight_facts is None:
        ctx.data.preflight_facts = HostFacts(ctx)
    return ctx.data.preflight_facts


def run_init(ctx: Context) -> None:
    ctx.reporter.info(PHASE, "Running pre-flight checks")
    run_checks(ctx, init_checks(ctx), facts_for(ctx))


def run_join(ctx: Context) -> None:
    ctx.reporter.info(PHASE, "Running pre-flight checks")
    run_checks(ctx, join_checks(ctx), facts_for(ctx))
