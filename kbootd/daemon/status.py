"""/run/kbootd/status.json (0644, no secrets) and `kbootd status [-o json] [--wait]`.

The daemon rewrites the file (atomically) whenever its state changes; `kbootd status`
only reads it, without the lock, so it works while the daemon runs. Exit codes follow
`cloud-init status`: 0 done (the node is initialised or joined), 1 failed for good,
2 not done yet (running, waiting, restarting after a transient failure, stopped, or not
started). `--wait` polls until the answer is 0 or 1 (or --timeout passes: 2).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TextIO

from kbootd.daemon import certrenewal
from kbootd.daemon import state as st
from kbootd.duration import parse_duration
from kbootd.hostio import Host
from kbootd.paths import Paths
from kbootd.redact import redact

if TYPE_CHECKING:
    import argparse

VERSION = 1
# state values
STARTING, RUNNING, WAITING, RETRYING, DONE, FAILED, STOPPED = (
    "starting", "running", "waiting", "retrying", "done", "failed", "stopped")
EXIT_DONE, EXIT_FAILED, EXIT_NOT_DONE = 0, 1, 2
POLL_SECONDS = 1.0


class StatusBoard:
    """The daemon's side: keeps the current status and writes it when something changed."""

    def __init__(self, host: Host, **initial: Any) -> None:
        self.host = host
        self.data: dict[str, Any] = {
            "version": VERSION, "state": STARTING, "role": None, "phase": None, "detail": "",
            "attempt": 0, "ready": False, "error": None, "exit_code": None, "will_retry": False,
            "node": None, "endpoint": None, "health": {}, "phases_done": [], "sources": [],
            "pid": os.getpid(), "started_at": time.time(), "updated_at": None,
        }
        self.data.update(initial)
        self._written: str | None = None

    def update(self, **changes: Any) -> bool:
        """Apply changes and write the file if anything but the time changed. Returns True if written."""
        for k, val in changes.items():
            self.data[k] = redact(val) if isinstance(val, str) else val
        body = json.dumps({k: val for k, val in self.data.items() if k != "updated_at"}, sort_keys=True)
        if body == self._written:
            return False
        self._written = body
        self.data["updated_at"] = time.time()
        self.host.ensure_dir(self.host.paths.run_dir, 0o755)
        self.host.write_file(self.host.paths.status_file,
                             json.dumps(self.data, indent=2, sort_keys=True) + "\n", 0o644, show=False)
        return True


# --- reading (kbootd status) -------------------------------------------------------------

def read(host: Host) -> dict[str, Any] | None:
    text = host.read_text(host.paths.status_file)
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None  # mid-replace is impossible (atomic rename); a damaged file reads as "unknown"
    return data if isinstance(data, dict) else None


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def effective(host: Host, data: dict[str, Any] | None) -> dict[str, Any]:
    """The status as `kbootd status` reports it, with facts the file alone cannot know."""
    if data is None:
        # /run is empty after a reboot until the daemon starts; the state file still knows "done".

        try:
            s = st.load(host)
        except Exception:  # unreadable (not root) or damaged: the daemon will say more
            s = None
        if s is not None and s.done:
            return {"state": DONE, "role": s.role, "node": s.node_name, "endpoint": s.endpoint,
                    "detail": "kbootd is not running (the node was set up earlier)", "ready": True}
        return {"state": "not started", "detail": f"no {host.paths.status_file} yet"}
    out = dict(data)
    if out.get("state") in (STARTING, RUNNING, WAITING, RETRYING) and host.paths.is_host \
            and not _alive(out.get("pid")):
        out["detail"] = f"kbootd (pid {out.get('pid')}) is gone; systemd restarts it if enabled. " \
                        + str(out.get("detail") or "")
    return out


def exit_code(data: dict[str, Any]) -> int:
    state = data.get("state")
    if state == DONE or (state == STOPPED and data.get("ready")):
        return EXIT_DONE
    if state == FAILED and not data.get("will_retry"):
        return EXIT_FAILED
    return EXIT_NOT_DONE


def render(data: dict[str, Any]) -> str:
    lines = [f"status: {data.get('state')}"]
    for key, label in (("role", "role"), ("node", "node"), ("endpoint", "endpoint"),
                       ("phase", "phase"), ("detail", "detail"), ("error", "error")):
        if data.get(key):
            lines.append(f"{label}: {data[key]}")
    if data.get("attempt"):
        lines.append(f"attempt: {data['attempt']}")
    health = data.get("health") or {}
    if health:
        lines.append("health: " + ", ".join(f"{k} {v}" for k, v in health.items()))
    if isinstance(data.get("certs"), dict) and (cert_line := certrenewal.status_line(data["certs"])):
        lines.append(cert_line)
    if data.get("state") == FAILED:
        lines.append("will retry: " + ("yes (systemd restarts kbootd)" if data.get("will_retry")
                                       else "no (fix the input, then `systemctl restart kbootd`)"))
    return "\n".join(lines) + "\n"


def wait(host: Host, *, timeout: float | None = None, poll: float | None = None,
         clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    start = clock()
    while True:
        data = effective(host, read(host))
        if exit_code(data) != EXIT_NOT_DONE or (timeout is not None and clock() - start >= timeout):
            return data
        sleep(poll if poll is not None else POLL_SECONDS)


def command(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """`kbootd status [--root DIR] [-o text|json] [--wait [--timeout DURATION]]`."""

    out = out or sys.stdout
    host = Host(Paths.rooted(getattr(args, "root", None) or "/"))
    timeout = None
    if getattr(args, "timeout", None):
        timeout = parse_duration(args.timeout, what="--timeout")
    if getattr(args, "wait", False):
        if (getattr(args, "output", None) or "text") == "text":
            out.write("waiting for kbootd")
            out.flush()
        data = wait(host, timeout=timeout)
        if (getattr(args, "output", None) or "text") == "text":
            out.write("\n")
    else:
        data = effective(host, read(host))
    if data.get("state") in (DONE, STOPPED) and not data.get("certs"):
        # Read from disk when the supervisor has not said (not running, or before its first pass).
        certs = certrenewal.nearest_on_disk(host, datetime.now(timezone.utc))
        if certs:
            data["certs"] = certs
    if getattr(args, "output", None) == "json":
        out.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
    else:
        out.write(render(data))
    return exit_code(data)
