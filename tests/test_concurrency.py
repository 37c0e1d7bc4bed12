"""Concurrent runs (issue 11 #2): one host-wide lock under the root, taken by the daemon and by
every CLI command that changes the host. Real processes: CLI+CLI and CLI+daemon."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_crash import CLUSTER_HALF, CONFIG, check_pki

pytestmark = pytest.mark.subprocess
REPO = Path(__file__).resolve().parents[1]
# The real CLI, with its first phase (init's cri, reset's preflight) held until a file appears: a run that is
# guaranteed to be mid-way, holding the lock, while the test starts a second one.
HELD = """\
import os, sys, time
import kbootd.cri as cri
import kbootd.reset as reset
def held(real):
    def slow(ctx):
        while not os.path.exists(os.environ["KBOOTD_TEST_GO"]):
            time.sleep(0.05)
        return real(ctx)
    return slow
cri.configure = held(cri.configure)
reset.preflight = held(reset.preflight)
from kbootd.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFY_SOCKET")}
    e["PYTHONPATH"] = str(REPO)
    return e


def init_argv(root: Path, config: Path) -> list[str]:
    return ["init", "--config", str(config), "--root", str(root), "--skip-phases", CLUSTER_HALF,
            "--ignore-preflight-errors", "all"]


def kbootd(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kbootd", *argv], capture_output=True, text=True,
                          env=env(), timeout=timeout, check=False)


def held(tmp_path: Path, *argv: str) -> tuple[subprocess.Popen[str], Path]:
    go = tmp_path / "go"
    e = env()
    e["KBOOTD_TEST_GO"] = str(go)
    p = subprocess.Popen([sys.executable, "-c", HELD, *argv], env=e, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    return p, go


def wait_for_lock(root: Path, pid: int, timeout: float = 30) -> None:
    lock = root / "run/kbootd/kbootd.lock"
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if lock.exists() and lock.read_text().startswith(f"{pid} "):
            return
        time.sleep(0.05)
    raise AssertionError(f"pid {pid} never took the lock")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    p = tmp_path / "kubeadm.yaml"
    p.write_text(CONFIG)
    return p


def test_cli_while_cli_fails_naming_the_holder_and_changes_nothing(tmp_path: Path, config: Path) -> None:
    root = tmp_path / "R"
    root.mkdir()
    first, go = held(tmp_path, *init_argv(root, config))
    try:
        wait_for_lock(root, first.pid)
        for argv in (init_argv(root, config), ["reset", "-f", "--root", str(root)],
                     ["phase", "init", "certs", "--config", str(config), "--root", str(root)]):
            second = kbootd(*argv)
            assert second.returncode == 1, second.stderr
            assert f"another kbootd run is active (pid {first.pid}, kbootd init holds /run/kbootd/kbootd.lock)" \
                in second.stderr
        assert not (root / "etc/kubernetes").exists()  # the second runs wrote nothing
        # a dry run changes nothing and needs no lock
        assert kbootd(*init_argv(root, config), "--dry-run").returncode == 0
        go.touch()
        assert first.wait(60) == 0, first.stderr.read() if first.stderr else ""
    finally:
        first.kill()
        first.wait()
    assert kbootd(*init_argv(root, config)).returncode == 0  # free again once the holder is done
    check_pki(root)


def test_two_inits_at_once_never_corrupt_the_pki(tmp_path: Path, config: Path) -> None:
    for i in range(3):
        root = tmp_path / f"R{i}"
        root.mkdir()
        procs = [subprocess.Popen([sys.executable, "-m", "kbootd", *init_argv(root, config)], env=env(),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        results = [(p.wait(60), p.stderr.read() if p.stderr else "") for p in procs]
        for p in procs:
            for f in (p.stdout, p.stderr):
                if f:
                    f.close()
        assert any(code == 0 for code, _ in results), results
        for code, err in results:
            assert code == 0 or (code == 1 and "another kbootd run is active" in err), err
        check_pki(root)


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def worker_settings(root: Path) -> None:
    d = root / "etc/kbootd"
    d.mkdir(parents=True)
    f = d / "kbootd.yaml"
    f.write_text("apiVersion: kbootd.io/v1alpha1\nkind: KbootdConfiguration\nrole: worker\n"
                 "token: abcdef.0123456789abcdef\n"
                 f"endpoint: 127.0.0.1:{closed_port()}\n"
                 "caCertHashes: [sha256:0b5c07da32772eb431ea1ba6f4614eab673b8c42a313c767bd3f31f49da01d2d]\n"
                 "nodeName: worker-1\n"
                 "kubeadm:\n  apiVersion: kubeadm.k8s.io/v1beta4\n  kind: JoinConfiguration\n"
                 "  nodeRegistration: {ignorePreflightErrors: [all]}\n")
    os.chmod(f, 0o600)


@pytest.mark.skipif(os.geteuid() != 0, reason="the daemon requires its settings to be owned by root")
def test_cli_while_the_daemon_runs_and_the_daemon_while_a_cli_runs(tmp_path: Path, config: Path) -> None:
    root = tmp_path / "R"
    root.mkdir()
    worker_settings(root)
    # the daemon, waiting for a control plane that is not there, holds the lock
    daemon = subprocess.Popen([sys.executable, "-m", "kbootd", "run", "--root", str(root)], env=env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_lock(root, daemon.pid)
        cli = kbootd(*init_argv(root, config))
        assert cli.returncode == 1
        assert f"(pid {daemon.pid}, kbootd run holds /run/kbootd/kbootd.lock)" in cli.stderr
        cli = kbootd("reset", "-f", "--root", str(root))  # under --root it cannot stop the daemon for us
        assert cli.returncode == 1 and f"pid {daemon.pid}, kbootd run" in cli.stderr
        assert not (root / "etc/kubernetes/pki").exists()
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)
        if daemon.stderr:
            daemon.stderr.close()
    # now a CLI run holds the lock and the daemon starts
    first, go = held(tmp_path, "reset", "-f", "--root", str(root))
    try:
        wait_for_lock(root, first.pid)
        d2 = kbootd("run", "--root", str(root))
        assert d2.returncode == 1
        assert f"pid {first.pid}, kbootd reset" in d2.stdout + d2.stderr
        assert (root / "etc/kbootd/kbootd.yaml").exists()
        go.touch()
        assert first.wait(60) == 0
    finally:
        first.kill()
        first.wait()
