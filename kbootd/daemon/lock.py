"""One kbootd run at a time: flock on /run/kbootd/kbootd.lock, with an inode re-check.

Releasing unlinks the file before closing it. A second process may have opened the old
file just before that and then wins its flock on an inode nobody else will ever see: so
after locking, the holder checks that the path still names the inode it locked, and
starts over if not (certbot's lock does the same). The file holds the holder's pid, for
the "already running" message. This is the one file the daemon opens itself rather than
through kbootd.hostio: a lock needs a descriptor that stays open, not a written file.
"""

from __future__ import annotations

import fcntl
import os

from kbootd.errors import KbootdError
from kbootd.hostio import Host


class LockHeld(KbootdError):
    """Another kbootd run holds the lock."""


class InstanceLock:
    def __init__(self, host: Host) -> None:
        self.host = host
        self.path = host.paths.lock_file
        self.real = host.paths.at(self.path)
        self.fd: int | None = None

    @classmethod
    def adopt(cls, host: Host, fd: int) -> InstanceLock:
        """Take over a lock inherited across exec (the lean supervisor keeps the run's lock)."""
        lock = cls(host)
        st, fst = _stat(lock.real), os.fstat(fd)
        if st is None or (st.st_dev, st.st_ino) != (fst.st_dev, fst.st_ino):
            raise KbootdError(f"{lock.path}: the inherited lock no longer matches the lock file")
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # already ours: succeeds at once
        os.set_inheritable(fd, False)
        lock.fd = fd
        return lock

    def acquire(self) -> InstanceLock:
        self.host.ensure_dir(self.host.paths.run_dir, 0o755)
        while True:
            fd = os.open(self.real, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
                os.close(fd)
                raise LockHeld(
                    f"another kbootd run is active (pid {holder or 'unknown'} holds {self.path}); "
                    "see `kbootd status` or `systemctl status kbootd`") from None
            except BaseException:
                os.close(fd)
                raise
            st, fst = _stat(self.real), os.fstat(fd)
            if st is not None and (st.st_dev, st.st_ino) == (fst.st_dev, fst.st_ino):
                break
            os.close(fd)  # the file was released (unlinked) between our open and our flock: retry
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def keep_across_exec(self) -> int:
        """The descriptor number to hand to the exec'd supervisor."""
        if self.fd is None:
            raise RuntimeError("lock not held")
        os.set_inheritable(self.fd, True)
        return self.fd

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.real.unlink()
        except FileNotFoundError:
            pass
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> InstanceLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _stat(path: os.PathLike[str] | str) -> os.stat_result | None:
    try:
        return os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return None
