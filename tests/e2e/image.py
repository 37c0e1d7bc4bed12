"""The base root file systems e2e hosts boot from: one per Debian release (SUITES), with
systemd, cloud-init and kbootd's Debian dependencies, built once by build-image.sh, cached
as a tarball keyed by its recipe, and unpacked once next to it as the read-only lower layer
of host overlays."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD_SCRIPT = HERE / "build-image.sh"
CACHE = Path(os.environ.get("KBOOTD_E2E_CACHE", "/var/cache/kbootd-e2e"))
# nsenter/flock/tar come with util-linux/tar (essential); the others are CI's extra packages.
TOOLS = {"systemd-nspawn": "systemd-container", "debootstrap": "debootstrap",
         "zstd": "zstd", "ip": "iproute2", "nsenter": "util-linux", "flock": "util-linux",
         "tar": "tar", "chroot": "coreutils"}
BUILD_TIMEOUT = 1200      # debootstrap over a slow mirror; a warm cache returns at once

# The releases kbootd is tested on, and what each ships (checked by test_e2e_smoke, so a
# new point release that changes them is noticed and the README's platform line updated).
RELEASES = {
    "bookworm": {"debian": "12", "systemd": "252", "cloud-init": "22.4", "python": "3.11",
                 "cryptography": "38."},
    "trixie": {"debian": "13", "systemd": "257", "cloud-init": "25.1", "python": "3.13",
               "cryptography": "43."},
}
# KBOOTD_E2E_SUITES=bookworm (comma-separated) runs the e2e on fewer releases.
SUITES = tuple(s.strip() for s in os.environ.get("KBOOTD_E2E_SUITES", ",".join(RELEASES)).split(",")
               if s.strip())


class Unavailable(Exception):
    """The machine cannot run e2e hosts (a skip locally, a failure in CI)."""


def check_machine() -> None:
    if os.geteuid() != 0:
        raise Unavailable("e2e tests need root (systemd-nspawn, network namespaces, cgroups)")
    missing = sorted({pkg for tool, pkg in TOOLS.items() if shutil.which(tool) is None})
    if missing:
        raise Unavailable("missing host tools; apt-get install --no-install-recommends "
                          + " ".join(missing))
    if not Path("/sys/fs/cgroup/cgroup.controllers").exists() and \
            not Path("/sys/fs/cgroup/unified").is_dir():
        raise Unavailable("no cgroup v2 hierarchy (needed to give each container its own cgroup)")


def build_base_image(suite: str = "bookworm", cache: Path = CACHE) -> Path:
    """The suite's cached rootfs tarball, built on a cache miss (~70-160 s, needs the
    Debian mirror of the machine's apt sources)."""
    cache.mkdir(parents=True, exist_ok=True)
    log = cache / f"build-{suite}.log"
    with open(log, "wb") as err:
        try:
            r = subprocess.run([str(BUILD_SCRIPT), str(cache)], stdout=subprocess.PIPE,
                               stderr=err, timeout=BUILD_TIMEOUT, check=False,
                               env={**os.environ, "SUITE": suite})
        except subprocess.TimeoutExpired:
            raise Unavailable(f"base image build exceeded {BUILD_TIMEOUT}s; log: {log}") from None
    if r.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-15:]
        raise Unavailable(f"{suite} image build failed (rc={r.returncode}; no network to the "
                          f"Debian mirror?); log: {log}\n" + "\n".join(tail))
    return Path(r.stdout.decode().strip().splitlines()[-1])


def unpack(tar: Path) -> Path:
    """Unpack the tarball once into <name>.d next to it; returns that root directory.
    Hosts only ever use it as an overlay lower dir, so it is shared by all runs."""
    root = tar.with_name(tar.name.split(".tar")[0] + ".d")
    with open(tar.parent / ".unpack.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)                 # parallel runs unpack once
        if not (root / "etc/os-release").exists():
            tmp = root.with_name(root.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            subprocess.run(["tar", "--numeric-owner", "--xattrs", "--acls", "-I", "zstd",
                            "-C", str(tmp), "-xf", str(tar)], check=True, timeout=600)
            shutil.rmtree(root, ignore_errors=True)
            tmp.rename(root)
    return root


def python_version(root: Path) -> str:
    """The image's python3 (e.g. "3.11"), read from the /usr/bin/python3 symlink."""
    target = os.readlink(root / "usr/bin/python3")
    return Path(target).name.removeprefix("python")
