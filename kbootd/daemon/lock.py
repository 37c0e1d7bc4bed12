"""One kbootd run at a time: flock on /run/kbootd/kbootd.lock, with an inode re-check.

Releasing unlinks the file before closing it. A second process may have opened the old
file just before that and then wins its flock on an inode nobody else will ever see: so
after locking, the holder checks that the path still names the inode it locked, and
starts over if not (certbot's lock does the same). The file holds the holder's pid, for
the "already running" message. This is the one file the daemon opens itself rather than
through kbootd.hostio: a lock needs a descriptor that stays open, not a written file.

One host-wide lock (issue 11 #2): the daemon (`kbootd run` and its supervisor) and every
CLI command that changes the host (init, join, reset, phase) take this same lock under
the root, so two runs never interleave their writes. The file holds "<pid> <command>"
so the second run can name its holder.
"""

from __future__ import annotations

import fcntl
import os
import time

from kbootd.errors import KbootdError
from kbootd.hostio import Host

DAEMON = "kbootd run"  # the supervising daemon's name as a holder: it keeps the lock while the node is up


class LockHeld(KbootdError):
    """Another kbootd run holds the lock."""


class InstanceLock:
    def __init__(self, host: Host, command: str = DAEMON) -> None:
        self.host = host
        self.command = command
        self.path = host.paths.lock_file
        self.real = host.paths.at(self.path)
        self.fd: int | None = None
        # The directories this lock created (run_dir and missing parents, deepest first):
        # release removes them again if empty, so a CLI run under --root leaves no trace.
        self._made_dirs: list[str] = []

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

    def acquire(self, wait: float = 0.0) -> InstanceLock:
        """Take the lock; with wait > 0, retry for that many seconds before giving up."""
        deadline = time.monotonic() + wait
        while True:
            try:
                return self._try_acquire()
            except LockHeld:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)

    def holder(self) -> tuple[str, str]:
        """(pid, command) of the current holder as it wrote them, or ("", "") if unknown."""
        try:
            fd = os.open(self.real, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            return "", ""
        try:
            return _parse_holder(os.pread(fd, 256, 0))
        finally:
            os.close(fd)

    def _try_acquire(self) -> InstanceLock:
        run_dir = self.host.paths.run_dir
        while True:
            if not self.host.is_dir(run_dir):
                d = run_dir
                while d not in ("", "/") and not self.host.is_dir(d):
                    self._made_dirs.append(d)
                    d = d.rsplit("/", 1)[0]
                self.host.ensure_dir(run_dir, 0o755)
            try:
                fd = os.open(self.real, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            except FileNotFoundError:
                continue  # another run removed the empty run_dir just now: make it again
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid, command = _parse_holder(os.pread(fd, 256, 0))
                os.close(fd)
                who = f"pid {pid or 'unknown'}" + (f", {command}" if command else "")
                raise LockHeld(
                    f"another kbootd run is active ({who} holds {self.path}); wait for it to finish, "
                    "or see `kbootd status` or `systemctl status kbootd`") from None
            except BaseException:
                os.close(fd)
                raise
            st, fst = _stat(self.real), os.fstat(fd)
            if st is not None and (st.st_dev, st.st_ino) == (fst.st_dev, fst.st_ino):
                break
            os.close(fd)  # the file was released (unlinked) between our open and our flock: retry
        os.ftruncate(fd, 0)
        # The command is kbootd's own words (no argument values): nothing secret goes in.
        os.pwrite(fd, f"{os.getpid()} {self.command}\n".encode(), 0)
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
        for d in self._made_dirs:
            try:
                os.rmdir(self.host.paths.at(d))
            except OSError:
                break  # not empty (status.json, another run's lock): it and its parents stay
        self._made_dirs = []

    def __enter__(self) -> InstanceLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _stat(path: os.PathLike[str] | str) -> os.stat_result | None:
    try:
        return os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _parse_holder(raw: bytes) -> tuple[str, str]:
    text = raw.decode(errors="replace").strip()
    pid, _, command = text.partition(" ")
    return (pid if pid.isdigit() else ""), "".join(ch for ch in command if ch.isprintable())[:80]
