import io
import re

import pytest

from kbootd import redact
from kbootd.daemon import journal as j
from tests.shared import needs_python_systemd

FIELDS = {"MESSAGE", "MESSAGE_ID", "PRIORITY", "SYSLOG_IDENTIFIER", "KBOOTD_ROLE", "KBOOTD_PHASE",
          "KBOOTD_EVENT", "KBOOTD_ATTEMPT", "KBOOTD_DURATION_MS"}


def test_message_ids_are_stable_128_bit_and_distinct():
    ids = list(j.MESSAGE_IDS.values())
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)
    assert j.MESSAGE_IDS["ready"] == "5fd83c6deb904bb8a1903c8e109aa785"  # published: never change


def test_message_ids_are_documented():
    import kbootd.daemon as pkg

    for event, mid in j.MESSAGE_IDS.items():
        assert re.search(rf"^\s+{event}\s+{mid}\s", pkg.__doc__, re.M), event


@pytest.mark.parametrize("event,prio", [("start", 6), ("done", 6), ("retry", 5), ("failed", 3),
                                        ("warn", 4), ("ready", 5), ("stopping", 5), ("health", 6)])
def test_every_record_has_every_field(event, prio):
    got = []
    jr = j.Journal("worker", sink=got.append)
    jr.log(event, "m", phase="discovery", attempt=3, duration_ms=1234.6)
    (f,) = got
    assert FIELDS <= set(f)
    assert f["SYSLOG_IDENTIFIER"] == "kbootd" and f["KBOOTD_ROLE"] == "worker"
    assert f["KBOOTD_EVENT"] == event and f["MESSAGE_ID"] == j.MESSAGE_IDS[event]
    assert (f["PRIORITY"], f["KBOOTD_ATTEMPT"], f["KBOOTD_DURATION_MS"]) == (str(prio), "3", "1234")
    assert all(isinstance(v, str) for v in f.values())


def test_secrets_are_redacted_in_message_and_extra_fields():
    redact.register("topsecretvalue12")
    got = []
    j.Journal("worker", sink=got.append).log("failed", "bad token abcdef.topsecretvalue12",
                                             source="x topsecretvalue12")
    assert "topsecretvalue12" not in repr(got)
    assert got[0]["KBOOTD_SOURCE"] == "x <redacted>"


def test_stderr_without_journald(monkeypatch):
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    err = io.StringIO()
    jr = j.Journal("worker", stderr=err)
    assert not jr.to_journal
    jr.log("warn", "careful", phase="inputs")
    jr.log("info", "engine output", priority=j.DEBUG)  # debug: only with -v
    assert re.fullmatch(r"\d\d:\d\d:\d\d kbootd: \[inputs\] WARNING: careful\n", err.getvalue())


@pytest.mark.parametrize("stream,socket_exists,expect", [
    (None, True, False), ("8:9", False, False),
    pytest.param("8:9", True, True, marks=needs_python_systemd),  # True only if journal.send can be had
])
def test_under_journald_needs_stream_and_socket(tmp_path, stream, socket_exists, expect):
    sock = tmp_path / "socket"
    if socket_exists:
        sock.write_text("")
    env = {"JOURNAL_STREAM": stream} if stream else {}
    assert j.under_journald(env, str(sock)) is expect


def test_journal_send_failure_falls_back_to_stderr():
    def broken(fields):
        raise OSError("journald restarting")

    err = io.StringIO()
    j.Journal("worker", sink=broken, stderr=err).log("info", "still here")
    assert "still here" in err.getvalue()


@needs_python_systemd
def test_real_journal_sink_is_python_systemd(monkeypatch):
    import systemd.journal

    sent = []
    monkeypatch.setattr(systemd.journal, "send", lambda msg, **kw: sent.append((msg, kw)))
    jr = j.Journal("control-plane", use_journal=True)
    jr.log("done", "certs done", phase="certs", duration_ms=5)
    ((msg, kw),) = sent
    assert msg == "certs done" and kw["KBOOTD_PHASE"] == "certs" and kw["MESSAGE_ID"] == j.MESSAGE_IDS["done"]
