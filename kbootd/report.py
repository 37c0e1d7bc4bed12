"""One reporter interface for phase progress; the console form prints kubeadm-style lines.

The journald/sd_notify reporter (daemon) implements the same interface. Everything a
reporter emits passes through secret redaction.
"""

from __future__ import annotations

import io
import sys
from typing import Protocol, TextIO

from kbootd.redact import redact


class Reporter(Protocol):
    def phase_start(self, phase: str) -> None: ...
    def phase_done(self, phase: str, seconds: float) -> None: ...
    def phase_skipped(self, phase: str, why: str) -> None: ...
    def phase_failed(self, phase: str, err: BaseException) -> None: ...
    def info(self, phase: str, msg: str) -> None: ...
    def warn(self, phase: str, msg: str) -> None: ...
    def retry(self, phase: str, attempt: int, cause: str, next_in: float) -> None: ...
    def out(self, text: str) -> None: ...


class ConsoleReporter:
    """`[certs] Generating "apiserver" certificate and key` on stdout; warnings on stderr."""

    def __init__(self, verbosity: int = 0, stdout: TextIO | None = None, stderr: TextIO | None = None) -> None:
        self.verbosity = verbosity
        self._stdout = stdout
        self._stderr = stderr

    @property
    def stdout(self) -> TextIO:
        return self._stdout or sys.stdout

    @property
    def stderr(self) -> TextIO:
        return self._stderr or sys.stderr

    def _print(self, text: str, err: bool = False) -> None:
        stream = self.stderr if err else self.stdout
        stream.write(redact(text) + "\n")
        stream.flush()

    def phase_start(self, phase: str) -> None:
        if self.verbosity >= 1:
            self._print(f"[{phase}] phase started")

    def phase_done(self, phase: str, seconds: float) -> None:
        if self.verbosity >= 1:
            self._print(f"[{phase}] phase done in {seconds * 1000:.0f} ms")

    def phase_skipped(self, phase: str, why: str) -> None:
        self._print(f"[{phase}] Skipping phase: {why}")

    def phase_failed(self, phase: str, err: BaseException) -> None:
        if self.verbosity >= 1:
            self._print(f"[{phase}] phase failed: {err}", err=True)

    def info(self, phase: str, msg: str) -> None:
        self._print(f"[{phase}] {msg}")

    def warn(self, phase: str, msg: str) -> None:
        self._print(f"[{phase}] WARNING: {msg}", err=True)

    def retry(self, phase: str, attempt: int, cause: str, next_in: float) -> None:
        self._print(f"[{phase}] {cause}, attempt {attempt}, next in {next_in:.1f} s")

    def out(self, text: str) -> None:
        self._print(text)


class RecordingReporter(ConsoleReporter):
    """Keeps every event; for tests and for the daemon's status file."""

    def __init__(self, verbosity: int = 0) -> None:
        super().__init__(verbosity, io.StringIO(), io.StringIO())
        self.events: list[tuple[str, str, str]] = []

    def phase_start(self, phase: str) -> None:
        self.events.append(("start", phase, ""))

    def phase_done(self, phase: str, seconds: float) -> None:
        self.events.append(("done", phase, ""))

    def phase_skipped(self, phase: str, why: str) -> None:
        self.events.append(("skipped", phase, why))
        super().phase_skipped(phase, why)

    def phase_failed(self, phase: str, err: BaseException) -> None:
        self.events.append(("failed", phase, redact(str(err))))

    def info(self, phase: str, msg: str) -> None:
        self.events.append(("info", phase, redact(msg)))
        super().info(phase, msg)

    def warn(self, phase: str, msg: str) -> None:
        self.events.append(("warn", phase, redact(msg)))
        super().warn(phase, msg)

    def retry(self, phase: str, attempt: int, cause: str, next_in: float) -> None:
        self.events.append(("retry", phase, redact(cause)))
        super().retry(phase, attempt, cause, next_in)

    def text(self) -> str:
        return self.stdout.getvalue() + self.stderr.getvalue()  # type: ignore[attr-defined]
