"""The notifier against a real AF_UNIX datagram socket, as python-systemd's own test does."""

import os
import socket
import subprocess

import pytest

from kbootd import redact
from kbootd.daemon.notify import Heartbeat, Notifier


@pytest.fixture
def sock(tmp_path, monkeypatch):
    path = str(tmp_path / "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    yield s
    s.close()


def recv(s) -> dict[str, str]:
    return dict(line.split("=", 1) for line in s.recv(4096).decode().split("\n"))


def test_messages_reach_the_socket(sock):
    n = Notifier()
    assert n.enabled
    assert n.status("join: discovery")
    assert recv(sock) == {"STATUS": "join: discovery"}
    assert n.extend(90)
    assert recv(sock) == {"EXTEND_TIMEOUT_USEC": "90000000"}
    assert n.ready("worker node-3 joined https://10.0.0.10:6443")
    assert recv(sock) == {"READY": "1", "STATUS": "worker node-3 joined https://10.0.0.10:6443"}
    assert n.stopping()
    assert recv(sock) == {"STOPPING": "1", "STATUS": "stopping"}
    assert not n.watchdog()  # no WATCHDOG_USEC


def test_children_never_see_notify_socket(sock, monkeypatch):
    class Watched(dict):
        """The process environment, refusing the notify socket back while threads may spawn children."""

        def __setitem__(self, key, value):
            assert key != "NOTIFY_SOCKET", "NOTIFY_SOCKET was put back into the environment"
            super().__setitem__(key, value)

    env = Watched(os.environ)
    n = Notifier(env)
    assert "NOTIFY_SOCKET" not in env
    assert n.status("x") and n.ready("y")
    recv(sock)
    recv(sock)
    assert "NOTIFY_SOCKET" not in env
    assert n.child_environ()["NOTIFY_SOCKET"] == n.socket  # only for exec'ing the supervisor in-process


@pytest.mark.subprocess
def test_child_process_environment(sock):
    Notifier()
    out = subprocess.run(["env"], capture_output=True, text=True, check=True).stdout
    assert "NOTIFY_SOCKET" not in out and "WATCHDOG_USEC" not in out


def test_status_is_redacted_and_one_line(sock):
    redact.register("s3cr3tvalue99xyz")
    n = Notifier()
    n.status("failed: token abcdef.s3cr3tvalue99xyz\nsecond line")
    msg = recv(sock)
    assert msg == {"STATUS": "failed: token abcdef.<redacted> second line"}


def test_abstract_socket(monkeypatch):
    name = f"kbootd-test-{os.getpid()}"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("\0" + name)
    s.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    try:
        assert Notifier().status("abstract")
        assert recv(s) == {"STATUS": "abstract"}
    finally:
        s.close()


@pytest.mark.parametrize("usec,pid,armed", [("30000000", None, True), ("30000000", "self", True),
                                            ("30000000", "1", False), ("0", None, False), ("x", None, False)])
def test_watchdog_only_when_asked_for_us(sock, monkeypatch, usec, pid, armed):
    monkeypatch.setenv("WATCHDOG_USEC", usec)
    if pid:
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()) if pid == "self" else pid)
    n = Notifier()
    assert "WATCHDOG_USEC" not in os.environ and "WATCHDOG_PID" not in os.environ
    assert n.watchdog() is armed
    if armed:
        assert recv(sock) == {"WATCHDOG": "1"}
        assert n.child_environ()["WATCHDOG_PID"] == str(os.getpid())


def test_silent_without_notify_socket(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    n = Notifier()
    assert not n.enabled
    assert not n.status("x") and not n.ready("y") and not n.extend(1) and not n.stopping()


def test_manager_gone_is_not_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    assert Notifier().status("x") is False


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_heartbeat_extends_while_progressing_and_stops_when_stalled(sock, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "20000000")
    clock = Clock()
    hb = Heartbeat(Notifier(), period=30, stall_after=900, clock=clock)
    assert hb.period == 10  # half the watchdog interval
    hb.beat()
    assert recv(sock) == {"EXTEND_TIMEOUT_USEC": "30000000"}
    assert recv(sock) == {"WATCHDOG": "1"}
    clock.t += 901
    assert hb.stalled
    hb.beat()  # stalled: says nothing, so systemd's timeout ends the stuck run
    sock.settimeout(0.2)
    with pytest.raises(socket.timeout):
        sock.recv(4096)
    hb.touch()
    hb.extending = False  # after READY=1: only the watchdog
    hb.beat()
    sock.settimeout(2)
    assert recv(sock) == {"WATCHDOG": "1"}


def test_heartbeat_thread_runs_and_stops(sock):
    hb = Heartbeat(Notifier(), period=0.05).start()
    assert recv(sock) == {"EXTEND_TIMEOUT_USEC": "150000"}
    hb.stop()
    assert hb._thread is None
