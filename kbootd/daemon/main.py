"""`kbootd run`: read the inputs, run init or join (resuming if interrupted), then supervise.

    kbootd run [--root DIR] [-v N] [--no-supervise]

Under systemd (Type=notify) this is the unit's main process. It holds the single-instance
lock, keeps STATUS= and /run/kbootd/status.json current, sends READY=1 once the node is
initialised or joined, and then execs into the lean supervisor (kbootd.daemon.supervise)
in the same process. A node whose state says "done" skips straight to that. Exit codes:
those of kbootd.errors; 3 (invalid input) and 4 (security) are permanent, and the unit
does not restart on them (RestartPreventExitStatus=3 4).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import kbootd
from kbootd import engine, pin, workflow
from kbootd.daemon import document
from kbootd.daemon import state as st
from kbootd.daemon.document import DEFAULT_SUPERVISE_INTERVAL
from kbootd.daemon.journal import DEBUG, Journal
from kbootd.daemon.lock import InstanceLock, LockHeld
from kbootd.daemon.notify import Heartbeat, Notifier
from kbootd.daemon.reporter import DaemonReporter
from kbootd.daemon.status import DONE, FAILED, STOPPED, StatusBoard
from kbootd.errors import (
    KbootdError,
    SecurityError,
    ValidationError,
    exit_code_for,
    is_permanent,
    render,
)
from kbootd.hostio import Host
from kbootd.paths import Paths
from kbootd.phases import WORKFLOWS
from kbootd.redact import redact

if TYPE_CHECKING:
    import argparse

    from kbootd.daemon.document import Document



def _sleep(seconds: float) -> None:
    time.sleep(seconds)  # interrupted by SIGTERM (Stopped); a seam for tests


class Stopped(BaseException):
    """SIGTERM/SIGINT while init or join runs: stop where we are; the state file lets us resume."""


@dataclass
class Daemon:
    paths: Paths
    host: Host
    notifier: Notifier
    journal: Journal
    board: StatusBoard
    heartbeat: Heartbeat
    verbosity: int = 0
    supervise: bool = True
    notice: str = ""  # a warning about the inputs that STATUS keeps showing, even after READY=1

    # --- small helpers ------------------------------------------------------------------
    def warn(self, msg: str, phase: str = "") -> None:
        self.journal.log("warn", msg, phase=phase)

    def status(self, text: str, **board: Any) -> None:
        self.notifier.status(text)
        self.board.update(detail=text, **board)

    # --- inputs -------------------------------------------------------------------------
    def read_inputs(self) -> tuple[Document, str]:
        self.status("reading settings", phase="inputs")
        doc, gathered = document.load(self.host)
        for src in gathered.sources:
            names = ", ".join(sorted(k for k in src.data if k not in ("apiVersion", "kind"))) or "nothing"
            self.journal.log("input", f"input: {src.name}: {names}", phase="inputs", source=src.path)
        self.journal.log("input", f"settings: {doc.summary()} (looked in: {doc.looked})", phase="inputs")
        if doc.role:
            self.journal.role = doc.role
        self.board.update(role=doc.role, sources=[s.name for s in gathered.sources])
        if any(s.path == self.paths.cloudinit_sensitive and "token" in s.data for s in gathered.sources):
            # kbootd reads the root-only copy, but cloud-init copies meta-data keys into
            # the world-readable instance-data.json too (22.4 and 25.1 alike).
            self.notice = ("the bootstrap token is in datasource meta-data (kbootd-token), which "
                           "cloud-init also copies to the world-readable "
                           "/run/cloud-init/instance-data.json: every local user can read it; "
                           "deliver it with write_files (permissions: '0600') instead")
            self.warn(self.notice, "inputs")
            self.status(f"reading settings; warning: {self.notice}", warnings=[self.notice])
        return doc, document.fingerprint(doc, self.host)

    # --- the run ------------------------------------------------------------------------
    def run(self, lock: InstanceLock) -> int:
        state = st.load(self.host)
        if state is not None and state.done:
            return self.already_done(state, lock)
        doc, fp = self.read_inputs()

        cfg = document.build(doc, self.host, lambda m: self.warn(m, "config"))
        state = self.reconcile(state, doc, fp)
        if doc.engine_role == "init":  # a joining control plane checks its CA against the cluster instead
            check_ca_pin(self.host, cfg, doc)
        self.backoff(state, doc)
        return self.bootstrap(state, doc, cfg, lock)

    def reconcile(self, state: st.State | None, doc: Document, fp: str) -> st.State:
        """The state to continue from: resume the same inputs, start over on changed ones."""
        if state is None:
            return st.State(role=doc.role, fingerprint=fp)
        if state.role and state.role != doc.role and state.phases_done:
            raise ValidationError(
                f"{self.paths.state_file}: an unfinished {state.role} bootstrap is on this node, but the "
                f"settings now say role {doc.role} ({doc.origin.get('role')}); run `kbootd reset` first")
        if state.fingerprint != fp and state.phases_done:
            self.warn("the settings changed since the last attempt; starting over instead of resuming "
                      f"(phases done before: {', '.join(state.phases_done)})", "inputs")
            state.phases_done = []
        state.role, state.fingerprint = doc.role, fp
        return state

    def backoff(self, state: st.State, doc: Document) -> None:
        delay = st.backoff_delay(state.failures)
        if state.last_failure_at is not None:
            delay -= max(0.0, time.time() - state.last_failure_at)
        if delay <= 0:
            return

        DaemonReporter(doc.engine_role, self.journal, self.notifier, self.board) \
            .retrying_after_failure(state.failures, delay, state.last_error)
        _sleep(delay)

    def bootstrap(self, state: st.State, doc: Document, cfg: Any, lock: InstanceLock) -> int:
        role = doc.engine_role
        known = {p for p, _ in workflow.all_phases(WORKFLOWS[role])}
        resumed = frozenset(p for p in state.phases_done if p in known)
        if resumed:
            self.journal.log("info", f"resuming {role}: {len(resumed)} phase(s) already done: "
                             + ", ".join(sorted(resumed)), phase="")
        rep = DaemonReporter(role, self.journal, self.notifier, self.board, heartbeat=self.heartbeat,
                             resumed=resumed)
        self.host.say = rep.out
        state.status, state.started_at = st.RUNNING, state.started_at or time.time()
        st.save(self.host, state)
        self.board.update(state="running", phases_done=sorted(resumed))

        def on_phase_done(path: str) -> None:
            if path not in state.phases_done:
                state.phases_done.append(path)
            st.save(self.host, state)

        try:
            ctx = engine.run(role, cfg, reporter=rep, root=str(self.paths.root), skip_phases=tuple(sorted(resumed)),
                             skip_token_print=True, on_phase_done=on_phase_done)
        except KbootdError as e:
            state.status, state.failures = st.FAILED, state.failures + 1
            state.last_error, state.last_failure_at = redact(str(e)), time.time()
            st.save(self.host, state)
            raise
        state.node_name = _node_name(ctx, cfg)
        state.endpoint = _endpoint(ctx, doc)
        state.status, state.failures, state.last_error = st.DONE, 0, None
        state.finished_at = time.time()
        st.save(self.host, state)
        verb = "initialised" if doc.engine_role == "init" else "joined"
        text = f"{doc.role} {state.node_name} {verb} {state.endpoint}"
        self.journal.log("ready", text, phase="")
        return self.ready(state, text, doc.supervise_interval, lock, supervise_args(doc, cfg))

    def already_done(self, state: st.State, lock: InstanceLock) -> int:
        self.journal.role = state.role or ""
        self.board.update(role=state.role, node=state.node_name, endpoint=state.endpoint)
        interval = None
        extra: list[str] = []
        try:
            doc, fp = self.read_inputs()
            interval = doc.supervise_interval
            extra = supervise_args(doc, _quiet_config(doc, self.host))
            if fp != state.fingerprint:
                self.warn("the settings changed since this node was set up; kbootd does not run init or "
                          "join again on a set-up node (run `kbootd reset` first to redo it)", "inputs")
        except KbootdError as e:
            # A set-up node keeps working even if its bootstrap settings were removed afterwards.
            self.warn(f"settings not usable ({e}); supervising with defaults", "inputs")
        for path in quick_check_paths(self.paths, state.role):
            if not self.host.exists(path):
                self.warn(f"{path} is missing although this node was set up "
                          f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(state.finished_at or 0))}; "
                          "supervising anyway (run `kbootd reset` to set the node up again)", "supervise")
        verb = st.set_up_verb(state)
        text = f"{state.role} {state.node_name} {verb} {state.endpoint}"
        self.journal.log("ready", f"{text} (set up earlier; not running {'init' if verb == 'initialised' else 'join'} again)")

        return self.ready(state, text, interval or DEFAULT_SUPERVISE_INTERVAL, lock, extra)

    def ready(self, state: st.State, text: str, interval: float, lock: InstanceLock,
              extra: list[str] | None = None) -> int:
        self.heartbeat.extending = False
        if self.notice:
            text = f"{text}; warning: {self.notice}"
        self.notifier.ready(text)
        self.board.update(state=DONE, ready=True, detail=text, phase=None, node=state.node_name,
                          endpoint=state.endpoint, error=None, exit_code=0, will_retry=False)
        if not self.supervise:
            return 0
        exec_supervisor(self, lock, interval, extra or [])
        return 0  # only reached when exec is stubbed out (tests)


def quick_check_paths(paths: Paths, role: str | None) -> list[str]:
    return [paths.admin_conf, paths.kubelet_conf] if role == "control-plane" else [paths.kubelet_conf]


def check_ca_pin(host: Host, cfg: Any, doc: Document) -> None:
    """A pre-generated CA must match the pin its workers were given, or none of them could join."""
    if not doc.ca_cert_hashes:
        return
    ca = Paths.cert(cfg.cluster.certificates_dir, "ca", "crt")
    data = host.read_bytes(ca)
    if data is None:
        return

    if not pin.matches(data, doc.ca_cert_hashes):
        raise SecurityError(
            f"{ca} has pin {pin.pin_of(data)}, which is not among caCertHashes "
            f"({doc.origin.get('caCertHashes')}): workers given that pin would refuse this cluster")


def _node_name(ctx: Any, cfg: Any) -> str:
    try:
        return ctx.data.node_name
    except Exception:  # the name is only for display; never fail a finished bootstrap over it
        return cfg.node.name or "?"


def _endpoint(ctx: Any, doc: Document) -> str:
    ep = None
    try:  # what this run found: join's discovered server, init's control-plane endpoint
        ep = ctx.data.known("cluster").server if ctx.join is not None else ctx.data.endpoint
    except Exception:  # only for display, as the node name
        pass
    ep = ep or (doc.endpoints[0] if doc.endpoints else None)
    if not ep:
        return "?"
    return ep if str(ep).startswith("https://") else f"https://{ep}"


def supervise_args(doc: Document, cfg: Any) -> list[str]:
    """The supervisor's certificate settings: the renewal window and CA warning from kbootd.yaml,
    the certificates directory and leaf validity from the kubeadm configuration (if any)."""
    out = ["--renew-before", f"{doc.renew_before:.0f}", "--ca-warn-before", f"{doc.ca_warn_before:.0f}"]
    cluster = getattr(cfg, "cluster", None)
    if cluster is not None:
        out += ["--cert-dir", cluster.certificates_dir, "--cert-validity", f"{cluster.cert_validity:.0f}"]
    return out


def _quiet_config(doc: Document, host: Host) -> Any:
    """A set-up node's configuration, for its settings only: None when it no longer builds
    (the node keeps being supervised with the defaults), and its warnings are not repeated."""
    try:
        return document.build(doc, host, lambda m: None)
    except KbootdError:
        return None


def exec_supervisor(d: Daemon, lock: InstanceLock, interval: float, extra: list[str] | None = None) -> None:
    """Replace this process (same PID) with the lean supervisor, keeping the lock and NOTIFY_SOCKET."""

    fd = lock.keep_across_exec()
    argv = [sys.executable, "-m", "kbootd.daemon.supervise", "--root", str(d.paths.root),
            "--lock-fd", str(fd), "--interval", f"{interval:g}", "--verbosity", str(d.verbosity), *(extra or [])]
    env = d.notifier.child_environ()
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(kbootd.__file__)))
    if not pkg_parent.endswith(("site-packages", "dist-packages")):
        # A source checkout: make the package importable for the new interpreter.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_parent, env.get("PYTHONPATH")) if p)
    d.heartbeat.stop()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, env)


def _raise_stopped(signum: int, frame: Any) -> None:
    raise Stopped(signal.Signals(signum).name)


def run(args: argparse.Namespace) -> int:
    """The handler of `kbootd run`."""
    paths = Paths.rooted(getattr(args, "root", None) or "/")
    verbosity = getattr(args, "verbosity", 0) or 0
    notifier = Notifier()
    journal = Journal(verbosity=verbosity, socket_path=str(paths.at(paths.journal_socket)))
    host = Host(paths, say=lambda text: journal.log("info", text, priority=DEBUG))
    board = StatusBoard(host)
    heartbeat = Heartbeat(notifier)
    d = Daemon(paths, host, notifier, journal, board, heartbeat, verbosity,
               supervise=not getattr(args, "no_supervise", False))
    saved = {s: signal.signal(s, _raise_stopped) for s in (signal.SIGTERM, signal.SIGINT)}
    lock = InstanceLock(host)
    try:
        try:
            lock.acquire()
        except LockHeld as e:
            journal.log("failed", str(e))  # status.json belongs to the other run: leave it alone
            return e.exit_code
        heartbeat.start()
        notifier.status("starting")
        board.update(state="starting")
        return d.run(lock)
    except Stopped as s:
        heartbeat.stop()
        notifier.stopping("stopping; the next start resumes where this one stopped")
        journal.log("stopping", f"kbootd stopping ({s}); the next start resumes from {paths.state_file}")
        board.update(state=STOPPED)
        return 0
    except KbootdError as e:
        return fail(d, e)
    except Exception as e:  # a bug: report it, keep the traceback out of STATUS
        journal.log("failed", render(e, verbosity=5), priority=3)
        return fail(d, e)
    finally:
        heartbeat.stop()
        lock.release()
        for s, h in saved.items():
            signal.signal(s, h)


def fail(d: Daemon, err: BaseException) -> int:
    msg = redact(str(err))
    hint = getattr(err, "hint", None)
    code, permanent = exit_code_for(err), is_permanent(err)
    d.journal.log("failed", msg + (f" (hint: {hint})" if hint else ""), phase=getattr(err, "phase", ""),
                  exit_code=code)
    d.notifier.status(f"failed: {msg}")
    d.board.update(state=FAILED, error=msg, exit_code=code, will_retry=not permanent,
                   detail=f"failed: {msg}")
    return code
