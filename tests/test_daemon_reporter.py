import re
from pathlib import Path

import pytest

from kbootd import redact
from kbootd.daemon.journal import Journal
from kbootd.daemon.reporter import DaemonReporter
from kbootd.daemon.status import StatusBoard
from kbootd.errors import KbootdError
from kbootd.hostio import Host
from kbootd.paths import Paths


class FakeNotifier:
    def __init__(self):
        self.statuses = []

    def status(self, text):
        self.statuses.append(text)
        return True


class Clock:
    t = 0.0

    def __call__(self):
        return self.t


class Touched:
    n = 0

    def touch(self):
        self.n += 1


@pytest.fixture
def rig(root):
    records, clock, hb = [], Clock(), Touched()
    board = StatusBoard(Host(Paths.rooted(root)))
    rep = DaemonReporter("join", Journal("worker", sink=records.append), FakeNotifier(), board,
                         heartbeat=hb, resumed=frozenset({"preflight"}), clock=clock)
    return rep, records, clock, hb, board


def test_phase_lifecycle(rig):
    rep, records, clock, hb, board = rig
    rep.phase_start("kubelet-start")
    clock.t += 1.5
    rep.info("kubelet-start", "writing config")
    rep.phase_done("kubelet-start", 1.5)
    assert rep.notifier.statuses == ["join: kubelet-start"]
    events = [(r["KBOOTD_EVENT"], r["KBOOTD_PHASE"], r["KBOOTD_DURATION_MS"]) for r in records]
    assert events == [("start", "kubelet-start", "0"), ("info", "kubelet-start", "1500"),
                      ("done", "kubelet-start", "1500")]
    assert board.data["phases_done"] == ["kubelet-start"] and hb.n == 3


def test_a_finished_phases_records_belong_to_the_running_phase(rig):
    """join's kubelet-start re-runs the cri steps: their records carry kubelet-start and its
    duration (not cri's, counted from cri's start), and KBOOTD_STEP=cri."""
    rep, records, clock, hb, board = rig
    rep.phase_start("cri")
    clock.t += 0.25
    rep.info("cri", "writing containerd config")
    rep.phase_done("cri", 0.25)
    clock.t += 30
    rep.phase_start("kubelet-start")
    clock.t += 0.5
    rep.info("cri", 'Writing sysctl settings to "/etc/sysctl.d/99-kbootd.conf"')
    rep.warn("cri", "cannot set net.ipv4.ip_forward = 1 (now 0)")
    got = [(r["KBOOTD_EVENT"], r["KBOOTD_PHASE"], r["KBOOTD_DURATION_MS"], r.get("KBOOTD_STEP")) for r in records]
    assert got == [("start", "cri", "0", None), ("info", "cri", "250", None), ("done", "cri", "250", None),
                   ("start", "kubelet-start", "0", None), ("info", "kubelet-start", "500", "cri"),
                   ("warn", "kubelet-start", "500", "cri")]


def test_retry_status_line(rig):
    rep, records, clock, hb, board = rig
    rep.phase_start("discovery")
    rep.retry("discovery", 12, "waiting for https://10.0.0.10:6443: connection refused", 5)
    assert rep.notifier.statuses[-1] == \
        "join: discovery: waiting for https://10.0.0.10:6443: connection refused, attempt 12"
    r = records[-1]
    assert (r["KBOOTD_EVENT"], r["KBOOTD_ATTEMPT"], r["PRIORITY"]) == ("retry", "12", "5")
    assert board.data["state"] == "waiting" and board.data["attempt"] == 12


def test_retries_are_logged_sparingly_but_always_shown(rig):
    rep, records, clock, hb, board = rig
    cause = "waiting for https://10.0.0.10:6443: connection refused"
    for attempt in range(1, 31):
        clock.t += 5
        rep.retry("discovery", attempt, cause, 5)
    logged = [int(r["KBOOTD_ATTEMPT"]) for r in records]
    assert logged == [1, 2, 3, 4, 5]
    clock.t += 300
    rep.retry("discovery", 31, cause, 5)  # five minutes later: once more
    rep.retry("discovery", 32, "waiting for https://10.0.0.10:6443 (no route to host)", 5)  # cause changed
    rep.retry("discovery", 33, "waiting for https://10.0.0.10:6443 (no route to host)", 5)
    assert [int(r["KBOOTD_ATTEMPT"]) for r in records][5:] == [31, 32]
    assert len(rep.notifier.statuses) == 33  # STATUS on every attempt


def test_status_file_follows_retries_at_a_slower_pace(rig):
    rep, records, clock, hb, board = rig
    cause = "waiting for https://10.0.0.10:6443: connection refused"
    for attempt in range(1, 11):
        clock.t += 1
        rep.retry("discovery", attempt, cause, 1)
    assert board.data["attempt"] == 6  # written at attempts 1 and 6 (every 5 s)
    rep.retry("discovery", 11, "waiting for https://10.0.0.10:6443 (no route to host)", 1)
    assert board.data["attempt"] == 11  # a new cause is written at once


def test_resumed_phases_say_so(rig):
    rep, records, *_ = rig
    rep.phase_skipped("preflight", "skipped by --skip-phases")
    rep.phase_skipped("addons", "not needed")
    assert records[0]["MESSAGE"] == "join: preflight: skipped: done before kbootd restarted"
    assert records[1]["MESSAGE"] == "join: addons: skipped: not needed"


def test_failure_and_secrets(rig):
    rep, records, clock, *_ = rig
    redact.register("wwwwwwwwwwwwwwww")
    rep.phase_start("discovery")
    clock.t += 2
    rep.retry("discovery", 1, "token abcdef.wwwwwwwwwwwwwwww rejected", 1)
    rep.warn("discovery", "abcdef.wwwwwwwwwwwwwwww")
    rep.phase_failed("discovery", KbootdError("bad abcdef.wwwwwwwwwwwwwwww"))
    rep.out("[host] Would run: systemctl restart kubelet")
    assert "wwwwwwwwwwwwwwww" not in repr(records) + repr(rep.notifier.statuses) + repr(rep.board.data)
    failed = [r for r in records if r["KBOOTD_EVENT"] == "failed"][0]
    assert failed["KBOOTD_DURATION_MS"] == "2000" and failed["PRIORITY"] == "3"
    assert records[-1]["PRIORITY"] == "7"


def test_retrying_after_failure(rig):
    rep, records, *_ = rig
    rep.retrying_after_failure(3, 40, "preflight: port 10250 in use")
    assert rep.notifier.statuses[-1] == "join: retrying after failure 3 in 40 s: preflight: port 10250 in use"
    assert rep.board.data["state"] == "retrying"


def test_readmes_status_example_is_the_real_format(rig):
    """The README shows what `systemctl status` shows: the reporter's line for the cause
    discovery raises (kbootd/join/discovery.py: f"waiting for {url}: {reason}")."""
    rep, *_ = rig
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    shown = re.search(r'Status: "(join: discovery: [^"]+)"', readme)[1]
    rep.retry("discovery", 12, "waiting for https://10.0.0.10:6443: connection refused", 1)
    assert shown == rep.notifier.statuses[-1]
