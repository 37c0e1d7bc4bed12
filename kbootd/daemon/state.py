"""The daemon's memory across crashes and reboots: /var/lib/kbootd/state.json (0600, atomic).

It records the role, a fingerprint of the inputs (the token id, never its secret), the
phases already done and how the last attempt ended. A run that stopped half-way resumes
by skipping the phases done; a node marked "done" goes straight to supervising and never
runs init or join again, until `kbootd reset` removes the state directory.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from kbootd.errors import ValidationError
from kbootd.hostio import Host
from kbootd.retry import Backoff

VERSION = 1
NEW, RUNNING, DONE, FAILED = "new", "running", "done", "failed"


@dataclass
class State:
    version: int = VERSION
    role: str | None = None  # control-plane | worker
    fingerprint: str | None = None
    status: str = NEW
    phases_done: list[str] = field(default_factory=list)
    node_name: str | None = None
    endpoint: str | None = None  # https://host:port the node joined or serves
    failures: int = 0  # consecutive failed attempts, for the restart back-off
    last_error: str | None = None
    last_failure_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    updated_at: float | None = None

    @property
    def done(self) -> bool:
        return self.status == DONE

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str) -> State:
        """A state file kbootd did not write (corrupt, mistyped, hand-edited) is exit 3 naming
        the file and field: never started over silently (a node marked done would init or
        join again) and never a traceback (exit 1, which the unit restarts forever)."""
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as e:
            raise ValidationError(f"{where}: not valid JSON ({e}); run `kbootd reset` to start over") from None
        if not isinstance(data, dict) or data.get("version") != VERSION or isinstance(data.get("version"), bool):
            version = data.get("version") if isinstance(data, dict) else "?"
            raise ValidationError(f"{where}: unknown state format (version {str(version)[:40]}); "
                                  "run `kbootd reset` to start over")
        known = {f.name for f in fields(cls)}
        out = {k: val for k, val in data.items() if k in known}
        for key, val in out.items():
            if not _FIELD_OK[key](val):
                raise ValidationError(f"{where}: {key}: expected {_FIELD_WANT[key]}, got {_short(val)}; "
                                      "run `kbootd reset` to start over")
        return cls(**out)


def _short(val: Any) -> str:
    text = json.dumps(val, default=str)
    return text if len(text) <= 40 else text[:40] + "..."


def _opt_str(v: Any) -> bool:
    return v is None or isinstance(v, str)


def _opt_time(v: Any) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1e12)


_FIELD_OK = {
    "version": lambda v: v == VERSION,
    "role": lambda v: v in (None, "control-plane", "worker"),
    "fingerprint": _opt_str, "node_name": _opt_str, "endpoint": _opt_str, "last_error": _opt_str,
    "status": lambda v: v in (NEW, RUNNING, DONE, FAILED),
    "phases_done": lambda v: isinstance(v, list) and all(isinstance(p, str) for p in v),
    "failures": lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**31,
    "last_failure_at": _opt_time, "started_at": _opt_time, "finished_at": _opt_time, "updated_at": _opt_time,
}
_FIELD_WANT = {
    "version": str(VERSION), "role": "control-plane, worker or null", "status": f"{NEW}, {RUNNING}, {DONE} or {FAILED}",
    "phases_done": "a list of phase names", "failures": "a count (0 or more)",
    **{k: "a string or null" for k in ("fingerprint", "node_name", "endpoint", "last_error")},
    **{k: "a time in seconds since the epoch, or null" for k in ("last_failure_at", "started_at", "finished_at",
                                                                  "updated_at")},
}


def load(host: Host) -> State | None:
    text = host.read_text(host.paths.state_file)
    return None if text is None else State.from_json(text, host.paths.state_file)


def save(host: Host, state: State, now: float | None = None) -> None:
    state.updated_at = now if now is not None else time.time()
    host.ensure_dir(host.paths.state_dir, 0o700)
    host.write_file(host.paths.state_file, state.to_json(), 0o600, sensitive=True, show=False)


def remove(host: Host) -> bool:
    """For `kbootd reset`: forget everything, so the next `kbootd run` starts from scratch."""
    return host.remove(host.paths.state_file)


def backoff_delay(failures: int, *, base: float = 10.0, cap: float = 300.0) -> float:
    """Seconds to wait before attempt number failures+1: 0, 10, 20, 40, ... up to 5 min.

    kbootd.retry's Backoff without jitter (one restart at a time per machine; systemd
    spreads nothing to spread), which bounds the exponent: no overflow at any count.
    """

    if failures <= 0:
        return 0.0
    return Backoff(first=base, cap=cap, factor=2.0, jitter=False).ceiling(failures)


def set_up_verb(state: State) -> str:
    """"initialised" for the control plane that ran init; "joined" for any node that joined,
    a control plane with controlPlaneJoin included (its phases began with join's discovery)."""
    return "initialised" if state.role == "control-plane" and "discovery" not in state.phases_done else "joined"


def summary(state: State) -> dict[str, Any]:
    return {"status": state.status, "role": state.role, "phases_done": list(state.phases_done),
            "failures": state.failures}
