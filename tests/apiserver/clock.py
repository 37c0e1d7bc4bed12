"""A clock tests can move: token expiry, creation timestamps and certificate validity follow it."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone


def parse_time(value: str) -> datetime:
    """RFC 3339 as Kubernetes writes it (`2026-11-24T19:33:43Z`), offsets accepted too."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc)


def format_time(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Clock:
    """Real time plus an offset; `freeze()` stops it. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0
        self._frozen: float | None = None

    def time(self) -> float:
        with self._lock:
            return self._frozen if self._frozen is not None else time.time() + self._offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), timezone.utc)

    def timestamp(self) -> str:
        return format_time(self.now())

    def set(self, when: datetime | str) -> None:
        """Jump to `when`; the clock keeps running from there (or stays there if frozen)."""
        target = (parse_time(when) if isinstance(when, str) else when).timestamp()
        with self._lock:
            if self._frozen is not None:
                self._frozen = target
            else:
                self._offset = target - time.time()

    def advance(self, seconds: float | timedelta) -> None:
        delta = seconds.total_seconds() if isinstance(seconds, timedelta) else float(seconds)
        with self._lock:
            if self._frozen is not None:
                self._frozen += delta
            else:
                self._offset += delta

    def freeze(self, when: datetime | str | None = None) -> None:
        now = self.time()
        with self._lock:
            self._frozen = now
        if when is not None:
            self.set(when)

    def unfreeze(self) -> None:
        with self._lock:
            if self._frozen is not None:
                self._offset = self._frozen - time.time()
                self._frozen = None
