"""The order of init and join: one declaration each. Implementations are imported when run."""

from __future__ import annotations

from kbootd.workflow import Phase

INIT: tuple[Phase, ...] = ()

JOIN: tuple[Phase, ...] = ()

WORKFLOWS = {"init": INIT, "join": JOIN}
