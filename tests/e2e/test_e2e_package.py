"""The .deb on real Debian 12 and 13 hosts (systemd 252/257, cloud-init 22.4/25.1): apt resolves every
dependency from Debian's packages in the image (offline), the unit is enabled but never
started by the install nor restarted by an upgrade, the service fails cleanly without
settings, and remove/purge keep or remove exactly kbootd's own files.

The .deb is $KBOOTD_ARTEFACT when that is a .deb, else built from this checkout with
packaging/build-deb.sh (~10 s; needs the packaging tools, see tests/test_packaging.py).
Two hosts boot once for the module: one with the package installed before its first boot
(as an image would have it), one that installs, upgrades, removes and purges it while
running.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kbootd.version import __version__
from tests.e2e.hosts import Hosts
from tests.e2e.nspawn import Host

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
DEB_IN_HOST = "/root/kbootd.deb"
UPGRADE_IN_HOST = "/root/kbootd-upgrade.deb"
UPGRADE_VERSION = f"{__version__}+e2e1"
# The cluster's files: purge must leave them (that is `kbootd reset`).
CLUSTER_MARKERS = ("/etc/kubernetes/marker", "/var/lib/kubelet/marker", "/var/lib/etcd/marker")
# Turns kbootd.service into a long-running stand-in, to see whether an upgrade restarts
# it and a removal stops it (the unit's sandboxing, directories and ordering stay).
# Type=exec: `systemctl start` returns once the program runs, so StateDirectory= exists
# (with Type=simple, systemd 257 may answer before it creates it: a race in the checks).
STANDIN = "[Service]\nType=exec\nExecStart=\nExecStart=/bin/sleep infinity\nWatchdogSec=0\n"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _unavailable(reason: str) -> None:
    if _in_ci() and os.geteuid() == 0:
        pytest.fail(f"e2e package test cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def deb(e2e_image: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("KBOOTD_ARTEFACT", "")
    if given.endswith(".deb"):
        return Path(given).resolve()
    if shutil.which("dpkg-buildpackage") is None:
        _unavailable("no dpkg-buildpackage to build the .deb (see tests/test_packaging.py "
                     "for the packaging tools), and KBOOTD_ARTEFACT is not a .deb")
    out = tmp_path_factory.mktemp("deb")
    r = subprocess.run(["bash", str(REPO / "packaging/build-deb.sh"), str(out)],
                       capture_output=True, text=True, timeout=600, check=False)
    if r.returncode != 0:
        if "Unmet build dependencies" in r.stderr:
            _unavailable("missing packaging tools: "
                         + re.findall(r"Unmet build dependencies: .*", r.stderr)[0])
        pytest.fail(f"build-deb.sh failed:\n{r.stderr[-6000:]}", pytrace=False)
    return Path(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def upgrade_deb(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same package with a higher version: what an upgrade installs."""
    work = tmp_path_factory.mktemp("upgrade")
    tree = work / "tree"
    subprocess.run(["dpkg-deb", "-R", str(deb), str(tree)], check=True, timeout=60)
    control = tree / "DEBIAN/control"
    control.write_text(re.sub(r"^Version: .*$", f"Version: {UPGRADE_VERSION}",
                              control.read_text(), flags=re.M))
    out = work / f"kbootd_{UPGRADE_VERSION}_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(tree), str(out)],
                   check=True, capture_output=True, timeout=60)
    return out


@pytest.fixture(scope="module")
def hosts(request: pytest.FixtureRequest, e2e_image: Path, deb: Path) -> Iterator[Hosts]:
    failed_before = request.session.testsfailed
    hs = Hosts(e2e_image, deb)
    yield hs
    hs.close(failed=request.session.testsfailed > failed_before)


@pytest.fixture(scope="module")
def imaged(hosts: Hosts) -> Host:
    """kbootd installed (apt-get, offline) before the first boot; no settings anywhere."""
    return hosts.boot("imaged")


@pytest.fixture(scope="module")
def live(hosts: Hosts, deb: Path, upgrade_deb: Path) -> Host:
    """No kbootd at boot; both .debs wait in /root for apt-get."""
    def stage(h: Host) -> None:
        root = h.upper / "root"
        root.mkdir(mode=0o700, exist_ok=True)
        shutil.copyfile(deb, root / Path(DEB_IN_HOST).name)
        shutil.copyfile(upgrade_deb, root / Path(UPGRADE_IN_HOST).name)
    return hosts.boot("live", kbootd=False, install=[stage])


def _apt(h: Host, *args: str) -> str:
    r = h.run(["apt-get", "-y", "--no-install-recommends", "-o", "Dpkg::Use-Pty=0", *args],
              check=False, timeout=300)
    assert r.returncode == 0, f"apt-get {' '.join(args)}: rc={r.returncode}\n{r.stdout}\n{r.stderr}"
    return r.stdout + r.stderr


def _exists(h: Host, path: str) -> bool:
    return h.run(["test", "-e", path], check=False).returncode == 0


def _dpkg_status(h: Host) -> str:
    r = h.run(["dpkg-query", "-W", "-f=${Version} ${db:Status-Abbrev}", "kbootd"], check=False)
    return r.stdout.strip() if r.returncode == 0 else "not known"


# ------------------------------------------------------------- installed before first boot

def test_apt_resolved_every_dependency_from_debian(imaged: Host) -> None:
    assert _dpkg_status(imaged) == f"{__version__} ii"
    assert imaged.run(["dpkg", "--audit"]).stdout.strip() == ""
    imaged.run(["apt-get", "check", "-q"])
    probe = ("import json, kbootd, cryptography, kubernetes, yaml, requests, shtab, systemd\n"
             "mods = (kbootd, cryptography, kubernetes, yaml, requests, shtab, systemd)\n"
             "print(json.dumps({m.__name__: m.__path__[0] for m in mods}))\n")
    where = imaged.run(["python3", "-c", probe]).stdout
    assert '"kbootd": "/usr/lib/python3/dist-packages/kbootd"' in where, where
    assert "/usr/local/" not in where, where
    # Every library comes from a Debian package that dpkg knows.
    for lib in ("cryptography", "kubernetes", "yaml", "requests", "shtab", "systemd"):
        imaged.run(["dpkg", "-S", f"/usr/lib/python3/dist-packages/{lib}/__init__.py"])


def test_kbootd_command_and_files(imaged: Host) -> None:
    out = imaged.run(["kbootd", "version"]).stdout
    assert f'GitVersion:"v{__version__}"' in out, out
    assert imaged.run(["readlink", "-f", "/usr/bin/kbootd"]).stdout.strip() == "/usr/bin/kbootd"
    # Completion loads in a real bash and completes subcommands.
    r = imaged.run(["bash", "-c", "source /usr/share/bash-completion/completions/kbootd && "
                    "complete -p kbootd"])
    assert "kbootd" in r.stdout, r.stdout
    for path in ("/usr/share/zsh/vendor-completions/_kbootd", "/usr/share/man/man1/kbootd.1.gz",
                 "/usr/share/kbootd/cloud-init/schema/kbootd.schema.json",
                 "/etc/kbootd/kbootd.yaml.example", "/etc/kbootd/kbootd.d"):
        assert _exists(imaged, path), path
    assert not _exists(imaged, "/etc/kbootd/kbootd.yaml")  # settings are the operator's


def test_unit_is_enabled_and_started_at_boot(imaged: Host) -> None:
    assert imaged.run(["systemctl", "is-enabled", "kbootd"], check=False).stdout.strip() == "enabled"
    props = imaged.show("kbootd", "FragmentPath", "UnitFileState", "ExecMainStartTimestampMonotonic")
    # The deb ships it in /usr/lib (the /usr-merge); /lib is a symlink to /usr/lib on both
    # releases, so systemd may name it by either path.
    assert "/usr/lib/systemd/system/kbootd.service" in imaged.run(["dpkg", "-L", "kbootd"]).stdout.split()
    assert props["FragmentPath"] in ("/usr/lib/systemd/system/kbootd.service",
                                     "/lib/systemd/system/kbootd.service"), props
    assert props["ExecMainStartTimestampMonotonic"] not in ("", "0"), "kbootd did not run at boot"
    # After cloud-init's network stage (it runs write_files), whichever name this release's
    # cloud-init gives it: cloud-init.service (22.4) or cloud-init-network.service (24.3+).
    stages = [u for u in ("cloud-init.service", "cloud-init-network.service")
              if imaged.show(u, "LoadState")["LoadState"] == "loaded"]
    assert len(stages) == 1, stages
    stage = imaged.show(stages[0], "ActiveEnterTimestampMonotonic", "ActiveState")
    assert stage["ActiveState"] == "active", stage
    assert stages[0] in imaged.show("kbootd", "After")["After"].split()
    assert int(props["ExecMainStartTimestampMonotonic"]) >= int(stage["ActiveEnterTimestampMonotonic"]), \
        (stages[0], stage, props)


def test_service_without_settings_fails_cleanly_and_does_not_loop(imaged: Host) -> None:
    deadline = time.monotonic() + 60
    while (props := imaged.show("kbootd", "ActiveState", "SubState", "StatusText", "Result",
                                "ExecMainStatus", "NRestarts"))["ActiveState"] != "failed":
        assert time.monotonic() < deadline, f"kbootd never failed: {props}"
        time.sleep(0.5)
    # 3 = invalid input: permanent (RestartPreventExitStatus=3 4), so no restart loop.
    assert props["Result"] == "exit-code" and props["ExecMainStatus"] == "3", props
    # systemd decides at exit: a queued restart shows as SubState auto-restart (ActiveState
    # activating), so failed/failed means none will come; no need to sleep past RestartSec.
    again = imaged.show("kbootd", "ActiveState", "SubState", "NRestarts")
    assert again == {"ActiveState": "failed", "SubState": "failed", "NRestarts": "0"}, again
    wired = imaged.run(["kbootd", "run", "--help"], check=False).returncode == 0
    if not wired:
        # Until the CLI has `run`, check the packaged daemon through its module entry
        # point under the same unit (sandbox, notify socket, directories), then xfail.
        imaged.run(["mkdir", "-p", "/run/systemd/system/kbootd.service.d"])
        imaged.run(["sh", "-c", "printf '[Service]\\nExecStart=\\nExecStart=/usr/bin/python3 -m "
                    "kbootd.daemon.main\\n' > /run/systemd/system/kbootd.service.d/e2e.conf"])
        imaged.run(["systemctl", "daemon-reload"])
        imaged.run(["systemctl", "reset-failed", "kbootd"])
        imaged.run(["systemctl", "start", "kbootd"], check=False)   # fails: no settings
        props = imaged.show("kbootd", "ActiveState", "StatusText", "Result", "ExecMainStatus",
                            "NRestarts")
        assert props["ActiveState"] == "failed" and props["ExecMainStatus"] == "3", props
    assert props["StatusText"].startswith("failed: no role"), props
    status = imaged.run(["systemctl", "status", "--no-pager", "kbootd"], check=False)
    assert status.returncode == 3 and 'Status: "failed: no role' in status.stdout, status.stdout
    if not wired:
        pytest.xfail("`kbootd run` is not wired into the CLI yet: the unit's ExecStart fails "
                     "with a usage error (exit 3, no STATUS=); python3 -m kbootd.daemon.main "
                     "passed these checks in its place")


# ----------------------------------------------------------- install, upgrade, remove, purge

def test_install_upgrade_remove_purge_on_a_running_system(live: Host) -> None:
    assert live.run(["systemctl", "is-system-running"], check=False).stdout.strip() == "running"
    for marker in CLUSTER_MARKERS:
        live.run(["sh", "-c", f"mkdir -p {os.path.dirname(marker)} && echo cluster > {marker}"])

    # Install: enabled, not started.
    out = _apt(live, "install", DEB_IN_HOST)
    assert f"Setting up kbootd ({__version__})" in out, out
    assert live.run(["systemctl", "is-enabled", "kbootd"], check=False).stdout.strip() == "enabled"
    props = live.show("kbootd", "ActiveState", "ExecMainStartTimestampMonotonic", "NRestarts")
    assert props["ActiveState"] == "inactive", props
    assert props["ExecMainStartTimestampMonotonic"] == "0", f"the install started kbootd: {props}"

    # The operator's settings (not a conffile) and a running service.
    live.run(["install", "-m", "0600", "/dev/null", "/etc/kbootd/kbootd.yaml"])
    live.run(["sh", "-c", "echo 'role: worker' > /etc/kbootd/kbootd.yaml"])
    live.run(["mkdir", "-p", "/etc/systemd/system/kbootd.service.d"])
    live.run(["sh", "-c", f"printf '{STANDIN}' > /etc/systemd/system/kbootd.service.d/e2e.conf"])
    live.run(["systemctl", "daemon-reload"])
    live.run(["systemctl", "start", "kbootd"])
    before = live.show("kbootd", "ActiveState", "MainPID", "InvocationID")
    assert before["ActiveState"] == "active" and before["MainPID"] != "0", before
    assert _exists(live, "/var/lib/kbootd") and _exists(live, "/run/kbootd")

    # Upgrade: neither stopped nor restarted.
    out = _apt(live, "install", UPGRADE_IN_HOST)
    assert f"Unpacking kbootd ({UPGRADE_VERSION}) over ({__version__})" in out, out
    assert _dpkg_status(live) == f"{UPGRADE_VERSION} ii"
    assert live.show("kbootd", "ActiveState", "MainPID", "InvocationID") == before, \
        "the upgrade restarted kbootd"

    # Remove: stopped; /etc/kbootd (conffile and the operator's settings) and state stay.
    _apt(live, "remove", "kbootd")
    assert _dpkg_status(live) == f"{UPGRADE_VERSION} rc"
    assert live.show("kbootd", "ActiveState")["ActiveState"] in ("inactive", "failed")
    assert not _exists(live, "/usr/bin/kbootd")
    assert not _exists(live, "/usr/lib/python3/dist-packages/kbootd")
    assert live.read_file("/etc/kbootd/kbootd.yaml") == "role: worker\n"
    assert _exists(live, "/etc/kbootd/kbootd.yaml.example")
    assert _exists(live, "/var/lib/kbootd")

    # Purge: kbootd's settings and state go; the cluster's files stay.
    _apt(live, "purge", "kbootd")
    assert _dpkg_status(live) in ("not known", f"{UPGRADE_VERSION} un", "un")
    for gone in ("/etc/kbootd", "/var/lib/kbootd", "/run/kbootd",
                 "/etc/systemd/system/multi-user.target.wants/kbootd.service"):
        assert not _exists(live, gone), f"{gone} survived the purge"
    for marker in CLUSTER_MARKERS:
        assert live.read_file(marker) == "cluster\n", marker
    live.run(["rm", "-rf", "/etc/systemd/system/kbootd.service.d"])
    live.run(["systemctl", "daemon-reload"])
