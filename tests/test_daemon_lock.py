import os

import pytest

from kbootd.daemon.lock import InstanceLock, LockHeld
from kbootd.errors import KbootdError
from kbootd.hostio import Host
from kbootd.paths import Paths


@pytest.fixture
def host(root):
    return Host(Paths.rooted(root))


def test_second_run_is_refused_with_the_holders_pid(host):
    with InstanceLock(host) as first:
        real = host.paths.at(host.paths.lock_file)
        assert real.read_text().strip() == f"{os.getpid()} kbootd run"
        assert real.stat().st_mode & 0o777 == 0o600
        with pytest.raises(LockHeld) as e:
            InstanceLock(host).acquire()
        assert f"pid {os.getpid()}, kbootd run" in str(e.value) and host.paths.lock_file in str(e.value)
        assert e.value.exit_code == 1
        assert first.fd is not None
    assert not real.exists()  # released: unlinked
    InstanceLock(host).acquire().release()


def test_inode_recheck_retries_when_the_file_was_replaced(host, monkeypatch):
    """The holder released (unlinked) the file between our open and our flock: lock the new file."""
    import kbootd.daemon.lock as lockmod

    host.ensure_dir(host.paths.run_dir)
    real = host.paths.at(host.paths.lock_file)
    real.write_text("")
    stale_ino = real.stat().st_ino
    real_flock = lockmod.fcntl.flock
    calls = {"n": 0}

    def flock(fd, op):
        calls["n"] += 1
        if calls["n"] == 1:  # the first file we opened is swapped out just before we lock it
            real.unlink()
            real.write_text("")
        return real_flock(fd, op)

    monkeypatch.setattr(lockmod.fcntl, "flock", flock)
    lock = InstanceLock(host).acquire()
    assert calls["n"] == 2
    assert os.fstat(lock.fd).st_ino == real.stat().st_ino != stale_ino
    lock.release()


def test_lock_survives_exec_by_descriptor(host):
    lock = InstanceLock(host).acquire()
    fd = lock.keep_across_exec()
    assert os.get_inheritable(fd)
    adopted = InstanceLock.adopt(host, fd)  # what the exec'd supervisor does
    assert adopted.fd == fd and not os.get_inheritable(fd)
    with pytest.raises(LockHeld):
        InstanceLock(host).acquire()
    adopted.release()


def test_adopting_a_foreign_descriptor_fails(host, tmp_path):
    lock = InstanceLock(host).acquire()
    other = os.open(tmp_path / "other", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        with pytest.raises(KbootdError, match="no longer matches"):
            InstanceLock.adopt(host, other)
    finally:
        os.close(other)
        lock.release()
