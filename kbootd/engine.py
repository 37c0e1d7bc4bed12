"""Run init or join: the one entry the CLI and the daemon share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kbootd.config.model import InitConfig, JoinConfig
from kbootd.context import Context, make_context
from kbootd.errors import KbootdError
from kbootd.report import Reporter


def run(role: str, cfg: InitConfig | JoinConfig, *, reporter: Reporter, root: str = "/",
        dry_run: bool = False, ignore_preflight_errors: tuple[str, ...] = (),
        skip_phases: tuple[str, ...] = (), only: str | None = None, skip_token_print: bool = False,
        kubernetes_dir: str | None = None, on_phase_done: Callable[[str], None] | None = None,
        store: dict[str, Any] | None = None) -> Context:
    """Run the workflow of `role` ("init" or "join"); returns the context (its store holds products)."""
    from kbootd import workflow
    from kbootd.phases import WORKFLOWS

    phases = WORKFLOWS[role]
    if not phases:
        raise KbootdError(f"kbootd {role}: configuration is valid, but the {role} engine is not built yet "
                          "(see the feature table in the README)")
    ctx = make_context(
        root=root, dry_run=dry_run, reporter=reporter,
        init=cfg if isinstance(cfg, InitConfig) else None,
        join=cfg if isinstance(cfg, JoinConfig) else None,
        ignore_preflight_errors=tuple(ignore_preflight_errors) + tuple(cfg.node.ignore_preflight_errors),
        skip_token_print=skip_token_print, kubernetes_dir=kubernetes_dir,
    )
    ctx.on_phase_done = on_phase_done
    if store:
        ctx.store.update(store)
    try:
        workflow.run(phases, ctx, only=only, skip=tuple(skip_phases) + tuple(cfg.skip_phases))
    finally:
        # A long-lived caller (the daemon) must not collect connection pools run after run.
        client = ctx.store.pop("api_client", None)
        if client is not None and hasattr(client, "close"):
            client.close()
    return ctx


def run_reset(opts: Any, *, reporter: Reporter, root: str = "/", dry_run: bool = False,
              only: str | None = None, skip_phases: tuple[str, ...] = ()) -> Context:
    from kbootd import workflow
    from kbootd.phases import RESET

    ctx = make_context(root=root, dry_run=dry_run, reporter=reporter)
    ctx.store["reset"] = opts
    workflow.run(RESET, ctx, only=only, skip=skip_phases)
    return ctx
