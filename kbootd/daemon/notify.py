"""sd_notify: READY, STATUS, EXTEND_TIMEOUT_USEC, WATCHDOG and STOPPING for a Type=notify unit.

NOTIFY_SOCKET (and WATCHDOG_USEC/WATCHDOG_PID) are taken out of the environment when the
Notifier is made, so no child process (systemctl, modprobe, kubelet probes) inherits them,
as k3s does, and they never come back: libsystemd's sd_notify reads the socket from the
environment, and putting it back for a send from the heartbeat thread would race with a
child being spawned. The protocol is one AF_UNIX datagram, so that is what is sent.
Without NOTIFY_SOCKET every call is a silent no-op.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, MutableMapping

from kbootd.redact import redact

ENV_KEYS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def _plain_send(path: str, message: str) -> bool:
    addr = "\0" + path[1:] if path.startswith("@") else path  # "@" marks an abstract socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
        s.settimeout(5)  # a manager that stopped reading must not hang kbootd
        s.sendto(message.encode(), addr)
    return True


class Notifier:
    def __init__(self, environ: MutableMapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.socket: str | None = env.pop("NOTIFY_SOCKET", None) or None
        usec, pid = env.pop("WATCHDOG_USEC", None), env.pop("WATCHDOG_PID", None)
        self.watchdog_usec: int | None = None
        if usec and usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_usec = int(usec)
        self._env = env
        self._lock = threading.Lock()
        self.sent: list[str] = []  # the last messages, for status and tests
        self.ready_sent = False

    @property
    def enabled(self) -> bool:
        return self.socket is not None

    def notify(self, **fields: object) -> bool:
        """Send KEY=value lines as one message; values are redacted and kept on one line."""
        if not self.socket:
            return False
        lines = []
        for k, v in fields.items():
            text = redact(str(v)).replace("\n", " ")
            lines.append(f"{k}={text}")
        msg = "\n".join(lines)
        with self._lock:
            self.sent = (self.sent + [msg])[-20:]
            try:
                return _plain_send(self.socket, msg)
            except OSError:
                return False  # the manager went away (shutdown); nothing useful to do

    def status(self, text: str) -> bool:
        return self.notify(STATUS=text)

    def ready(self, status: str) -> bool:
        self.ready_sent = True
        return self.notify(READY=1, STATUS=status)

    def stopping(self, status: str = "stopping") -> bool:
        return self.notify(STOPPING=1, STATUS=status)

    def extend(self, seconds: float) -> bool:
        return self.notify(EXTEND_TIMEOUT_USEC=int(seconds * 1_000_000))

    def watchdog(self) -> bool:
        return self.notify(WATCHDOG=1) if self.watchdog_usec else False

    def child_environ(self) -> dict[str, str]:
        """The environment for exec'ing the lean supervisor in this same process (same PID)."""
        env = dict(self._env)
        if self.socket:
            env["NOTIFY_SOCKET"] = self.socket
        if self.watchdog_usec:
            env["WATCHDOG_USEC"] = str(self.watchdog_usec)
            env["WATCHDOG_PID"] = str(os.getpid())
        return env


class Heartbeat:
    """Keeps a long start alive (EXTEND_TIMEOUT_USEC) and feeds the watchdog, while kbootd progresses.

    `touch()` is called on every reporter event. If nothing happened for `stall_after`
    seconds, the heartbeat stops vouching: systemd's start timeout or watchdog then ends
    the stuck run and Restart= resumes it from the state file.
    """

    def __init__(self, notifier: Notifier, *, period: float = 30.0, stall_after: float = 900.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.notifier = notifier
        self.period = period
        if notifier.watchdog_usec:
            self.period = min(period, notifier.watchdog_usec / 1e6 / 2)
        self.stall_after = stall_after
        self._clock = clock
        self._last = clock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.extending = True  # until READY=1

    def touch(self) -> None:
        self._last = self._clock()

    @property
    def stalled(self) -> bool:
        return self._clock() - self._last > self.stall_after

    def beat(self) -> None:
        if self.stalled:
            return
        if self.extending:
            # Three periods of slack: a late beat must not let the timeout fire.
            self.notifier.extend(3 * self.period)
        self.notifier.watchdog()

    def start(self) -> Heartbeat:
        if self.notifier.enabled and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="kbootd-heartbeat", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.beat()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
