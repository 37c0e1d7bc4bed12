"""The daemon's Reporter (kbootd.report protocol): journald records, sd_notify STATUS, status.json.

STATUS reads `<init|join>: <phase>` while a phase runs and
`join: discovery: waiting for https://10.0.0.10:6443: connection refused, attempt 12`
while one retries. Retries update STATUS on every attempt; status.json at once when the
cause changes and otherwise at most every RETRY_FILE_EVERY seconds (its attempt count may
lag STATUS by that much; a 1.5 s retry loop need not rewrite it each time); the journal
only when the cause changes, for the first attempts, and then every few minutes: a worker
may wait for its control plane for days.

A record named after a phase that has finished (join's kubelet-start re-runs the cri
steps with the cluster's settings) belongs to the phase running now: it gets that phase
and its duration, and KBOOTD_STEP names the step.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from kbootd.daemon.journal import DEBUG, Journal
from kbootd.daemon.notify import Heartbeat, Notifier
from kbootd.daemon.status import RETRYING, RUNNING, WAITING, StatusBoard
from kbootd.redact import redact

RETRY_LOG_FIRST = 5
RETRY_LOG_EVERY = 300.0  # seconds
RETRY_FILE_EVERY = 5.0  # status.json on retries: a fast retry loop need not rewrite it each time


class DaemonReporter:
    def __init__(self, engine_role: str, journal: Journal, notifier: Notifier, board: StatusBoard,
                 *, heartbeat: Heartbeat | None = None, resumed: frozenset[str] = frozenset(),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.engine_role = engine_role
        self.journal = journal
        self.notifier = notifier
        self.board = board
        self.heartbeat = heartbeat
        self.resumed = resumed
        self._clock = clock
        self._started: dict[str, float] = {}
        self._attempts: dict[str, int] = {}
        self._last_cause: dict[str, str] = {}
        self._last_logged: dict[str, float] = {}
        self._last_written = -RETRY_FILE_EVERY
        self._finished: set[str] = set()
        self.current: str | None = None

    # --- helpers ------------------------------------------------------------------------
    def _elapsed_ms(self, phase: str) -> int:
        t = self._started.get(phase)
        return int((self._clock() - t) * 1000) if t is not None else 0

    def _touch(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.touch()

    def _owner(self, phase: str) -> tuple[str, dict[str, str]]:
        """(the phase a record belongs to, extra fields): see the module docstring."""
        if phase in self._finished and self.current and self.current not in self._finished:
            return self.current, {"step": phase}
        return phase, {}

    def _status(self, text: str, **board: object) -> None:
        self.notifier.status(text)
        self.board.update(detail=text, **board)

    # --- Reporter -----------------------------------------------------------------------
    def phase_start(self, phase: str) -> None:
        self._touch()
        self._started[phase] = self._clock()
        self._attempts[phase] = 0
        self.current = phase
        self.journal.log("start", f"{self.engine_role}: {phase}: started", phase=phase)
        self._status(f"{self.engine_role}: {phase}", state=RUNNING, phase=phase, attempt=0)

    def phase_done(self, phase: str, seconds: float) -> None:
        self._touch()
        ms = int(seconds * 1000)
        self.journal.log("done", f"{self.engine_role}: {phase}: done in {ms} ms", phase=phase,
                         attempt=self._attempts.get(phase, 0), duration_ms=ms)
        self._finished.add(phase)
        done = list(self.board.data.get("phases_done") or [])
        self.board.update(phases_done=[*done, phase], state=RUNNING, attempt=0)

    def phase_skipped(self, phase: str, why: str) -> None:
        self._touch()
        if phase in self.resumed:
            why = "done before kbootd restarted"
        self.journal.log("skipped", f"{self.engine_role}: {phase}: skipped: {why}", phase=phase)

    def phase_failed(self, phase: str, err: BaseException) -> None:
        self._touch()
        self.journal.log("failed", f"{self.engine_role}: {phase}: failed: {err}", phase=phase,
                         attempt=self._attempts.get(phase, 0), duration_ms=self._elapsed_ms(phase))

    def info(self, phase: str, msg: str) -> None:
        self._touch()
        phase, extra = self._owner(phase)
        self.journal.log("info", msg, phase=phase, attempt=self._attempts.get(phase, 0),
                         duration_ms=self._elapsed_ms(phase), **extra)

    def warn(self, phase: str, msg: str) -> None:
        self._touch()
        phase, extra = self._owner(phase)
        self.journal.log("warn", msg, phase=phase, attempt=self._attempts.get(phase, 0),
                         duration_ms=self._elapsed_ms(phase), **extra)

    def retry(self, phase: str, attempt: int, cause: str, next_in: float) -> None:
        self._touch()
        self._attempts[phase] = attempt
        cause = redact(cause)
        text = f"{self.engine_role}: {phase}: {cause}, attempt {attempt}"
        now = self._clock()
        changed = self._last_cause.get(phase) != cause
        due = now - self._last_logged.get(phase, -RETRY_LOG_EVERY) >= RETRY_LOG_EVERY
        if changed or attempt <= RETRY_LOG_FIRST or due:
            self._last_cause[phase] = cause
            self._last_logged[phase] = now
            self.journal.log("retry", f"{text}; next in {next_in:.0f} s", phase=phase, attempt=attempt,
                             duration_ms=self._elapsed_ms(phase))
        self.notifier.status(text)
        if changed or now - self._last_written >= RETRY_FILE_EVERY:
            self._last_written = now
            self.board.update(detail=text, state=WAITING, phase=phase, attempt=attempt)

    def out(self, text: str) -> None:
        # Engine output meant for a console (dry-run listings, "[host] Would run ..."): debug level.
        self.journal.log("info", text, phase=self.current or "", priority=DEBUG)

    # --- daemon events --------------------------------------------------------------------
    def retrying_after_failure(self, failures: int, delay: float, last_error: str | None) -> None:
        text = (f"{self.engine_role}: retrying after failure {failures} in {delay:.0f} s"
                + (f": {last_error}" if last_error else ""))
        self.journal.log("retry", text, phase="", attempt=failures)
        self._status(text, state=RETRYING, attempt=failures)
