import argparse
import io
import json
import os
import re

import pytest

from kbootd import redact
from kbootd.daemon import state as st
from kbootd.daemon import status as s
from kbootd.hostio import Host
from kbootd.paths import Paths


@pytest.fixture
def host(root):
    return Host(Paths.rooted(root))


def args(root, **kw):
    return argparse.Namespace(root=str(root), output=kw.get("output", "text"), wait=kw.get("wait", False),
                              timeout=kw.get("timeout"))


def test_board_writes_world_readable_file_only_on_change(host):
    b = s.StatusBoard(host, role="worker")
    assert b.update(state=s.RUNNING, phase="discovery")
    real = host.paths.at(host.paths.status_file)
    assert real.stat().st_mode & 0o777 == 0o644
    first = real.stat().st_mtime_ns
    assert not b.update(state=s.RUNNING)  # nothing changed: no write
    assert real.stat().st_mtime_ns == first
    data = json.loads(real.read_text())
    assert data["role"] == "worker" and data["phase"] == "discovery" and data["pid"] == os.getpid()


def test_board_redacts(host):
    redact.register("qqqqqqqqqqqqqqqq")
    s.StatusBoard(host).update(detail="token abcdef.qqqqqqqqqqqqqqqq", error="x qqqqqqqqqqqqqqqq")
    assert "qqqqqqqqqqqqqqqq" not in host.paths.at(host.paths.status_file).read_text()


@pytest.mark.parametrize("data,code", [
    ({"state": "done"}, 0), ({"state": "stopped", "ready": True}, 0), ({"state": "stopped"}, 2),
    ({"state": "failed", "will_retry": False}, 1), ({"state": "failed", "will_retry": True}, 2),
    ({"state": "running"}, 2), ({"state": "waiting"}, 2), ({"state": "not started"}, 2)])
def test_exit_codes_like_cloud_init_status(data, code):
    assert s.exit_code(data) == code


def test_not_started(host, root):
    out = io.StringIO()
    assert s.command(args(root), out) == 2
    assert "status: not started" in out.getvalue()


def test_after_reboot_the_state_file_still_says_done(host, root):
    st.save(host, st.State(role="worker", status=st.DONE, node_name="node-3", endpoint="https://10.0.0.10:6443"))
    out = io.StringIO()
    assert s.command(args(root, output="json"), out) == 0
    data = json.loads(out.getvalue())
    assert data["state"] == "done" and data["node"] == "node-3"


def test_human_and_json(host, root):
    s.StatusBoard(host, role="worker").update(
        state=s.WAITING, phase="discovery", attempt=12,
        detail="join: discovery: waiting for https://10.0.0.10:6443 (connection refused), attempt 12")
    out = io.StringIO()
    assert s.command(args(root), out) == 2
    text = out.getvalue()
    assert "status: waiting\n" in text and "attempt: 12" in text and "role: worker" in text
    out = io.StringIO()
    s.command(args(root, output="json"), out)
    assert json.loads(out.getvalue())["attempt"] == 12


def test_failed_for_good(host, root):
    s.StatusBoard(host).update(state=s.FAILED, error="no role", exit_code=3, will_retry=False)
    out = io.StringIO()
    assert s.command(args(root), out) == 1
    assert "will retry: no" in out.getvalue()


def test_wait_until_done(host):
    b = s.StatusBoard(host)
    b.update(state=s.RUNNING)
    steps = iter([s.WAITING, s.DONE])

    def sleep(_):
        b.update(state=next(steps))

    assert s.wait(host, sleep=sleep)["state"] == s.DONE


def test_wait_times_out_with_2(host, root, monkeypatch):
    s.StatusBoard(host).update(state=s.WAITING)
    monkeypatch.setattr(s, "POLL_SECONDS", 0.01)
    out = io.StringIO()
    assert s.command(args(root, wait=True, timeout="50ms"), out) == 2
    assert out.getvalue().startswith("waiting for kbootd\nstatus: waiting")


def test_dead_daemon_is_reported(host, monkeypatch):
    s.StatusBoard(host).update(state=s.RUNNING)
    data = s.read(host)
    data["pid"] = 2**22 + 12345  # no such process
    monkeypatch.setattr(Paths, "is_host", property(lambda self: True))
    assert "is gone" in s.effective(host, data)["detail"]


def test_alive():
    assert s._alive(os.getpid()) and not s._alive(None) and not s._alive(-1)


def test_status_shows_the_nearest_certificate_expiry(root, capsys):
    from datetime import timedelta

    from tests.keycache import cached_keys
    from tests.pkitools import make_pki

    host = Host(Paths.rooted(root))
    st.save(host, st.State(role="control-plane", status=st.DONE, node_name="cp-1", endpoint="https://10.0.0.10:6443"))
    with cached_keys():
        make_pki(root, age=timedelta(days=10))
    args = argparse.Namespace(root=str(root), output="text", wait=False, timeout=None)
    assert s.command(args) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("certificates:"))
    assert re.fullmatch(r"certificates: nearest expiry (apiserver|admin\.conf) on \d{4}-\d\d-\d\d \d\d:\d\d UTC \(35[45]d\)", line)
    args.output = "json"
    s.command(args)
    assert json.loads(capsys.readouterr().out)["certs"]["nearest"] in ("apiserver", "admin.conf")
