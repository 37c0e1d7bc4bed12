"""HostFacts: what it probes on the host, what it reads under a root (kbootd/preflight/facts.py)."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile

import pytest

from kbootd.hostio import CommandResult
from kbootd.preflight.facts import HostFacts, bypasses_proxy, without_credentials
from tests.preflight_fakes import context, write


@pytest.fixture
def on_host():
    """HostFacts on "/" whose commands are answered by a table instead of run."""
    ctx = context("/")
    answers: dict[tuple[str, ...], CommandResult | None] = {}
    ctx.host.query = lambda argv, timeout=10: answers.get(tuple(argv))  # type: ignore[method-assign]
    return HostFacts(ctx), answers


def test_under_a_root_host_only_facts_are_unknown(root):
    facts = HostFacts(context(root))
    assert facts.on_host is False
    assert [facts.euid(), facts.cpu_count(), facts.port_in_use(6443), facts.lookup_host("cp-1"),
            facts.kubelet_version(), facts.unit_active("firewalld")] == [None] * 6


@pytest.mark.parametrize(("meminfo", "expected"), [
    ("MemTotal:        8192000 kB\nMemFree: 1 kB\n", 8000),
    ("MemFree: 1 kB\n", None),
    (None, None),
])
def test_memory_is_read_from_the_root(root, meminfo, expected):
    if meminfo is not None:
        write(root, "/proc/meminfo", meminfo)
    assert HostFacts(context(root)).mem_total_mb() == expected


@pytest.mark.parametrize(("installed", "expected"), [
    ("/usr/sbin/conntrack", "/usr/sbin/conntrack"),
    ("/sbin/conntrack", "/sbin/conntrack"),
    ("/opt/bin/conntrack", None),
    (None, None),
])
def test_which_under_a_root_looks_in_the_usual_bin_dirs(root, installed, expected):
    if installed:
        write(root, installed)
    assert HostFacts(context(root)).which("conntrack") == expected


@pytest.mark.parametrize(("files", "expected"), [
    ([], "not-found"),
    (["/lib/systemd/system/kubelet.service"], "disabled"),
    (["/usr/lib/systemd/system/kubelet.service", "/etc/systemd/system/multi-user.target.wants/kubelet.service"],
     "enabled"),
    (["/etc/systemd/system/multi-user.target.wants/kubelet.service"], "not-found"),  # a dangling link
])
def test_unit_state_under_a_root_comes_from_the_unit_files(root, files, expected):
    for f in files:
        write(root, f)
    assert HostFacts(context(root)).unit_state("kubelet") == expected


@pytest.mark.parametrize(("answer", "expected"), [
    (CommandResult(("systemctl",), 0, "enabled\n"), "enabled"),
    (CommandResult(("systemctl",), 1, "disabled\n"), "disabled"),
    (CommandResult(("systemctl",), 4, "not-found\n"), "not-found"),
    (CommandResult(("systemctl",), 1, "", "Failed to get unit file state for kubelet.service: No such file or "
                                          "directory\n"), "not-found"),
    (None, None),  # no systemctl
])
def test_unit_state_on_the_host_asks_systemctl(on_host, answer, expected):
    facts, answers = on_host
    answers[("systemctl", "is-enabled", "kubelet.service")] = answer
    assert facts.unit_state("kubelet") == expected


@pytest.mark.parametrize(("answer", "expected"), [
    (CommandResult(("kubelet",), 0, "Kubernetes v1.32.0\n"), "Kubernetes v1.32.0"),
    (CommandResult(("kubelet",), 1, "", "boom"), None),
    (None, None),
])
def test_kubelet_version_on_the_host(on_host, answer, expected):
    facts, answers = on_host
    answers[("kubelet", "--version")] = answer
    assert facts.kubelet_version() == expected


@pytest.mark.parametrize(("answer", "expected"), [
    (CommandResult(("systemctl",), 0, "active\n"), True),
    (CommandResult(("systemctl",), 3, "inactive\n"), False),
    (None, None),
])
def test_firewalld_on_the_host(on_host, answer, expected):
    facts, answers = on_host
    answers[("systemctl", "is-active", "firewalld.service")] = answer
    assert facts.unit_active("firewalld") == expected


def test_ports_on_the_host_are_tried_by_listening(on_host):
    facts, _ = on_host
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        busy = held.getsockname()[1]
        assert facts.port_in_use(busy) is True
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    assert facts.port_in_use(free) is False


def test_user_and_cpus_on_the_host(on_host):
    facts, _ = on_host
    assert facts.euid() == os.geteuid()
    assert facts.cpu_count() >= 1


@pytest.fixture(params=["short", "long"])
def socket_root(request, tmp_path):
    """A root whose socket path fits sun_path, and one too deep for it."""
    if request.param == "short":
        d = tempfile.mkdtemp(prefix="kb", dir="/tmp")
        yield d
        shutil.rmtree(d)
    else:
        yield str(tmp_path / ("x" * 60) / ("y" * 60))


@pytest.mark.parametrize(("state", "expected"), [
    ("listening", None),
    ("refusing", "connection refused"),
    ("absent", "no such file or directory"),
])
def test_cri_socket_is_connected_under_the_root(socket_root, state, expected):
    sock_dir = os.path.join(socket_root, "run", "containerd")
    os.makedirs(sock_dir, exist_ok=True)
    cwd = os.getcwd()
    os.chdir(sock_dir)  # bind by a relative name: a deep root is longer than sun_path allows
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        if state != "absent":
            server.bind("containerd.sock")
        if state == "listening":
            server.listen(1)
        facts = HostFacts(context(socket_root))
        assert facts.cri_error("unix:///run/containerd/containerd.sock") == expected
    finally:
        server.close()
        os.chdir(cwd)


@pytest.mark.parametrize(("host", "no_proxy", "expected"), [
    ("10.0.0.10", "", False),
    ("10.0.0.10", "*", True),
    ("10.0.0.10", "10.0.0.10", True),
    ("10.0.0.10", "10.0.0.0/8,example.com", True),
    ("10.96.0.1", "10.0.0.0/16", False),
    ("127.0.0.1", "", True),
    ("fd00::1", "fd00::/64", True),
    ("fd00::1", "[fd00::1]:6443", True),
    ("cp.example.com", ".example.com", True),
    ("cp.example.com", "example.com:443", True),
    ("cp.example.org", "example.com", False),
    ("notexample.com", "example.com", False),
])
def test_no_proxy_rules(host, no_proxy, expected):
    assert bypasses_proxy(host, no_proxy) is expected


@pytest.mark.parametrize(("env", "url", "expected"), [
    ({}, "https://10.0.0.10", None),
    ({"HTTPS_PROXY": "http://proxy:3128"}, "https://10.0.0.10", "http://proxy:3128"),
    ({"https_proxy": "http://proxy:3128", "no_proxy": "10.0.0.0/8"}, "https://10.0.0.10", None),
    ({"HTTP_PROXY": "http://proxy:3128"}, "https://10.0.0.10", None),  # https only follows HTTPS_PROXY
    ({"HTTPS_PROXY": "http://u:s3cr3t-pass@proxy:3128"}, "https://[fd00::1]:1234", "http://proxy:3128"),
])
def test_https_proxy_from_the_environment(root, env, url, expected):
    assert HostFacts(context(root), env=env).https_proxy(url) == expected


@pytest.mark.parametrize(("url", "expected"), [
    ("http://proxy:3128", "http://proxy:3128"),
    ("http://user:pw@proxy:3128", "http://proxy:3128"),
    ("http://user@[fd00::1]:3128/", "http://[fd00::1]:3128/"),
    ("user:pw@proxy:3128", "http://proxy:3128"),
])
def test_proxy_credentials_never_reach_a_message(url, expected):
    assert without_credentials(url) == expected
