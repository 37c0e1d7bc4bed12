"""What every phase receives: configuration, paths, the host I/O layer, the reporter,
the phases' shared data and the test seams."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from kbootd.config.model import InitConfig, JoinConfig
from kbootd.hostio import Host
from kbootd.paths import KUBERNETES_DIR, Paths
from kbootd.phasedata import PhaseData
from kbootd.report import Reporter

if TYPE_CHECKING:
    from kbootd.reset import ResetOptions


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Seams:
    """What tests, benchmarks and the daemon stand in for: time, randomness, a few host facts.

    clock/sleep/rand make it usable wherever a retry loop takes its timing.
    """

    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    rand: Callable[[], float] = random.random
    now: Callable[[], datetime] = _utc_now
    backoff: Any = None  # join's retry ceilings (kbootd.join.retry.Backoff); None: the default
    ca_bundle: str | bool = True  # trust store for HTTPS discovery files; True: the host's bundle
    kubelet_healthz_url: str | None = None  # None: the kubelet's default healthz URL
    skip_kubelet_check: bool = False  # no kubelet on this host (tests, the e2e's stand-ins)
    preflight_facts: Any = None  # a stand-in for what preflight asks the machine


@dataclass
class Context:
    paths: Paths
    host: Host
    reporter: Reporter
    init: InitConfig | None = None
    join: JoinConfig | None = None
    reset: ResetOptions | None = None
    dry_run: bool = False
    ignore_preflight_errors: frozenset[str] = frozenset()
    skip_token_print: bool = False
    seams: Seams = field(default_factory=Seams)
    completed: list[str] = field(default_factory=list)
    on_phase_done: Callable[[str], None] | None = None
    data: PhaseData = field(init=False)

    def __post_init__(self) -> None:
        self.data = PhaseData(self)

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

    def close(self) -> None:
        """A long-lived caller (the daemon) must not collect connection pools run after run."""
        client, self.data.api_client = self.data.api_client, None
        if client is not None and hasattr(client, "close"):
            client.close()


def make_context(*, root: str = "/", dry_run: bool = False, reporter: Reporter,
                 init: InitConfig | None = None, join: JoinConfig | None = None,
                 reset: ResetOptions | None = None, ignore_preflight_errors: tuple[str, ...] = (),
                 skip_token_print: bool = False, kubernetes_dir: str | None = None,
                 seams: Seams | None = None) -> Context:
    paths = Paths.rooted(root, kubernetes_dir or KUBERNETES_DIR)
    host = Host(paths, dry_run=dry_run, say=reporter.out)
    return Context(paths=paths, host=host, reporter=reporter, init=init, join=join, reset=reset, dry_run=dry_run,
                   ignore_preflight_errors=frozenset(x.lower() for x in ignore_preflight_errors),
                   skip_token_print=skip_token_print, seams=seams or Seams())
