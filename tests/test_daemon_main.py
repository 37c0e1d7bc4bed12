"""`kbootd run`'s state machine, driven by fake init/join workflows (the real engines come later)."""

import argparse
import json
import math
import os
import signal
import socket
import threading

import pytest

from kbootd.daemon import main as daemon_main
from kbootd.daemon import supervise
from kbootd.daemon.ca import generate
from kbootd.errors import PERMANENT_EXIT_CODES, PreflightError, SecurityError
from kbootd.phases import WORKFLOWS
from kbootd.pki.keys import generate_key
from kbootd.workflow import Phase

TOKEN = "abcdef.0123456789abcdef"
SECRET = "0123456789abcdef"
PIN = "sha256:0b5c07da32772eb431ea1ba6f4614eab673b8c42a313c767bd3f31f49da01d2d"
M = __name__
CALLS: list[str] = []
BEHAVIOUR: dict[str, object] = {}
SEEN: dict[str, object] = {}


class Crash(BaseException):
    """Stands in for a power cut: nothing catches it."""


def discovery(ctx):
    CALLS.append("discovery")
    SEEN["cfg"] = ctx.join
    for attempt in (1, 2, 3):
        ctx.reporter.retry("discovery", attempt, "waiting for https://10.0.0.10:6443 (connection refused)", 0.0)
    ctx.reporter.info("discovery", f"using token {TOKEN}")  # a leak the reporter must redact
    what = BEHAVIOUR.get("discovery")
    if what == "security":
        raise SecurityError("cluster CA pin mismatch")
    if what == "sigterm":
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):
            pass


def kubelet_start(ctx):
    CALLS.append("kubelet-start")
    what = BEHAVIOUR.get("kubelet-start")
    if what == "crash":
        raise Crash()
    if what == "preflight":
        raise PreflightError("port 10250 is in use")
    if what == "bug":
        raise ValueError("oops")
    ctx.host.write_file(ctx.paths.kubelet_conf, "apiVersion: v1\nkind: Config\n", 0o600)


def init_all(ctx):
    CALLS.append("init")
    SEEN["cfg"] = ctx.init


JOIN = (Phase("discovery", "find the cluster", run=discovery),
        Phase("kubelet-start", "start the kubelet", run=kubelet_start))
INIT = (Phase("everything", "all of init", run=init_all),)


@pytest.fixture(autouse=True)
def fake_workflows(monkeypatch):
    CALLS.clear()
    BEHAVIOUR.clear()
    SEEN.clear()
    monkeypatch.setenv("NOTIFY_SOCKET", "")  # restored after the test, whatever runs set
    monkeypatch.setitem(WORKFLOWS, "join", JOIN)
    monkeypatch.setitem(WORKFLOWS, "init", INIT)
    monkeypatch.setattr(daemon_main, "_sleep", lambda s: SEEN.setdefault("slept", []).append(s))
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)


@pytest.fixture
def notify(tmp_path, monkeypatch):
    """A notify socket read continuously, as PID 1 does (only ~10 datagrams fit in its queue)."""
    path = str(tmp_path / "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(0.05)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    SEEN["socket"] = path
    got: list[str] = []
    done, flushed = threading.Event(), threading.Event()
    marker = "KBOOTD-TEST-FLUSH"

    def reader() -> None:
        while not done.is_set():
            try:
                msg = s.recv(65536).decode()
            except TimeoutError:
                continue
            if msg == marker:
                flushed.set()
            else:
                got.append(msg)

    t = threading.Thread(target=reader, daemon=True)
    t.start()

    def messages() -> list[str]:
        # Datagrams on one socket arrive in order: once our own marker is read, so is every
        # message sent before it (no sleeping and hoping the reader has caught up).
        flushed.clear()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            sender.sendto(marker.encode(), path)
        assert flushed.wait(10), "the notify reader is stuck"
        out = list(got)
        got.clear()
        return out

    yield messages
    done.set()
    t.join(2)
    s.close()


def write(root, path, text, mode=0o600):
    real = root / path.lstrip("/")
    real.parent.mkdir(parents=True, exist_ok=True)
    real.write_text(text)
    os.chmod(real, mode)


def worker_doc(root, **extra):
    fields = {"role": "worker", "token": TOKEN, "endpoint": "10.0.0.10:6443", "caCertHash": PIN,
              "nodeName": "node-3", **extra}
    body = "".join(f"{k}: {json.dumps(v)}\n" for k, v in fields.items() if v is not None)
    write(root, "/etc/kbootd/kbootd.yaml", "apiVersion: kbootd.io/v1alpha1\nkind: KbootdConfiguration\n" + body)


def run(root, **kw) -> int:
    if "socket" in SEEN:  # each run is a fresh process under systemd: NOTIFY_SOCKET is set again
        os.environ["NOTIFY_SOCKET"] = SEEN["socket"]
    args = argparse.Namespace(root=str(root), verbosity=0, no_supervise=kw.get("no_supervise", True))
    return daemon_main.run(args)


def state(root):
    return json.loads((root / "var/lib/kbootd/state.json").read_text())


def status(root):
    return json.loads((root / "run/kbootd/status.json").read_text())


def test_worker_joins_and_reports(root, notify, capsys):
    worker_doc(root)
    assert run(root) == 0
    assert CALLS == ["discovery", "kubelet-start"]
    cfg = SEEN["cfg"]
    assert cfg.timeouts.discovery == math.inf and cfg.discovery_token.id == "abcdef"
    msgs = notify()
    assert "STATUS=join: discovery: waiting for https://10.0.0.10:6443 (connection refused), attempt 3" in msgs
    assert msgs[-1] == "READY=1\nSTATUS=worker node-3 joined https://10.0.0.10:6443"
    s = state(root)
    assert (s["status"], s["phases_done"], s["role"], s["failures"]) == \
        ("done", ["discovery", "kubelet-start"], "worker", 0)
    assert (root / "var/lib/kbootd/state.json").stat().st_mode & 0o777 == 0o600
    assert status(root)["state"] == "done" and status(root)["ready"]
    err = capsys.readouterr().err
    assert "input: /etc/kbootd/kbootd.yaml: caCertHash, endpoint, nodeName, role, token" in err
    assert "token id abcdef" in err
    everything = err + "".join(msgs) + json.dumps(status(root)) + json.dumps(state(root))
    assert SECRET not in everything


def test_crash_resumes_after_the_last_finished_phase(root, notify, capsys):
    worker_doc(root)
    BEHAVIOUR["kubelet-start"] = "crash"
    with pytest.raises(Crash):
        run(root)
    assert state(root)["phases_done"] == ["discovery"] and state(root)["status"] == "running"
    assert not (root / "run/kbootd/kbootd.lock").exists()  # released even on a crash
    BEHAVIOUR.clear()
    CALLS.clear()
    assert run(root) == 0
    assert CALLS == ["kubelet-start"]
    assert "discovery: skipped: done before kbootd restarted" in capsys.readouterr().err


def test_a_finished_node_never_runs_join_again(root, notify, capsys):
    worker_doc(root)
    assert run(root) == 0
    notify()
    CALLS.clear()
    (root / "etc/kubernetes/kubelet.conf").unlink()
    worker_doc(root, nodeName="renamed")  # changed settings do not trigger a new join either
    assert run(root) == 0
    assert CALLS == []
    assert notify()[-1] == "READY=1\nSTATUS=worker node-3 joined https://10.0.0.10:6443"
    err = capsys.readouterr().err
    assert "kubelet.conf is missing" in err and "settings changed since this node was set up" in err


def test_a_finished_node_survives_removed_settings(root, notify, capsys):
    worker_doc(root)
    assert run(root) == 0
    (root / "etc/kbootd/kbootd.yaml").unlink()  # e.g. removed after the join, to drop the token
    assert run(root) == 0
    write(root, "/etc/kbootd/kbootd.yaml", "role: [")
    assert run(root) == 0
    assert "settings not usable (/etc/kbootd/kbootd.yaml:1: invalid YAML" in capsys.readouterr().err


def test_transient_failure_backs_off_then_succeeds(root, notify):
    worker_doc(root)
    BEHAVIOUR["kubelet-start"] = "preflight"
    assert run(root) == 2
    s = status(root)
    assert (s["state"], s["exit_code"], s["will_retry"]) == ("failed", 2, True)
    assert notify()[-1] == "STATUS=failed: error execution phase kubelet-start: port 10250 is in use"
    assert state(root)["failures"] == 1
    BEHAVIOUR.clear()
    # Pretend the failure was long ago for the second attempt's back-off arithmetic: here it was just now.
    assert run(root) == 0
    assert SEEN["slept"] and 9 < SEEN["slept"][0] <= 10
    assert any(m.startswith("STATUS=join: retrying after failure 1 in 10 s: error execution phase kubelet-start")
               for m in notify())
    assert state(root)["failures"] == 0


@pytest.mark.parametrize("setup,code,msg", [
    (lambda r: None, 3, "no role for this node: kbootd looked for `role` in /etc/kbootd/kbootd.yaml (absent)"),
    (lambda r: worker_doc(r, role="boss"), 3, "'boss' is not a role"),
    (lambda r: worker_doc(r, token=None), 3, "no bootstrap token for this worker"),
    (lambda r: (worker_doc(r), os.chmod(r / "etc/kbootd/kbootd.yaml", 0o644)), 3, "readable by others than root"),
])
def test_bad_input_is_permanent(root, notify, setup, code, msg):
    setup(root)
    assert run(root) == code
    assert CALLS == []
    assert msg in notify()[-1] and notify() == []
    s = status(root)
    assert (s["state"], s["will_retry"], s["exit_code"]) == ("failed", False, code)
    assert code in PERMANENT_EXIT_CODES
    assert not (root / "var/lib/kbootd/state.json").exists()


def test_security_failure_in_a_phase_is_permanent(root, notify):
    worker_doc(root)
    BEHAVIOUR["discovery"] = "security"
    assert run(root) == 4
    assert status(root)["will_retry"] is False


def test_unexpected_error_is_a_general_failure(root, notify, capsys):
    worker_doc(root)
    BEHAVIOUR["kubelet-start"] = "bug"
    assert run(root) == 1
    assert status(root)["will_retry"] is True
    assert "internal error" in capsys.readouterr().err


def test_changed_settings_mid_run_start_over(root, notify, capsys):
    worker_doc(root)
    BEHAVIOUR["kubelet-start"] = "preflight"
    run(root)
    BEHAVIOUR.clear()
    CALLS.clear()
    worker_doc(root, endpoint="10.0.0.99:6443")
    assert run(root) == 0
    assert CALLS == ["discovery", "kubelet-start"]
    assert "starting over instead of resuming" in capsys.readouterr().err


def test_changed_role_mid_run_is_refused(root, notify):
    worker_doc(root)
    BEHAVIOUR["kubelet-start"] = "preflight"
    run(root)
    write(root, "/etc/kbootd/kbootd.yaml", "apiVersion: kbootd.io/v1alpha1\nkind: KbootdConfiguration\n"
          "role: control-plane\n")
    assert run(root) == 3
    assert "run `kbootd reset` first" in status(root)["error"]


def test_second_instance_is_refused_and_leaves_status_alone(root, notify, capsys):
    from kbootd.daemon.lock import InstanceLock
    from kbootd.hostio import Host
    from kbootd.paths import Paths

    worker_doc(root)
    with InstanceLock(Host(Paths.rooted(root))):
        assert run(root) == 1
    assert CALLS == [] and not (root / "run/kbootd/status.json").exists()
    assert "another kbootd run is active" in capsys.readouterr().err


def test_sigterm_mid_run_stops_cleanly_and_resumes(root, notify):
    worker_doc(root)
    BEHAVIOUR["discovery"] = "sigterm"
    before = signal.getsignal(signal.SIGTERM)
    assert run(root) == 0
    assert signal.getsignal(signal.SIGTERM) is before
    assert notify()[-1].startswith("STOPPING=1\nSTATUS=stopping")
    assert status(root)["state"] == "stopped" and state(root)["status"] == "running"
    BEHAVIOUR.clear()
    assert run(root) == 0 and state(root)["status"] == "done"


def test_ready_then_execs_the_lean_supervisor(root, notify, monkeypatch):
    worker_doc(root, supervise={"interval": "2m"})
    seen = {}

    def execve(path, argv, env):
        seen.update(path=path, argv=argv, env=env, inheritable=os.get_inheritable(int(argv[argv.index("--lock-fd") + 1])))

    monkeypatch.setattr(daemon_main.os, "execve", execve)
    assert run(root, no_supervise=False) == 0
    argv = seen["argv"]
    assert argv[1:3] == ["-m", "kbootd.daemon.supervise"] and argv[argv.index("--interval") + 1] == "120"
    # the certificate settings go along; a worker's configuration has no certificates directory
    assert argv[argv.index("--renew-before") + 1] == "7776000" and "--ca-warn-before" in argv
    assert "--cert-dir" not in argv
    assert seen["inheritable"] and seen["env"]["NOTIFY_SOCKET"].endswith("notify.sock")
    assert "NOTIFY_SOCKET" not in os.environ


def test_control_plane_with_matching_pregenerated_ca(root, notify):
    from kbootd.pki import keys

    with keys.key_factory(lambda alg: generate_key("ECDSA-P256")):
        ca = generate()
    write(root, "/etc/kubernetes/pki/ca.crt", ca.cert_pem, 0o644)
    doc = "apiVersion: kbootd.io/v1alpha1\nkind: KbootdConfiguration\nrole: master\ntoken: " + TOKEN + "\n"
    write(root, "/etc/kbootd/kbootd.yaml", doc + f"caCertHashes: [{ca.pin}]\nendpoint: 10.0.0.10\n")
    assert run(root) == 0
    assert CALLS == ["init"] and SEEN["cfg"].bootstrap_tokens[0].token.id == "abcdef"
    assert notify()[-1].startswith("READY=1\nSTATUS=control-plane ")
    write(root, "/etc/kbootd/kbootd.yaml", doc + f"caCertHashes: [{PIN}]\n")
    (root / "var/lib/kbootd/state.json").unlink()
    assert run(root) == 4
    assert "which is not among caCertHashes" in status(root)["error"]


def test_metadata_only_worker(root, notify, capsys):
    ds = {"ds": {"meta_data": {"kbootd-role": "worker", "kbootd-token": TOKEN,
                               "kbootd-endpoint": "10.0.0.10:6443", "kbootd-ca-cert-hash": PIN}}}
    write(root, "/run/cloud-init/instance-data-sensitive.json", json.dumps(ds))
    assert run(root) == 0
    assert status(root)["sources"] == ["datasource metadata (/run/cloud-init/instance-data-sensitive.json)"]
    # cloud-init copies meta-data into the world-readable instance-data.json as well: warned
    # in the journal, in STATUS while reading and after READY=1, and in status.json.
    warning = "the bootstrap token is in datasource meta-data (kbootd-token)"
    assert warning in capsys.readouterr().err
    msgs = notify()
    assert any(m.startswith("STATUS=reading settings; warning: " + warning) for m in msgs), msgs
    assert msgs[-1].startswith("READY=1\nSTATUS=worker ") and "write_files (permissions: '0600')" in msgs[-1]
    assert status(root)["warnings"][0].startswith(warning)


def test_no_warning_without_a_token_in_metadata(root, notify, capsys):
    worker_doc(root, token=TOKEN)
    ds = {"ds": {"meta_data": {"kbootd-endpoint": "10.0.0.10:6443"}}}
    write(root, "/run/cloud-init/instance-data-sensitive.json", json.dumps(ds))
    assert run(root) == 0
    assert "meta-data (kbootd-token)" not in capsys.readouterr().err + "".join(notify())
    assert "warnings" not in status(root)


@pytest.mark.parametrize("mistyped", ["fz1abc:q9w8e7r6t5y4u3i2", "fz1abc.q9w8e7r6t5y4u3i2x", "q9w8e7r6t5y4u3i2"])
def test_a_mistyped_token_reaches_no_journal_status_or_status_json(root, notify, capsys, mistyped):
    """Issue 11 #5: nothing of a token that does not parse, in any of the daemon's outputs."""
    worker_doc(root, token=mistyped)
    assert run(root) == 3
    seen = "\n".join(notify()) + (root / "run/kbootd/status.json").read_text() + "".join(capsys.readouterr())
    assert "the token (" in seen
    for i in range(len(mistyped) - 4):
        piece = mistyped[i:i + 5]
        assert piece not in seen or piece in "fz1abc", piece


@pytest.mark.parametrize("text,field", [
    ('{"version": 1, "status": "running", "role": "worker", "failures": null}', "failures"),
    ('{"version": 1, "status": "running", "role": "worker", "phases_done": {"a": 1}}', "phases_done"),
    ("[" * 100_000, "not valid JSON"),
])
def test_a_mistyped_state_file_stops_the_daemon_for_good_naming_it(root, notify, text, field):
    """Issue 11 #8: exit 3 (no restart loop), the file and field named, the state left for the operator."""
    worker_doc(root)
    write(root, "/var/lib/kbootd/state.json", text)
    assert run(root) == 3
    assert CALLS == []
    s = status(root)
    assert (s["state"], s["will_retry"], s["exit_code"]) == ("failed", False, 3)
    assert "/var/lib/kbootd/state.json" in s["error"] and field in s["error"]
    assert (root / "var/lib/kbootd/state.json").read_text() == text


def test_supervise_args_carry_the_control_planes_certificate_settings():
    from types import SimpleNamespace

    from kbootd.daemon.document import Document

    doc = Document(role="control-plane", renew_before=86400 * 30)
    cfg = SimpleNamespace(cluster=SimpleNamespace(certificates_dir="/srv/pki", cert_validity=3600.0 * 24 * 100))
    assert daemon_main.supervise_args(doc, cfg) == ["--renew-before", "2592000", "--ca-warn-before", "31536000",
                                                    "--cert-dir", "/srv/pki", "--cert-validity", "8640000"]
    args = supervise._args(["--renew-before", "2592000", "--cert-dir", "/srv/pki"])
    assert (args.renew_before, args.cert_dir, args.cert_validity) == (2592000.0, "/srv/pki", 8760 * 3600.0)
