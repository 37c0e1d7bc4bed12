"""The one module that changes the host: files, directories, commands, services.

Every write is atomic (temp file created with its final mode in the same directory,
fsync, rename, fsync of the directory). With a root other than "/" nothing runs on the
host: commands and service actions are recorded and printed instead. In dry-run,
nothing changes at all: writes land in an in-memory overlay (so later phases read what
earlier ones "wrote") and are printed with sensitive content withheld.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess  # noqa: TID251 - this module is the I/O boundary
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kbootd.errors import KbootdError, ValidationError
from kbootd.paths import Paths
from kbootd.redact import redact


@dataclass(frozen=True)
class Action:
    """Something kbootd did, or would have done, to the host."""

    kind: str  # write, mkdir, remove, run
    target: str  # host path, or the command line
    mode: int | None = None
    sensitive: bool = False


@dataclass
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str = ""
    stderr: str = ""
    ran: bool = True


@dataclass
class Host:
    paths: Paths
    dry_run: bool = False
    say: Callable[[str], None] = print
    actions: list[Action] = field(default_factory=list)
    _overlay: dict[str, bytes | None] = field(default_factory=dict)
    _dry_dirs: set[str] = field(default_factory=set)

    @property
    def acts_on_host(self) -> bool:
        return self.paths.is_host and not self.dry_run

    # --- reading ----------------------------------------------------------------
    def read_bytes(self, host_path: str, *, limit: int | None = None) -> bytes | None:
        """Content of a host file, or None if absent (dry-run sees its own writes).

        With a limit, a larger file is an error after reading at most limit+1 bytes (inputs
        from users and cloud-init: /dev/zero or a runaway file must not exhaust memory).
        """
        if host_path in self._overlay:
            return self._overlay[host_path]
        try:
            real = self.paths.at(host_path)
            if limit is None:
                return real.read_bytes()
            with real.open("rb") as f:
                data = f.read(limit + 1)
            if len(data) > limit:

                raise ValidationError(f"{host_path}: larger than {limit} bytes; not an input kbootd reads")
            return data
        except (FileNotFoundError, NotADirectoryError):
            return None
        except IsADirectoryError as e:
            raise KbootdError(f"{host_path}: expected a file, found a directory") from e
        except PermissionError as e:
            raise KbootdError(f"{host_path}: permission denied (run as root?)") from e

    def read_text(self, host_path: str) -> str | None:
        data = self.read_bytes(host_path)
        return None if data is None else data.decode("utf-8", errors="replace")

    def exists(self, host_path: str) -> bool:
        if host_path in self._overlay:
            return self._overlay[host_path] is not None
        return self.paths.at(host_path).exists()

    def listdir(self, host_path: str) -> list[str]:
        p = self.paths.at(host_path)
        names = set(os.listdir(p)) if p.is_dir() else set()
        prefix = host_path.rstrip("/") + "/"
        for k, v in self._overlay.items():
            if k.startswith(prefix) and "/" not in k[len(prefix):]:
                (names.add if v is not None else names.discard)(k[len(prefix):])
        return sorted(names)

    def is_dir(self, host_path: str) -> bool:
        return self.paths.at(host_path).is_dir()

    # --- writing ----------------------------------------------------------------
    def write_file(
        self, host_path: str, content: bytes | str, mode: int, *, sensitive: bool = False,
        show: bool = True,
    ) -> bool:
        """Write atomically with an explicit mode. Returns False when content was already there."""
        data = content.encode() if isinstance(content, str) else content
        if self.read_bytes(host_path) == data and self._mode_ok(host_path, mode):
            return False
        self.actions.append(Action("write", host_path, mode, sensitive))
        if self.dry_run:
            self._overlay[host_path] = data
            if not show:
                return True
            if sensitive:
                self.say(f'[dryrun] Would write file "{host_path}" (mode {mode:04o}); '
                         "content not shown: it holds key material or credentials")
            else:
                self.say(f'[dryrun] Would write file "{host_path}" (mode {mode:04o}) with content:')
                self.say(redact(data.decode("utf-8", errors="replace")).rstrip("\n"))
            return True
        real = self.paths.at(host_path)
        self._ensure_parent(real)
        _atomic_write(real, data, mode)
        return True

    def _mode_ok(self, host_path: str, mode: int) -> bool:
        if self.dry_run and host_path in self._overlay:
            return True
        try:
            return (self.paths.at(host_path).stat().st_mode & 0o7777) == mode
        except FileNotFoundError:
            return False

    def _ensure_parent(self, real: Path) -> None:
        if not real.parent.is_dir():
            # Parents nobody declared get the conventional 0755.
            real.parent.mkdir(mode=0o755, parents=True, exist_ok=True)

    def ensure_dir(self, host_path: str, mode: int = 0o755) -> None:
        real = self.paths.at(host_path)
        if real.is_dir() or host_path in self._dry_dirs:
            return
        self.actions.append(Action("mkdir", host_path, mode))
        if self.dry_run:
            self._dry_dirs.add(host_path)
            self.say(f'[dryrun] Would ensure that "{host_path}" directory is present')
            return
        real.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        try:
            os.mkdir(real, mode)
        except FileExistsError:
            return
        os.chmod(real, mode)  # mkdir's mode is masked by the umask

    def remove(self, host_path: str) -> bool:
        """Remove a file or a directory tree. Returns False if nothing was there.

        A symlink is removed itself, never its target; the tree is removed without
        following the symlinks in it (shutil.rmtree), and the path was resolved inside the
        root (Paths.at), so nothing outside the root is ever deleted.
        """
        real = self.paths.at(host_path, follow=False)
        if not real.exists() and not real.is_symlink() and host_path not in self._overlay:
            return False
        self.actions.append(Action("remove", host_path))
        if self.dry_run:
            self._overlay[host_path] = None
            self.say(f'[dryrun] Would remove "{host_path}"')
            return True
        if real.is_dir() and not real.is_symlink():
            shutil.rmtree(real)
        else:
            real.unlink()
        return True

    # --- commands and services ---------------------------------------------------
    def run(self, argv: Sequence[str], *, check: bool = True, timeout: float = 120) -> CommandResult:
        """Run a command on the host, or record and print it when not acting on the host."""
        line = shlex.join(argv)
        self.actions.append(Action("run", line))
        if not self.acts_on_host:
            why = "dry-run" if self.dry_run else f"root is {self.paths.root}"
            self.say(f"[{'dryrun' if self.dry_run else 'host'}] Would run: {redact(line)} ({why})")
            return CommandResult(tuple(argv), 0, ran=False)
        try:
            p = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
        except FileNotFoundError as e:
            if not check:
                # The caller treats failure as non-fatal; a missing program is one more such failure.
                return CommandResult(tuple(argv), 127, "", f"{argv[0]}: not found in PATH")
            raise KbootdError(f"cannot run {argv[0]}: not found in PATH") from e
        except subprocess.TimeoutExpired as e:
            raise KbootdError(f"{redact(line)}: timed out after {timeout:.0f}s") from e
        res = CommandResult(tuple(argv), p.returncode, p.stdout, p.stderr)
        if check and p.returncode != 0:
            raise KbootdError(
                f"{redact(line)} failed with exit code {p.returncode}: {redact(p.stderr.strip())[:500]}"
            )
        return res

    def systemctl(self, *args: str, check: bool = True) -> CommandResult:
        return self.run(["systemctl", *args], check=check)

    def query(self, argv: Sequence[str], timeout: float = 10) -> CommandResult | None:
        """Run a read-only probe (e.g. `kubelet --version`). None when not on the host or absent."""
        if not self.paths.is_host:
            return None
        try:
            p = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
        except (FileNotFoundError, PermissionError, subprocess.TimeoutExpired):
            return None
        return CommandResult(tuple(argv), p.returncode, p.stdout, p.stderr)


def _atomic_write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.kbootd-tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)  # left by a crashed run that had our pid
    _remove_stale_temps(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)  # the umask must not widen or narrow the explicit mode
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _remove_stale_temps(path: Path) -> None:
    """Temp files of this path left by runs killed before their rename (they may hold a key).

    Only those whose process is gone: runs are serialised by the host-wide lock, but a
    live process's temp file is never touched.
    """
    prefix = f".{path.name}.kbootd-tmp-"
    try:
        names = [n for n in os.listdir(path.parent) if n.startswith(prefix)]
    except OSError:
        return
    for name in names:
        pid = name[len(prefix):]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # alive
        except ProcessLookupError:
            pass
        except PermissionError:
            continue  # alive, someone else's
        try:
            os.unlink(path.parent / name)
        except FileNotFoundError:
            pass
