"""Structured log records: journald when running under systemd, plain stderr lines otherwise.

Every record carries the same fields, so `journalctl -u kbootd KBOOTD_EVENT=retry` or
`journalctl MESSAGE_ID=<id>` select one kind of event. Messages and field values pass
through secret redaction before they leave the process. Nothing heavy is imported here:
the lean supervisor uses this module too.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from kbootd.redact import redact

IDENTIFIER = "kbootd"

# One stable MESSAGE_ID per event kind (documented in kbootd/daemon/__init__.py). Never change
# a published id: people filter on them.
MESSAGE_IDS: dict[str, str] = {
    "start": "ea3cee5fc22a46fba4dfffc38558c712",
    "done": "02aa21117ee640b5a2ba6408d75fd755",
    "skipped": "7202692023044f988a911ca9d91bf439",
    "retry": "d9f13507ac4942a99c3563c23c2db23b",
    "failed": "3986beaee6da41ec811bcca482fb8ca9",
    "info": "8170bb980ac14dd5b26fbde243b62534",
    "warn": "3277f023ff774dffbdc45404ea0774e0",
    "input": "b2cb54b79cfe4950b429a397a780a799",
    "ready": "5fd83c6deb904bb8a1903c8e109aa785",
    "health": "584717e1902547208027fc58f6db411a",
    "stopping": "d3aa2bf667ac41cbb6ba0ab7bc3917a5",
    "cert-renewed": "f37bd6a932004bcd873c9dba3134b652",
    "cert-restart": "2b1ad89b9fb6483bae7d34e3a6845c0a",
    "cert-expiring": "8fa673a927034bed90dba21fe0720bc9",
    "cert-failed": "bdf39eaedad24b82bf7264122c38e82d",
}

# syslog priorities
ERR, WARNING, NOTICE, INFO, DEBUG = 3, 4, 5, 6, 7
DEFAULT_PRIORITY = {"failed": ERR, "warn": WARNING, "retry": NOTICE, "ready": NOTICE,
                    "stopping": NOTICE}

Sink = Callable[[dict[str, str]], None]


def _journal_sink() -> Sink:
    from systemd import journal

    def send(fields: dict[str, str]) -> None:
        fields = dict(fields)
        journal.send(fields.pop("MESSAGE"), **fields)

    return send


def under_journald(environ: Any = None, socket_path: str = "/run/systemd/journal/socket") -> bool:
    """True when systemd connected us to journald and its socket is there to take records."""
    env = os.environ if environ is None else environ
    if not env.get("JOURNAL_STREAM"):
        return False
    if not os.path.exists(socket_path):
        return False
    try:
        import systemd.journal  # noqa: F401
    except ImportError:
        return False
    return True


class Journal:
    """Writes one record per event; `role` and the current phase are filled in for every record."""

    def __init__(self, role: str = "", *, sink: Sink | None = None, stderr: TextIO | None = None,
                 verbosity: int = 0, use_journal: bool | None = None,
                 socket_path: str = "/run/systemd/journal/socket") -> None:
        self.role = role
        self.verbosity = verbosity
        self._stderr = stderr
        if sink is None and (use_journal if use_journal is not None else under_journald(socket_path=socket_path)):
            sink = _journal_sink()
        self._sink = sink

    @property
    def to_journal(self) -> bool:
        return self._sink is not None

    def log(self, event: str, message: str, *, phase: str = "", attempt: int = 0,
            duration_ms: int = 0, priority: int | None = None, **extra: object) -> dict[str, str]:
        """Emit one record; returns its fields (tests and the status file use them)."""
        if priority is None:
            priority = DEFAULT_PRIORITY.get(event, INFO)
        fields = {
            "MESSAGE": redact(message),
            "MESSAGE_ID": MESSAGE_IDS.get(event, MESSAGE_IDS["info"]),
            "PRIORITY": str(priority),
            "SYSLOG_IDENTIFIER": IDENTIFIER,
            "KBOOTD_ROLE": self.role,
            "KBOOTD_PHASE": phase,
            "KBOOTD_EVENT": event,
            "KBOOTD_ATTEMPT": str(attempt),
            "KBOOTD_DURATION_MS": str(int(duration_ms)),
        }
        for k, v in extra.items():
            fields["KBOOTD_" + k.upper()] = redact(str(v))
        if self._sink is not None:
            try:
                self._sink(fields)
            except OSError:
                # journald restarting must not take kbootd down; the line goes to stderr instead.
                self._write_stderr(fields)
        elif priority < DEBUG or self.verbosity >= 1:
            self._write_stderr(fields)
        return fields

    def _write_stderr(self, fields: dict[str, str]) -> None:
        out = self._stderr or sys.stderr
        phase = f"[{fields['KBOOTD_PHASE']}] " if fields["KBOOTD_PHASE"] else ""
        level = {ERR: "ERROR: ", WARNING: "WARNING: "}.get(int(fields["PRIORITY"]), "")
        stamp = time.strftime("%H:%M:%S")
        out.write(f"{stamp} kbootd: {phase}{level}{fields['MESSAGE']}\n")
        out.flush()
