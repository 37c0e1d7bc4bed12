import os
import stat

import pytest

from kbootd.hostio import Host
from kbootd.paths import Paths
from tests.conftest import tree_snapshot


@pytest.fixture
def host(root):
    out: list[str] = []
    h = Host(Paths.rooted(root), say=out.append)
    h.out = out  # type: ignore[attr-defined]
    return h


@pytest.mark.parametrize("mode", [0o600, 0o644, 0o640])
def test_write_is_atomic_with_explicit_mode(host, root, mode):
    old = os.umask(0o077)
    try:
        assert host.write_file("/etc/kubernetes/pki/x.key", b"data", mode)
    finally:
        os.umask(old)
    real = root / "etc/kubernetes/pki/x.key"
    assert real.read_bytes() == b"data"
    assert stat.S_IMODE(real.stat().st_mode) == mode
    assert [p.name for p in real.parent.iterdir()] == ["x.key"]  # no temp files left


def test_rewrite_same_content_is_a_no_op(host):
    assert host.write_file("/etc/a", "x", 0o644)
    assert not host.write_file("/etc/a", "x", 0o644)
    assert host.write_file("/etc/a", "y", 0o644)
    assert host.write_file("/etc/a", "y", 0o600)  # mode change rewrites


def test_failed_write_leaves_old_file_and_no_temp(host, root, monkeypatch):
    host.write_file("/etc/a", "old", 0o644)

    def boom(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError):
        host.write_file("/etc/a", "new", 0o644)
    assert (root / "etc/a").read_text() == "old"
    assert sorted(p.name for p in (root / "etc").iterdir()) == ["a"]


def test_stale_temp_file_from_crash_is_replaced(host, root):
    (root / "etc").mkdir()
    (root / "etc" / f".a.kbootd-tmp-{os.getpid()}").write_text("junk")
    host.write_file("/etc/a", "ok", 0o644)
    assert sorted(p.name for p in (root / "etc").iterdir()) == ["a"]


def test_ensure_dir_mode(host, root):
    old = os.umask(0o022)
    try:
        host.ensure_dir("/etc/kubernetes/pki", 0o700)
    finally:
        os.umask(old)
    assert stat.S_IMODE((root / "etc/kubernetes/pki").stat().st_mode) == 0o700


def test_dry_run_changes_nothing_and_reads_its_own_writes(root):
    (root / "etc").mkdir()
    (root / "etc" / "keep").write_text("k")
    before = tree_snapshot(root)
    out: list[str] = []
    h = Host(Paths.rooted(root), dry_run=True, say=out.append)
    h.write_file("/etc/kubernetes/admin.conf", "secret-stuff", 0o600, sensitive=True)
    h.write_file("/etc/kubernetes/manifests/etcd.yaml", "apiVersion: v1\n", 0o600)
    h.ensure_dir("/var/lib/etcd", 0o700)
    h.remove("/etc/keep")
    r = h.run(["systemctl", "restart", "kubelet"])
    assert tree_snapshot(root) == before
    assert not r.ran
    assert h.read_text("/etc/kubernetes/admin.conf") == "secret-stuff"
    assert not h.exists("/etc/keep")
    text = "\n".join(out)
    assert "secret-stuff" not in text
    assert '"/etc/kubernetes/manifests/etcd.yaml"' in text and "apiVersion: v1" in text
    assert "Would run: systemctl restart kubelet" in text


def test_commands_are_recorded_not_run_under_a_root(host):
    # The autouse fixture would fail this test if anything were executed.
    res = host.systemctl("daemon-reload")
    assert not res.ran
    assert host.actions[-1].target == "systemctl daemon-reload"
    assert any("Would run: systemctl daemon-reload" in line for line in host.out)
    assert host.query(["kubelet", "--version"]) is None


def test_listdir_merges_overlay(root):
    (root / "etc/kubernetes/manifests").mkdir(parents=True)
    (root / "etc/kubernetes/manifests/a.yaml").write_text("")
    h = Host(Paths.rooted(root), dry_run=True, say=lambda s: None)
    h.write_file("/etc/kubernetes/manifests/b.yaml", "", 0o600)
    assert h.listdir("/etc/kubernetes/manifests") == ["a.yaml", "b.yaml"]


def test_missing_program_is_a_failure_not_a_crash_when_unchecked(monkeypatch):
    import subprocess

    from kbootd.errors import KbootdError

    def missing(*a, **kw):
        raise FileNotFoundError("modprobe")

    monkeypatch.setattr(subprocess, "run", missing)
    h = Host(Paths.rooted("/"), say=lambda s: None)
    res = h.run(["modprobe", "br_netfilter"], check=False)
    assert res.returncode == 127 and "not found" in res.stderr
    with pytest.raises(KbootdError, match="not found in PATH"):
        h.run(["modprobe", "br_netfilter"])
