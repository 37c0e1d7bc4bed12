"""What every phase receives: configuration, paths, the host I/O layer and the reporter."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kbootd.config.model import InitConfig, JoinConfig
from kbootd.hostio import Host
from kbootd.paths import Paths
from kbootd.report import Reporter


@dataclass
class Context:
    paths: Paths
    host: Host
    reporter: Reporter
    init: InitConfig | None = None
    join: JoinConfig | None = None
    dry_run: bool = False
    ignore_preflight_errors: frozenset[str] = frozenset()
    skip_token_print: bool = False
    # Products one phase hands to later ones (the chosen token, the CA pin, ...).
    store: dict[str, Any] = field(default_factory=dict)
    completed: list[str] = field(default_factory=list)
    on_phase_done: Callable[[str], None] | None = None

    def phase_done(self, path: str) -> None:
        self.completed.append(path)
        if self.on_phase_done:
            self.on_phase_done(path)

    @property
    def cfg(self) -> InitConfig:
        if self.init is None:
            raise RuntimeError("this phase needs an init configuration")
        return self.init

    def ignores(self, check: str) -> bool:
        return "all" in self.ignore_preflight_errors or check.lower() in self.ignore_preflight_errors


def make_context(*, root: str = "/", dry_run: bool = False, reporter: Reporter,
                 init: InitConfig | None = None, join: JoinConfig | None = None,
                 ignore_preflight_errors: tuple[str, ...] = (), skip_token_print: bool = False,
                 kubernetes_dir: str | None = None) -> Context:
    from kbootd.paths import KUBERNETES_DIR

    paths = Paths.rooted(root, kubernetes_dir or KUBERNETES_DIR)
    host = Host(paths, dry_run=dry_run, say=reporter.out)
    return Context(paths=paths, host=host, reporter=reporter, init=init, join=join, dry_run=dry_run,
                   ignore_preflight_errors=frozenset(x.lower() for x in ignore_preflight_errors),
                   skip_token_print=skip_token_print)
