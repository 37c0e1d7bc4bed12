import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from kbootd.daemon import state as st
from kbootd.daemon import supervise
from kbootd.daemon.health import Health
from kbootd.daemon.journal import Journal
from kbootd.daemon.status import StatusBoard
from kbootd.hostio import Host
from kbootd.paths import Paths
from tests.shared import needs_python_systemd

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("role,h,text", [
    ("worker", Health("active", "Ready"), "worker node-3 joined https://10.0.0.10:6443; kubelet active; node Ready"),
    ("control-plane", Health("active", "NotReady", "ok"),
     "control-plane node-3 initialised https://10.0.0.10:6443; kubelet active; apiserver ok; node NotReady"),
])
def test_describe(role, h, text):
    assert supervise.describe(role, "node-3", "https://10.0.0.10:6443", h) == text


@pytest.mark.parametrize("role,phases,verb", [
    ("control-plane", ["cri", "preflight", "certs"], "initialised"),
    ("control-plane", ["discovery", "cri", "preflight", "control-plane-join"], "joined"),  # controlPlaneJoin
    ("worker", ["discovery", "cri", "preflight"], "joined"),
])
def test_a_control_plane_that_joined_says_joined(role, phases, verb):
    state = st.State(role=role, status=st.DONE, phases_done=phases)
    assert st.set_up_verb(state) == verb
    h = Health("active", "Ready", "ok" if role == "control-plane" else None)
    assert supervise.describe(role, "cp-2", "https://10.0.0.10:6443", h, st.set_up_verb(state)).startswith(
        f"{role} cp-2 {verb} https://10.0.0.10:6443")


class FakeNotifier:
    watchdog_usec = None

    def __init__(self):
        self.statuses, self.pings = [], 0

    def status(self, text):
        self.statuses.append(text)

    def watchdog(self):
        self.pings += 1


def make(root, results, interval=30.0):
    records = []
    it = iter(results)
    sup = supervise.Supervisor(lambda: next(it), FakeNotifier(), Journal("worker", sink=records.append),
                               StatusBoard(Host(Paths.rooted(root))), role="worker", node="node-3",
                               endpoint="https://10.0.0.10:6443", interval=interval)
    return sup, records


def test_only_changes_are_logged_and_shown(root):
    ready, down = Health("active", "Ready"), Health("failed", "NotReady")
    sup, records = make(root, [ready, ready, down, down, ready])
    for _ in range(5):
        sup.round()
    assert [r["MESSAGE"].split("; ", 1)[1] for r in records] == [
        "kubelet active; node Ready", "kubelet failed; node NotReady", "kubelet active; node Ready"]
    assert [r["PRIORITY"] for r in records] == ["6", "4", "6"]
    assert {r["KBOOTD_EVENT"] for r in records} == {"health"} and len(sup.notifier.statuses) == 3
    assert sup.board.data["health"] == {"kubelet": "active", "node": "Ready"} and sup.board.data["ready"]


def test_loop_checks_every_interval_and_stops(root):
    sup, _ = make(root, [Health("active", "Ready")] * 100, interval=0.02)
    t = threading.Thread(target=sup.run)
    t.start()
    threading.Event().wait(0.15)
    sup.stop.set()
    t.join(2)
    assert not t.is_alive() and 3 <= sup.rounds <= 12 and sup.notifier.pings >= sup.rounds


def test_reset_ends_supervision(root):
    sup, _ = make(root, [Health("active", "Ready")] * 100, interval=0.01)
    there = iter([True, True, False])
    sup.set_up = lambda: next(there)
    assert sup.run() == 0
    assert sup.reset_seen and sup.rounds == 2


def test_watchdog_shortens_the_tick(root):
    n = FakeNotifier()
    n.watchdog_usec = 10_000_000
    sup = supervise.Supervisor(lambda: Health("active", "Ready"), n, Journal(sink=lambda f: None),
                               StatusBoard(Host(Paths.rooted(root))), role="worker", node="n", endpoint="e",
                               interval=30)
    assert sup.tick == 5


def test_nothing_to_supervise(root, capsys):
    assert supervise.main(["--root", str(root)]) == 1
    assert "no finished init or join to supervise" in capsys.readouterr().err


@needs_python_systemd
@pytest.mark.subprocess
def test_the_supervisor_process_is_lean():
    probe = ("import sys, kbootd.daemon.supervise, kbootd.daemon.health, kbootd.daemon.status, "
             "kbootd.daemon.lock, kbootd.daemon.state, kbootd.daemon.notify, kbootd.daemon.journal\n"
             "import systemd.daemon, systemd.journal\n"
             "print(sorted({m.split('.')[0] for m in sys.modules} & "
             "{'kubernetes', 'yaml', 'requests', 'urllib3', 'cryptography'}))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         cwd=REPO).stdout
    assert out.strip() == "[]"


@pytest.mark.subprocess
def test_process_reports_then_stops_on_sigterm(root, tmp_path):
    host = Host(Paths.rooted(root))
    st.save(host, st.State(role="worker", status=st.DONE, node_name="node-3", endpoint="https://10.0.0.10:6443"))
    # What `kbootd run` reported before exec'ing the supervisor stays (e.g. the meta-data token warning).
    StatusBoard(host).update(sources=["datasource metadata"], warnings=["the bootstrap token is in meta-data"])
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    env = {**os.environ, "NOTIFY_SOCKET": path, "PYTHONPATH": str(REPO)}
    env.pop("JOURNAL_STREAM", None)
    p = subprocess.Popen([sys.executable, "-m", "kbootd.daemon.supervise", "--root", str(root), "--interval", "1"],
                         env=env, stderr=subprocess.PIPE, text=True)
    try:
        first = sock.recv(4096).decode()
        assert first == ("STATUS=worker node-3 joined https://10.0.0.10:6443; kubelet unknown; "
                         "node unknown (no /etc/kubernetes/kubelet.conf)")
        assert host.paths.at(host.paths.lock_file).read_text().split()[0] == str(p.pid)
        p.send_signal(signal.SIGTERM)
        assert p.wait(10) == 0
        assert sock.recv(4096).decode().startswith("STOPPING=1\nSTATUS=stopping; worker node-3")
    finally:
        p.kill()
        sock.close()
    status = json.loads(host.paths.at(host.paths.status_file).read_text())
    assert (status["state"], status["ready"], status["node"]) == ("stopped", True, "node-3")
    assert status["warnings"] == ["the bootstrap token is in meta-data"]
    assert status["sources"] == ["datasource metadata"]
    assert not host.paths.at(host.paths.lock_file).exists()
    assert "kbootd stopping" in p.stderr.read()

