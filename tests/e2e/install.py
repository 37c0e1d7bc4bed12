"""Put kbootd into an e2e host before it boots.

install_kbootd() is the one place that knows the artefact format: today a wheel built
from the checkout, unpacked for the image's Debian python3 (which has no pip, and must run
kbootd against Debian's python3-* libraries); once the deb exists, the same call installs
it with apt-get, like a real node would.
"""

from __future__ import annotations

import configparser
import importlib.util
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from tests.e2e.image import python_version
from tests.e2e.nspawn import Host, HostError, Installer

REPO = Path(__file__).resolve().parents[2]
# What a wheel build must not see: VCS data, venvs, build output, caches, the tests.
_NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info",
                                     "__pycache__", ".pytest_cache", ".ruff_cache", "tests")


def build_wheel(out: Path, src: Path = REPO) -> Path:
    """Build kbootd's wheel from a snapshot copy of src: building in place would write
    build/ and *.egg-info into a checkout that other people are working in."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kbootd-wheel-") as tmp:
        snap = Path(tmp) / "src"
        shutil.copytree(src, snap, ignore=_NOT_SOURCE, symlinks=True)
        # Without `wheel` (setuptools < 70.1 needs it) pip fetches the build backend from
        # the index into an isolated env; with it, the build is offline.
        offline = importlib.util.find_spec("setuptools") is not None and (
            importlib.util.find_spec("wheel") is not None or _setuptools_has_bdist_wheel())
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check",
               "-q", "-w", str(out), *(["--no-build-isolation"] if offline else []), str(snap)]
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=300, check=False)
        if r.returncode != 0:
            raise RuntimeError(f"wheel build failed: {' '.join(cmd)}\n{r.stdout}")
    wheels = sorted(out.glob("kbootd-*.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"expected one kbootd wheel in {out}, found {wheels}")
    return wheels[0]


def _setuptools_has_bdist_wheel() -> bool:
    return importlib.util.find_spec("setuptools.command.bdist_wheel") is not None


def install_kbootd(host: Host, artefact: Path) -> None:
    """Install kbootd (wheel now, .deb later) into a prepared, not yet booted host."""
    if artefact.suffix == ".deb":
        dst = f"/run/e2e-debs/{artefact.name}"     # nspawn mounts a tmpfs on /tmp
        r = host.run_offline(["apt-get", "install", "-y", "--no-install-recommends", dst],
                             binds=[(artefact, dst)])
        if r.returncode != 0:
            raise HostError(f"{host.name}: apt-get install {artefact.name} failed:\n"
                            f"{r.stdout}\n{r.stderr}")
    elif artefact.suffix == ".whl":
        _install_wheel(host.upper, host.image, artefact)
    else:
        raise ValueError(f"don't know how to install {artefact}")


def kbootd_installer(artefact: Path) -> Installer:
    """For Host(install=[...])."""
    return lambda host: install_kbootd(host, artefact)


def _install_wheel(upper: Path, image: Path, wheel: Path) -> None:
    """Unpack a pure-Python wheel where Debian's python3 finds local packages and write
    its console scripts, like pip would (the image has no pip)."""
    site = upper / f"usr/local/lib/python{python_version(image)}/dist-packages"
    bindir = upper / "usr/local/bin"
    site.mkdir(parents=True, exist_ok=True)
    bindir.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        info = next(n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info"))
        wheel_meta = z.read(f"{info}/WHEEL").decode()
        if "Root-Is-Purelib: true" not in wheel_meta or any(".data/" in n for n in names):
            # Scripts, headers or data files need pip's install scheme: not needed so far.
            raise RuntimeError(f"{wheel.name}: only pure-Python wheels without .data are supported")
        z.extractall(site)
        entry_points = z.read(f"{info}/entry_points.txt").decode() \
            if f"{info}/entry_points.txt" in names else ""
    for p in site.rglob("*"):             # zipfile drops modes; the upper dir holds only ours
        p.chmod(0o755 if p.is_dir() else 0o644)
    (site / info / "INSTALLER").write_text("kbootd-e2e\n")
    eps = configparser.ConfigParser(delimiters=("=",))
    eps.optionxform = str  # type: ignore[assignment,method-assign]  # names are case-sensitive
    eps.read_string(entry_points)
    for name, target in (eps["console_scripts"].items() if eps.has_section("console_scripts") else []):
        module, _, func = target.strip().partition(":")
        script = bindir / name
        script.write_text(f"#!/usr/bin/python3\nimport sys\nfrom {module} import {func}\n"
                          f"sys.exit({func}())\n")
        script.chmod(0o755)
