"""Run init, join or reset: the one entry the CLI and the daemon share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kbootd import workflow
from kbootd.config.model import InitConfig, JoinConfig
from kbootd.context import Context, Seams, make_context
from kbootd.phases import RESET, WORKFLOWS
from kbootd.report import Reporter
from kbootd.reset import ResetOptions


def run(role: str, cfg: InitConfig | JoinConfig, *, reporter: Reporter, root: str = "/",
        dry_run: bool = False, ignore_preflight_errors: tuple[str, ...] = (),
        skip_phases: tuple[str, ...] = (), only: str | None = None, skip_token_print: bool = False,
        kubernetes_dir: str | None = None, on_phase_done: Callable[[str], None] | None = None,
        seams: Seams | None = None, api_client: Any = None) -> Context:
    """Run the workflow of `role` ("init" or "join"); returns the context (its data holds products).

    `api_client` hands init's cluster phases a client already built (tests; closed at the end).
    """
    ctx = make_context(
        root=root, dry_run=dry_run, reporter=reporter,
        init=cfg if isinstance(cfg, InitConfig) else None,
        join=cfg if isinstance(cfg, JoinConfig) else None,
        ignore_preflight_errors=tuple(ignore_preflight_errors) + tuple(cfg.node.ignore_preflight_errors),
        skip_token_print=skip_token_print, kubernetes_dir=kubernetes_dir, seams=seams,
    )
    ctx.on_phase_done = on_phase_done
    ctx.data.api_client = api_client
    try:
        workflow.run(WORKFLOWS[role], ctx, only=only, skip=tuple(skip_phases) + tuple(cfg.skip_phases))
    finally:
        ctx.close()
    return ctx


def run_reset(opts: ResetOptions, *, reporter: Reporter, root: str = "/", dry_run: bool = False,
              only: str | None = None, skip_phases: tuple[str, ...] = ()) -> Context:
    ctx = make_context(root=root, dry_run=dry_run, reporter=reporter, reset=opts)
    workflow.run(RESET, ctx, only=only, skip=skip_phases)
    return ctx
