"""A real SIGKILL at each write boundary of the I/O layer (issue 11's crash suite).

`killed_after(n, fn)` forks; the child counts completed atomic writes
(kbootd.hostio._atomic_write: temp file, fsync, rename, directory fsync) and sends itself
SIGKILL right after the n-th, i.e. at the last moment a power cut could leave that file
and nothing after it. A fork is used rather than a fresh interpreter so that ~40 kills
cost seconds, not minutes; bench/crash.py does the same with whole processes and
random timing.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from kbootd import hostio


def killed_after(n: int, fn: Callable[[], object], *, before_rename: bool = False) -> bool:
    """Run fn in a child killed after its n-th write. True if it was killed, False if fn finished first.

    With before_rename, the kill comes instead just before the n-th write's rename: the
    temp file is complete and fsynced, the target untouched.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            real = hostio._atomic_write
            count = 0

            def counting(path: Path, data: bytes, mode: int) -> None:
                nonlocal count
                real(path, data, mode)
                count += 1
                if count == n:
                    os.kill(os.getpid(), signal.SIGKILL)

            real_replace = os.replace

            def replace(src: object, dst: object) -> None:
                nonlocal count
                count += 1
                if count == n:
                    os.kill(os.getpid(), signal.SIGKILL)
                real_replace(src, dst)  # type: ignore[arg-type]

            if before_rename:
                os.replace = replace  # type: ignore[assignment]  # this child only: it dies
            else:
                hostio._atomic_write = counting  # type: ignore[assignment]
            fn()
        except BaseException:  # noqa: BLE001 - the parent only needs to know it did not finish
            code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return True
    assert os.WEXITSTATUS(status) == 0, f"the run before the kill failed (exit {os.WEXITSTATUS(status)})"
    return False


def keys_and_cas(root: Path) -> dict[str, bytes]:
    """Every private key and CA certificate under root: what must never change once written."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and (p.suffix in (".key", ".pub") or p.name == "ca.crt") and ".kbootd-tmp-" not in p.name:
            out[str(p.relative_to(root))] = p.read_bytes()
    return out


def files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and ".kbootd-tmp-" not in p.name}
