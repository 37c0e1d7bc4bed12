"""Preflight: kubeadm's pre-flight checks for `init` and `join`. Changes nothing on the host.

Phase entry points: "kbootd.preflight:run_init" and "kbootd.preflight:run_join".
The checks come from tables.py, run through runner.py, and ask the machine through a
Facts object: HostFacts by default, or whatever a caller (a test) put in
ctx.store[FACTS_KEY].
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbootd.preflight.runner import PHASE, run_checks

if TYPE_CHECKING:
    from kbootd.context import Context
    from kbootd.preflight.facts import Facts

FACTS_KEY = "preflight.facts"


def facts_for(ctx: Context) -> Facts:
    facts = ctx.store.get(FACTS_KEY)
    if facts is None:
        from kbootd.preflight.facts import HostFacts

        facts = ctx.store[FACTS_KEY] = HostFacts(ctx)
    return facts


def run_init(ctx: Context) -> None:
    from kbootd.preflight.tables import init_checks

    ctx.reporter.info(PHASE, "Running pre-flight checks")
    run_checks(ctx, init_checks(ctx), facts_for(ctx))


def run_join(ctx: Context) -> None:
    from kbootd.preflight.tables import join_checks

    ctx.reporter.info(PHASE, "Running pre-flight checks")
    run_checks(ctx, join_checks(ctx), facts_for(ctx))
