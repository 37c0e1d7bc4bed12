"""Tests fail closed on side effects: any unexpected subprocess or off-host network call raises.

Mark a test `@pytest.mark.subprocess` when running a real tool (openssl, systemd-analyze)
is the point of the test; loopback connections are always allowed (test servers).
"""

from __future__ import annotations

import ipaddress
import socket
import subprocess
from collections.abc import Iterator

import pytest

_real_popen_init = subprocess.Popen.__init__
_real_connect = socket.socket.connect
_real_getaddrinfo = socket.getaddrinfo


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "subprocess: the test runs real host tools on purpose")


def _loopback(host: object) -> bool:
    if host in ("localhost", "", None):
        return True
    try:
        return ipaddress.ip_address(str(host)).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def _fail_closed_on_side_effects(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("subprocess") is None and request.node.get_closest_marker("e2e") is None:
        def no_popen(self, args, *a, **kw):  # noqa: ANN001
            raise AssertionError(f"unexpected subprocess in a test: {args!r}")

        monkeypatch.setattr(subprocess.Popen, "__init__", no_popen)

    def connect(self, address):  # noqa: ANN001
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
            raise AssertionError(f"unexpected network connection in a test: {address!r}")
        return _real_connect(self, address)

    def getaddrinfo(host, *a, **kw):  # noqa: ANN001
        if not _loopback(host) and not _is_ip(host):
            raise AssertionError(f"unexpected DNS lookup in a test: {host!r}")
        return _real_getaddrinfo(host, *a, **kw)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture(autouse=True)
def _fresh_redaction_registry() -> Iterator[None]:
    """Secrets registered by one test (fuzzed tokens register arbitrary words such as
    "namespace") must not redact another test's output: the registry lives per process."""
    from kbootd import redact

    saved = set(redact._secrets)
    yield
    redact._secrets.clear()
    redact._secrets.update(saved)


def _is_ip(host: object) -> bool:
    try:
        ipaddress.ip_address(str(host))
        return True
    except ValueError:
        return False


@pytest.fixture
def root(tmp_path):
    """A host root in a temp dir."""
    r = tmp_path / "root"
    r.mkdir()
    return r


@pytest.fixture
def run_cli(capsys):
    """Run the kbootd CLI in-process; returns (exit code, stdout, stderr)."""
    from kbootd.cli.main import main

    def run(*argv: str) -> tuple[int, str, str]:
        try:
            code = main(list(argv))
        except SystemExit as e:  # argparse --help
            code = int(e.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def tree_snapshot(path) -> dict[str, tuple[int, bytes]]:
    """Every file under path with its mode and content, for 'nothing changed' checks."""
    from pathlib import Path

    snap = {}
    for p in sorted(Path(path).rglob("*")):
        if p.is_file():
            snap[str(p.relative_to(path))] = (p.stat().st_mode & 0o7777, p.read_bytes())
        elif p.is_dir():
            snap[str(p.relative_to(path)) + "/"] = (p.stat().st_mode & 0o7777, b"")
    return snap
