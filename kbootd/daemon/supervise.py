"""The lean supervisor a set-up node runs for as long as it is up.

`kbootd run` execs into this module once the node is initialised or joined (same PID,
so systemd's NotifyAccess=main still accepts its messages, and the run's lock is
inherited by descriptor): the process drops the `kubernetes` client and everything else
init/join imported, and what stays is the standard library plus this package's light
modules. Every interval it checks the kubelet unit, the Node's Ready condition and (on a
control plane) the API server's /healthz, shows the result in STATUS, and logs only
changes. On a control plane it also renews certificates before they expire and restarts
the static Pods that use them (kbootd.daemon.certrenewal; its own hourly cadence), and on
every node checks that the kubelet rotated its client certificate; STATUS ends with the
nearest expiry. SIGTERM sends STOPPING=1 and exits 0.

    python3 -m kbootd.daemon.supervise --root / --lock-fd 3 --interval 30
"""

from __future__ import annotations

import argparse
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone

from kbootd.daemon import state as st
from kbootd.daemon.certrenewal import CertWatch, Settings
from kbootd.daemon.health import Checker, Health
from kbootd.daemon.journal import INFO, WARNING, Journal
from kbootd.daemon.lock import InstanceLock
from kbootd.daemon.notify import Notifier
from kbootd.daemon.status import DONE, STOPPED, StatusBoard, read
from kbootd.hostio import Host
from kbootd.paths import Paths
from kbootd.pki.inventory import Layout


def describe(role: str, node: str, endpoint: str, h: Health, verb: str | None = None) -> str:
    """`worker node-3 joined https://10.0.0.10:6443; kubelet active; node Ready`."""
    verb = verb or ("initialised" if role == "control-plane" else "joined")
    parts = [f"{role} {node} {verb} {endpoint}", f"kubelet {h.kubelet}"]
    if h.apiserver is not None:
        parts.append(f"apiserver {h.apiserver}")
    parts.append(f"node {h.node}")
    return "; ".join(parts)


class Supervisor:
    def __init__(self, checker: Checker | Callable[[], Health], notifier: Notifier, journal: Journal,
                 board: StatusBoard, *, role: str, node: str, endpoint: str, interval: float,
                 stop: threading.Event | None = None, set_up: Callable[[], bool] | None = None,
                 certs: CertWatch | None = None, now: Callable[[], datetime] | None = None,
                 verb: str | None = None) -> None:
        self.check = checker.check if isinstance(checker, Checker) else checker
        self.notifier = notifier
        self.journal = journal
        self.board = board
        self.role, self.node, self.endpoint, self.verb = role, node, endpoint, verb
        self.interval = interval
        self.stop = stop or threading.Event()
        self.set_up = set_up  # False once `kbootd reset` removed the state: nothing left to watch
        self.reset_seen = False
        self.last: str | None = None
        self.last_status: str | None = None
        self.certs = certs  # the certificate pass (kbootd.daemon.certrenewal); it keeps its own cadence
        self.now = now or (lambda: datetime.now(timezone.utc))
        self.rounds = 0
        # The watchdog is fed from this loop, so a hung check is a missed ping.
        self.tick = interval
        if notifier.watchdog_usec:
            self.tick = min(interval, notifier.watchdog_usec / 1e6 / 2)

    def round(self) -> str:
        h = self.check()
        text = describe(self.role, self.node, self.endpoint, h, self.verb)
        self.rounds += 1
        if text != self.last:
            self.journal.log("health", text, phase="supervise", priority=INFO if h.healthy else WARNING)
            self.board.update(state=DONE, ready=True, phase="supervise", detail=text,
                              health={"kubelet": h.kubelet, "node": h.node,
                                      **({"apiserver": h.apiserver} if h.apiserver is not None else {})})
            self.last = text
        status = text
        if self.certs is not None:
            now = self.now()
            if self.certs.maybe_run() is not None:
                self.board.update(certs=self.certs.summary.as_status(now))
            if cert_text := self.certs.summary.describe(now):
                status = f"{text}; {cert_text}"
        if status != self.last_status:
            self.notifier.status(status)
            self.last_status = status
        return text

    def run(self) -> int:
        next_check = 0.0
        while not self.stop.is_set():
            now = time.monotonic()
            if now >= next_check:
                if self.set_up is not None and not self.set_up():
                    self.reset_seen = True
                    break
                self.round()
                next_check = time.monotonic() + self.interval
            self.notifier.watchdog()
            self.stop.wait(max(0.0, min(self.tick, next_check - time.monotonic())))
        return 0


def _args(argv: list[str] | None):
    ap = argparse.ArgumentParser(prog="kbootd-supervise", description="kbootd's lean supervisor")
    ap.add_argument("--root", default="/")
    ap.add_argument("--lock-fd", type=int, default=None)
    ap.add_argument("--interval", type=float, default=30.0)
    ap.add_argument("--verbosity", type=int, default=0)
    ap.add_argument("--renew-before", type=float, default=Settings.renew_before, help="seconds")
    ap.add_argument("--ca-warn-before", type=float, default=Settings.ca_warn_before, help="seconds")
    ap.add_argument("--cert-dir", default="/etc/kubernetes/pki")
    ap.add_argument("--cert-validity", type=float, default=Settings.validity, help="seconds")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = _args(argv)
    paths = Paths.rooted(a.root)
    notifier = Notifier()
    journal = Journal(verbosity=a.verbosity, socket_path=str(paths.at(paths.journal_socket)))
    host = Host(paths, say=lambda text: journal.log("info", text, phase="supervise", priority=7))
    lock = InstanceLock.adopt(host, a.lock_fd) if a.lock_fd is not None else InstanceLock(host).acquire()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        s = st.load(host)
        if s is None or not s.done:
            journal.log("failed", f"{paths.state_file}: no finished init or join to supervise",
                        phase="supervise")
            notifier.notify(STATUS="failed: nothing to supervise")
            return 1
        journal.role = s.role or ""
        previous = read(host) or {}
        keep = {k: previous[k] for k in ("sources", "phases_done", "started_at", "warnings") if k in previous}
        board = StatusBoard(host, role=s.role, node=s.node_name, endpoint=s.endpoint, ready=True,
                            state=DONE, **keep)
        checker = Checker(host, s.role or "worker", s.node_name or "")
        certs = CertWatch(host, journal, role=s.role or "worker", now=lambda: datetime.now(timezone.utc),
                          settings=Settings(renew_before=a.renew_before, ca_warn_before=a.ca_warn_before,
                                            validity=a.cert_validity),
                          layout=Layout(host, cert_dir=a.cert_dir, kubeconfig_dir=paths.kubernetes_dir),
                          status=notifier.status)
        sup = Supervisor(checker, notifier, journal, board, role=s.role or "worker",
                         node=s.node_name or "?", endpoint=s.endpoint or "?", interval=a.interval,
                         stop=stop, set_up=lambda: host.exists(paths.state_file), certs=certs,
                         verb=st.set_up_verb(s))
        code = sup.run()
        if sup.reset_seen:
            # Exit 0, so Restart=on-failure leaves it stopped; the next start sets the node up again.
            notifier.stopping("stopping: the node was reset (kbootd reset)")
            journal.log("stopping", f"{paths.state_file} is gone (kbootd reset); nothing left to supervise",
                        phase="supervise")
            return 0
        notifier.stopping(f"stopping; {sup.last or ''}".rstrip("; "))
        journal.log("stopping", "kbootd stopping (SIGTERM); the node stays as it is", phase="supervise")
        board.update(state=STOPPED)
        return code
    finally:
        lock.release()


if __name__ == "__main__":
    raise SystemExit(main())
