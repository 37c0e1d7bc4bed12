"""The deb and rpm packages: built from this checkout by packaging/build-{deb,rpm}.sh,
then checked for their files, dependencies, maintainer scripts and lint.

Needs Debian's packaging tools (HOST_PACKAGES); without them the tests skip
with the apt-get command that installs them, except in CI (CI=true) as root, where a
missing tool is a failure. Each package is built once per module (~10 s for the deb,
~5 s for the rpm). Expected file lists come from the source tarball of the same build,
so they follow kbootd/ and cloud-init/ as they grow.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from kbootd.version import __version__

pytestmark = pytest.mark.subprocess

REPO = Path(__file__).resolve().parents[1]
PACKAGING = REPO / "packaging"
# Debian packages these tests need (CI installs them through KBOOTD_EXTRA_PACKAGES);
# packaging/README.md has the same list.
HOST_PACKAGES = ["dpkg-dev", "debhelper", "dh-python", "pybuild-plugin-pyproject", "python3-all",
                 "python3-setuptools", "python3-wheel", "python3-build", "python3-installer",
                 "python3-shtab", "help2man", "lintian", "rpm", "rpmlint"]
# The build tools must not see the test runner's venv or pyenv shims.
CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": os.environ.get("HOME", "/root"),
             "LC_ALL": "C.UTF-8"}
# Runtime dependencies, from Debian's archive / the RPM distribution.
DEB_DEPENDS = {"python3-cryptography": ">= 38", "python3-kubernetes": ">= 22.6",
               "python3-yaml": ">= 6", "python3-requests": ">= 2.28",
               "python3-shtab": ">= 1.5", "python3-systemd": None}
RPM_REQUIRES = {"python3-cryptography": ">= 38", "python3-kubernetes": ">= 22.6",
                "python3-pyyaml": ">= 6", "python3-requests": ">= 2.28",
                "python3-shtab": ">= 1.5", "python3-systemd": None}
# Never removed by a purge: the cluster's files belong to `kbootd reset`.
CLUSTER_PATHS = ("/etc/kubernetes", "/var/lib/kubelet", "/var/lib/etcd")


# ------------------------------------------------------------------------------ helpers

def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _unavailable(reason: str) -> None:
    if _in_ci() and os.geteuid() == 0:
        pytest.fail(f"packaging tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def _missing_python_modules(*mods: str) -> list[str]:
    """Debian python3 (not the venv) modules that do not import, as package names."""
    missing = []
    for mod in mods:
        r = subprocess.run(["/usr/bin/python3", "-c", f"import {mod}"], env=CLEAN_ENV,
                           capture_output=True, timeout=60, check=False)
        if r.returncode != 0:
            missing.append(f"python3-{mod}")
    return missing


def _check_deb_tools() -> None:
    if shutil.which("dpkg-checkbuilddeps") is None or not Path("/usr/bin/python3").exists():
        _unavailable("no dpkg-dev; apt-get install --no-install-recommends " + " ".join(HOST_PACKAGES))
    missing = [] if shutil.which("lintian") else ["lintian"]
    r = run(["dpkg-checkbuilddeps", str(PACKAGING / "deb/debian/control")], check=False)
    if r.returncode != 0:
        m = re.search(r"Unmet build dependencies: (.*)", r.stderr)
        missing += re.sub(r"\([^)]*\)", "", m.group(1)).split() if m else [r.stderr.strip()]
    if missing:
        _unavailable("missing deb build tools; apt-get install --no-install-recommends "
                     + " ".join(missing))


def _check_rpm_tools() -> None:
    missing = [pkg for tool, pkg in (("rpmbuild", "rpm"), ("rpmspec", "rpm"),
                                     ("rpm2archive", "rpm2cpio"), ("rpmlint", "rpmlint"),
                                     ("help2man", "help2man")) if shutil.which(tool) is None]
    if Path("/usr/bin/python3").exists():
        missing += _missing_python_modules("build", "installer", "shtab", "setuptools", "wheel")
    else:
        missing.append("python3")
    if missing:
        _unavailable("missing rpm build tools; apt-get install --no-install-recommends "
                     + " ".join(sorted(set(missing))))


def run(cmd: list[str], *, check: bool = True, timeout: float = 300,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([str(c) for c in cmd], env=CLEAN_ENV, capture_output=True, text=True,
                       timeout=timeout, check=False, cwd=cwd)
    if check and r.returncode != 0:
        raise AssertionError(f"{cmd} exited {r.returncode}\nstdout:\n{r.stdout[-4000:]}\n"
                             f"stderr:\n{r.stderr[-6000:]}")
    return r


def _build(script: str, out: Path) -> Path:
    r = run(["bash", str(PACKAGING / script), str(out)], check=False, timeout=600)
    if r.returncode != 0:
        pytest.fail(f"{script} failed (rc={r.returncode}):\n{r.stderr[-8000:]}", pytrace=False)
    built = Path(r.stdout.strip().splitlines()[-1])
    assert built.is_file() and built.parent == out, r.stdout
    return built


def _source_members(tar: tarfile.TarFile) -> dict[str, bytes]:
    """Regular files of an unpacked source tree, by path below its top directory."""
    out = {}
    for m in tar.getmembers():
        if m.isfile():
            out[m.name.split("/", 1)[1]] = tar.extractfile(m).read()  # type: ignore[union-attr]
    return out


def _python_files(source: dict[str, bytes]) -> set[str]:
    return {p for p in source if p.startswith("kbootd/") and p.endswith(".py")}


def _cloud_init_files(source: dict[str, bytes]) -> set[str]:
    return {p.removeprefix("cloud-init/") for p in source if p.startswith("cloud-init/")}


# ------------------------------------------------------------------------------- the deb

class Deb:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.out = path.parent
        with tarfile.open(self.out / f"kbootd_{__version__}.tar.xz") as t:
            self.source = _source_members(t)
        r = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(path)], capture_output=True,
                           check=True, timeout=60)
        self.data: dict[str, tarfile.TarInfo] = {}
        self.content: dict[str, bytes] = {}
        with tarfile.open(fileobj=io.BytesIO(r.stdout)) as t:
            for m in t.getmembers():
                name = m.name.removeprefix(".").rstrip("/") or "/"
                self.data[name] = m
                if m.isfile():
                    self.content[name] = t.extractfile(m).read()  # type: ignore[union-attr]
        r = subprocess.run(["dpkg-deb", "--ctrl-tarfile", str(path)], capture_output=True,
                           check=True, timeout=60)
        with tarfile.open(fileobj=io.BytesIO(r.stdout)) as t:
            self.control = {m.name.removeprefix("./"): t.extractfile(m).read().decode()  # type: ignore[union-attr]
                            for m in t.getmembers() if m.isfile()}

    def field(self, name: str) -> str:
        return run(["dpkg-deb", "-f", self.path, name]).stdout.strip()

    def files(self) -> set[str]:
        return {n for n, m in self.data.items() if not m.isdir()}


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Deb:
    _check_deb_tools()
    return Deb(_build("build-deb.sh", tmp_path_factory.mktemp("deb")))


def test_deb_is_named_and_versioned_from_version_py(deb: Deb) -> None:
    assert deb.path.name == f"kbootd_{__version__}_all.deb"
    assert deb.field("Package") == "kbootd"
    assert deb.field("Version") == __version__
    assert deb.field("Architecture") == "all"
    built = sorted(p.name for p in deb.out.iterdir())
    assert built == sorted([f"kbootd_{__version__}.dsc", f"kbootd_{__version__}.tar.xz",
                            f"kbootd_{__version__}_all.buildinfo",
                            f"kbootd_{__version__}_all.changes", deb.path.name])


def test_source_package_holds_the_package_sources_only(deb: Deb) -> None:
    tops = {p.split("/", 1)[0] for p in deb.source}
    assert {"pyproject.toml", "README.md", "kbootd", "units", "cloud-init", "packaging",
            "debian"} <= tops
    assert not tops & {"tests", "bench", "scripts", ".ci", ".git", ".venv"}, tops
    assert not [p for p in deb.source if "__pycache__" in p or ".egg-info" in p]
    assert "debian/changelog" in deb.source and f"kbootd ({__version__}) " in \
        deb.source["debian/changelog"].decode()


def test_deb_contains_exactly_the_expected_files(deb: Deb) -> None:
    py = "/usr/lib/python3/dist-packages"
    dist_info = f"{py}/kbootd-{__version__}.dist-info"
    expected = {
        "/usr/bin/kbootd",
        "/usr/lib/systemd/system/kbootd.service",
        "/usr/share/bash-completion/completions/kbootd",
        "/usr/share/zsh/vendor-completions/_kbootd",
        "/usr/share/man/man1/kbootd.1.gz",
        "/usr/share/doc/kbootd/changelog.gz",
        "/usr/share/doc/kbootd/copyright",
        "/usr/share/lintian/overrides/kbootd",
        "/etc/kbootd/kbootd.yaml.example",
        *(f"{dist_info}/{n}" for n in ("METADATA", "RECORD", "WHEEL", "entry_points.txt",
                                       "top_level.txt")),
        *(f"{py}/{p}" for p in _python_files(deb.source)),
        *(f"/usr/share/kbootd/cloud-init/{p}" for p in _cloud_init_files(deb.source)),
    }
    files = deb.files()
    # dh_compress compresses documentation above 4 kB: either form is fine.
    readme = {"/usr/share/doc/kbootd/README.md", "/usr/share/doc/kbootd/README.md.gz"} & files
    assert len(readme) == 1, files
    assert files - readme == expected, (sorted(files - readme - expected), sorted(expected - files))
    assert {"/etc/kbootd", "/etc/kbootd/kbootd.d"} <= {n for n, m in deb.data.items() if m.isdir()}
    assert not {n for n in deb.data if n.startswith(("/var/", "/run/"))}
    assert deb.data["/usr/bin/kbootd"].mode == 0o755
    assert all(m.uname == "root" and m.gname == "root" for m in deb.data.values())
    assert deb.content["/usr/bin/kbootd"].startswith(b"#!/usr/bin/python3\n")
    # packaging/lean-launcher.py: no `import re` on `kbootd version`'s path (issue 10, item 8).
    assert b"import re" not in deb.content["/usr/bin/kbootd"]
    assert deb.content["/usr/lib/systemd/system/kbootd.service"] == deb.source["units/kbootd.service"]
    for p in _cloud_init_files(deb.source):
        assert deb.content[f"/usr/share/kbootd/cloud-init/{p}"] == deb.source[f"cloud-init/{p}"]


def test_deb_completions_and_man_page_are_generated_from_the_command(deb: Deb) -> None:
    bash = deb.content["/usr/share/bash-completion/completions/kbootd"].decode()
    zsh = deb.content["/usr/share/zsh/vendor-completions/_kbootd"].decode()
    assert "complete " in bash and "kbootd" in bash and "init" in bash and "join" in bash
    assert zsh.startswith("#compdef kbootd") and "join" in zsh
    man = gzip.decompress(deb.content["/usr/share/man/man1/kbootd.1.gz"]).decode()
    assert re.search(rf'^\.TH KBOOTD "1" .*"kbootd {re.escape(__version__)}"', man, re.M), man[:500]
    assert "/etc/kbootd/kbootd.yaml" in man and "join" in man


def test_deb_depends_on_debians_python3_libraries(deb: Deb) -> None:
    depends = {d.split(" ", 1)[0]: d for d in map(str.strip, deb.field("Depends").split(","))}
    for pkg, ver in DEB_DEPENDS.items():
        assert pkg in depends, depends
        if ver:
            assert depends[pkg] == f"{pkg} ({ver})", depends[pkg]
    assert depends.get("python3:any", "").startswith("python3:any (>= 3.10")
    # Nothing vendored: the only Python package shipped is kbootd.
    tops = {n.split("/")[5] for n in deb.files() if n.startswith("/usr/lib/python3/dist-packages/")}
    assert tops == {"kbootd", f"kbootd-{__version__}.dist-info"}, tops
    assert not [n for n in deb.files() if n.startswith("/usr/local/")]


def test_deb_conffiles_are_under_etc_kbootd(deb: Deb) -> None:
    assert deb.control["conffiles"].split() == ["/etc/kbootd/kbootd.yaml.example"]


def test_deb_enables_but_never_starts_or_restarts_the_service(deb: Deb) -> None:
    postinst, prerm = deb.control["postinst"], deb.control["prerm"]
    assert "deb-systemd-helper enable 'kbootd.service'" in postinst
    for script in (postinst, deb.control.get("preinst", "")):
        assert not re.search(r"deb-systemd-invoke\s+\S*(start|restart)|systemctl\s+\S*\s*(start|restart)",
                             script), script
    # prerm stops a running kbootd on removal only, never on upgrade.
    stops = [ln for ln in prerm.splitlines() if "stop" in ln and not ln.lstrip().startswith("#")]
    assert stops == ["\tdeb-systemd-invoke stop kbootd.service >/dev/null || true"], prerm
    assert '[ "$1" = remove ]' in prerm


def test_deb_purge_removes_kbootds_state_only(deb: Deb) -> None:
    postrm = deb.control["postrm"]
    purge = re.search(r'^if \[ "\$1" = "purge" \]; then\n(.*?)^fi$', postrm, re.M | re.S)[1]
    removed = {w for ln in purge.splitlines() if ln.strip().startswith("rm ")
               for w in ln.split()[2:]}
    assert removed == {"/etc/kbootd", "/var/lib/kbootd", "/run/kbootd"}, purge
    for path in CLUSTER_PATHS:
        assert path not in "\n".join(ln for ln in postrm.splitlines()
                                     if not ln.lstrip().startswith("#")), postrm
    assert "deb-systemd-helper purge 'kbootd.service'" in postrm


def test_lintian_is_clean_with_explained_overrides(deb: Deb) -> None:
    r = run(["lintian", "--info", "--display-info", "--fail-on", "error,warning",
             deb.out / f"kbootd_{__version__}_all.changes"], check=False, timeout=300)
    tags = [ln for ln in r.stdout.splitlines() if re.match(r"^[EWIPX]: ", ln)]
    assert r.returncode == 0, r.stdout + r.stderr
    assert not [t for t in tags if t.startswith(("E:", "W:"))], tags
    assert not [t for t in tags if "unused-override" in t or "mismatched-override" in t], tags
    # Not even info tags (the unit has Documentation=, packaging/README.md "Lint").
    assert not tags, tags
    for overrides in (PACKAGING / "deb/debian/kbootd.lintian-overrides",
                      PACKAGING / "deb/debian/source/lintian-overrides"):
        lines = overrides.read_text().splitlines()
        for i, ln in enumerate(lines):
            if ln and not ln.startswith("#"):
                assert i > 0 and lines[i - 1].startswith("#"), f"{overrides}: unexplained {ln!r}"


# ------------------------------------------------------------------------------- the rpm

class Rpm:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.srpm = path.with_name(f"kbootd-{__version__}-1.src.rpm")
        srpm = self._payload(self.srpm)
        self.spec = srpm["kbootd.spec"].decode()
        with tarfile.open(fileobj=io.BytesIO(srpm[f"kbootd-{__version__}.tar.gz"])) as t:
            self.source = _source_members(t)
        self.content = {"/" + k: v for k, v in self._payload(path).items()}

    @staticmethod
    def _payload(path: Path) -> dict[str, bytes]:
        with path.open("rb") as f:
            r = subprocess.run(["rpm2archive", "-"], stdin=f, capture_output=True, check=True,
                               timeout=60)
        with tarfile.open(fileobj=io.BytesIO(r.stdout)) as t:
            return {m.name.removeprefix("./"): t.extractfile(m).read()  # type: ignore[union-attr]
                    for m in t.getmembers() if m.isfile()}

    def query(self, *args: str) -> str:
        return run(["rpm", "-qp", *args, self.path]).stdout


@pytest.fixture(scope="module")
def rpm(tmp_path_factory: pytest.TempPathFactory) -> Rpm:
    _check_rpm_tools()
    return Rpm(_build("build-rpm.sh", tmp_path_factory.mktemp("rpm")))


def _sitelib() -> str:
    """The upstream layout's site-packages of the python3 the rpm was built with."""
    return run(["/usr/bin/python3", "-Ic", "import sysconfig; print(sysconfig.get_path("
                "'purelib', 'posix_prefix', vars={'base': '/usr'}))"]).stdout.strip()


def test_rpm_is_named_and_versioned_from_version_py(rpm: Rpm) -> None:
    assert rpm.path.name == f"kbootd-{__version__}-1.noarch.rpm"
    assert rpm.query("--qf", "%{NAME} %{VERSION} %{RELEASE} %{ARCH} %{LICENSE}") == \
        f"kbootd {__version__} 1 noarch Apache-2.0"
    # The source RPM's spec builds without --define: version and changelog filled in.
    assert f"%global kbootd_version {__version__}\n" in rpm.spec
    assert re.search(rf"^\* \w{{3}} \w{{3}} \d\d \d{{4}} .* - {re.escape(__version__)}-1$",
                     rpm.spec, re.M)


def test_rpm_contains_exactly_the_expected_files(rpm: Rpm) -> None:
    site = _sitelib()
    listing = [ln.split(" ", 1) for ln in rpm.query("--qf", "[%{FILEMODES:perms} %{FILENAMES}\n]")
               .splitlines()]
    files = {name for perms, name in listing if not perms.startswith("d")}
    dirs = {name for perms, name in listing if perms.startswith("d")}
    expected = {
        "/usr/bin/kbootd",
        "/usr/lib/systemd/system/kbootd.service",
        "/usr/lib/systemd/system-preset/50-kbootd.preset",
        "/usr/share/bash-completion/completions/kbootd",
        "/usr/share/zsh/site-functions/_kbootd",
        "/usr/share/man/man1/kbootd.1.gz",
        f"/usr/share/doc/kbootd-{__version__}/README.md",
        "/etc/kbootd/kbootd.yaml.example",
        *(f"{site}/kbootd-{__version__}.dist-info/{n}"
          for n in ("INSTALLER", "LICENSE", "METADATA", "RECORD", "WHEEL", "entry_points.txt", "top_level.txt")),
        *(f"{site}/{p}" for p in _python_files(rpm.source)),
        *(f"/usr/share/kbootd/cloud-init/{p}" for p in _cloud_init_files(rpm.source)),
    }
    bytecode = {f for f in files if "/__pycache__/" in f and f.endswith(".pyc")}
    assert files - bytecode == expected, (sorted(files - bytecode - expected),
                                          sorted(expected - files))
    # Every .pyc belongs to a shipped module.
    for pyc in bytecode:
        d, name = pyc.rsplit("/__pycache__/", 1)
        assert f"{d}/{name.split('.')[0]}.py" in files, pyc
    # Owns its own directories only, never the distribution's (systemd, completions).
    own = ("/etc/kbootd", "/usr/share/kbootd", f"{site}/kbootd", "/usr/share/doc/kbootd-")
    assert {"/etc/kbootd", "/etc/kbootd/kbootd.d", "/usr/share/kbootd"} <= dirs
    assert all(d.startswith(own) for d in dirs), sorted(d for d in dirs if not d.startswith(own))
    assert "-rwxr-xr-x /usr/bin/kbootd" in {" ".join(x) for x in listing}
    assert rpm.content["/usr/bin/kbootd"].startswith(b"#!/usr/bin/python3\n")
    assert rpm.content["/usr/lib/systemd/system/kbootd.service"] == rpm.source["units/kbootd.service"]
    for p in _cloud_init_files(rpm.source):
        assert rpm.content[f"/usr/share/kbootd/cloud-init/{p}"] == rpm.source[f"cloud-init/{p}"]
    assert rpm.content["/usr/share/zsh/site-functions/_kbootd"].startswith(b"#compdef kbootd")
    assert gzip.decompress(rpm.content["/usr/share/man/man1/kbootd.1.gz"]).startswith(b".\\\"")


def test_rpm_config_is_noreplace(rpm: Rpm) -> None:
    flags = dict(ln.split(" ", 1)[::-1] for ln in
                 rpm.query("--qf", "[%{FILEFLAGS:fflags} %{FILENAMES}\n]").splitlines())
    config = {name for name, f in flags.items() if "c" in f}
    assert config == {"/etc/kbootd/kbootd.yaml.example"}
    assert "n" in flags["/etc/kbootd/kbootd.yaml.example"]  # noreplace


def test_rpm_requires_the_python3_libraries(rpm: Rpm) -> None:
    requires = {ln.strip() for ln in rpm.query("-R").splitlines()}
    for pkg, ver in RPM_REQUIRES.items():
        assert (f"{pkg} {ver}" if ver else pkg) in requires, sorted(requires)
    assert "/usr/bin/python3" in requires
    assert any(r.startswith("python(abi) = 3.") for r in requires), sorted(requires)


def test_rpm_scriptlets_use_systemd_macros_without_restart(rpm: Rpm) -> None:
    spec = (PACKAGING / "rpm/kbootd.spec").read_text()
    body = spec.split("\nName:", 1)[1]
    assert "%post\n%systemd_post kbootd.service\n" in body
    assert "%preun\n%systemd_preun kbootd.service\n" in body
    assert "%postun\n%systemd_postun kbootd.service\n" in body
    assert "_with_restart" not in spec
    scripts = rpm.query("--scripts")
    post = scripts.split("postinstall scriptlet")[1].split("preuninstall scriptlet")[0]
    preun = scripts.split("preuninstall scriptlet")[1].split("postuninstall scriptlet")[0]
    postun = scripts.split("postuninstall scriptlet")[1]
    # Built here, the spec's fallbacks (systemd's classic definitions) are in use.
    assert "[ $1 -eq 1 ]" in post and "preset kbootd.service" in post
    assert "[ $1 -eq 0 ]" in preun and "disable --now kbootd.service" in preun
    assert "[ $1 -ge 1 ]" in postun and "daemon-reload" in postun
    assert not re.search(r"\b(try-restart|restart|start)\b", post + postun), scripts
    # What makes %systemd_post's preset enable the unit (RPM distributions disable
    # services by default); enabling never starts it.
    assert rpm.content["/usr/lib/systemd/system-preset/50-kbootd.preset"] == b"enable kbootd.service\n"


def test_rpmlint_is_clean_with_explained_filters(rpm: Rpm) -> None:
    config = PACKAGING / "rpm/rpmlint.toml"
    r = run(["rpmlint", "-c", config, rpm.path, rpm.srpm], check=False, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert " 0 errors, 0 warnings" in r.stdout, r.stdout
    lines = config.read_text().splitlines()
    start = lines.index("Filters = [")
    for i, ln in enumerate(lines[start + 1:], start + 1):
        if ln.strip().startswith("'"):
            assert lines[i - 1].strip().startswith(("#", "'")), f"unexplained filter {ln!r}"


@pytest.mark.parametrize("macros,uses,avoids", [
    # Fedora, EL9+: pyproject-rpm-macros.
    ({"pyproject_wheel": "PYPROJECT_WHEEL", "pyproject_install": "PYPROJECT_INSTALL",
      "pyproject_save_files()": "PYPROJECT_SAVE_FILES %*",
      "pyproject_buildrequires": "PYPROJECT_BUILDREQUIRES", "pyproject_files": "/x/files"},
     ["PYPROJECT_BUILDREQUIRES", "PYPROJECT_WHEEL", "PYPROJECT_INSTALL",
      "PYPROJECT_SAVE_FILES kbootd", "cp /x/files kbootd-python.files"],
     ["-m build", "setup.py", "PY3_BUILD"]),
    # Older EL: py3_build/py3_install through a setup.py shim.
    ({"py3_build": "PY3_BUILD", "py3_install": "PY3_INSTALL"},
     ["printf 'from setuptools import setup\\nsetup()\\n' > setup.py", "PY3_BUILD", "PY3_INSTALL",
      "BuildRequires:  python3-setuptools >= 61"],
     ["-m build", "PYPROJECT"]),
], ids=["pyproject", "py3_build"])
def test_spec_uses_the_distributions_python_macros_when_defined(
        rpm: Rpm, macros: dict[str, str], uses: list[str], avoids: list[str]) -> None:
    defines = [a for k, v in {"kbootd_version": __version__, **macros}.items()
               for a in ("--define", f"{k} {v}")]
    parsed = run(["rpmspec", "-P", *defines, PACKAGING / "rpm/kbootd.spec"]).stdout
    for text in uses:
        assert text in parsed, text
    for text in avoids:
        assert text not in parsed, text


def test_spec_refuses_to_build_without_a_version() -> None:
    if shutil.which("rpmspec") is None:
        _unavailable("no rpmspec; apt-get install --no-install-recommends rpm")
    r = run(["rpmspec", "-P", PACKAGING / "rpm/kbootd.spec"], check=False)
    assert r.returncode != 0 and "define kbootd_version" in r.stderr, r.stderr
