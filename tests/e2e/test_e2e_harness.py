"""The harness itself: failures are visible (unit results, journal, exit codes), stop and
kill leave nothing running, artefacts are kept, reaping spares live runs, and the .deb
install path the packaging work will switch to works offline."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e import nspawn
from tests.e2e.install import install_kbootd
from tests.e2e.nspawn import Host, HostError, Seed, booted

pytestmark = pytest.mark.e2e


def test_failures_show_in_unit_state_journal_and_exit_codes(e2e_image: Path, tmp_path: Path) -> None:
    stopped = Host(None, name="stopped", image=e2e_image, seed=Seed(user_data={"runcmd": [["true"]]}))
    killed = Host(None, name="killed", image=e2e_image)
    with booted(stopped, killed):
        stopped.run(["systemd-run", "--unit=e2e-fails", "--property=SyslogIdentifier=e2e-fails",
                     "sh", "-c", "echo about to fail; exit 3"])
        deadline = time.monotonic() + 30
        while stopped.show("e2e-fails")["ActiveState"] not in ("failed", "inactive"):
            assert time.monotonic() < deadline, "transient unit never finished"
            time.sleep(0.1)
        assert stopped.show("e2e-fails") == {
            "ActiveState": "failed", "SubState": "failed", "StatusText": "",
            "Result": "exit-code", "ExecMainStatus": "3"}
        messages = [e.get("MESSAGE") for e in stopped.journal("e2e-fails")]
        assert "about to fail" in messages, messages
        with pytest.raises(HostError, match="exited 1"):
            stopped.run(["false"])

        # stop: orderly poweroff in seconds; the journal survives for the artefacts
        t = time.monotonic()
        assert stopped.stop(timeout=30) == 0
        assert time.monotonic() - t < 20
        kept = stopped.save_artefacts(tmp_path / "artefacts")
        assert (kept / "console.log").stat().st_size > 0
        text = "".join(p.read_text() for p in kept.glob("journal-*.txt"))
        assert "about to fail" in text and "Reached target" in text

        # kill: the whole container goes at once, and its cgroup with it
        leader = killed.leader
        killed.kill()
        assert _dead(leader)
        assert killed.proc is not None and killed.proc.poll() is not None
        assert not any((root / killed._cg).exists() for root in nspawn._cgroup_roots())


def _dead(pid: int) -> bool:
    """Gone, or a zombie waiting for the machine's PID 1 (it was reparented there)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_reaping_spares_live_runs(e2e_image: Path) -> None:
    dead = f"{os.getpid()}.0"                           # our pid, wrong start time: dead
    ppid = os.getppid()
    alive = f"{ppid}.{nspawn._start_time(ppid)}"        # the process that started pytest
    made = []
    try:
        for run in (dead, alive):
            ns = f"{nspawn.NETNS_PREFIX}{run}-t-sw"
            nspawn.sh("ip", "netns", "add", ns)
            made.append(ns)
            (nspawn.WORK_ROOT / "runs" / run / "h").mkdir(parents=True, exist_ok=True)
            if not nspawn.SYSTEMD_IS_PID1:
                for root in nspawn._cgroup_roots():
                    (root / nspawn.CGROUP_TOP / run / "h").mkdir(parents=True, exist_ok=True)
        reaped = nspawn.reap_leftovers()
        assert any(dead in r for r in reaped) and not any(alive in r for r in reaped), reaped
        assert not Path(f"/run/netns/{made[0]}").exists()
        assert Path(f"/run/netns/{made[1]}").exists()
        assert not (nspawn.WORK_ROOT / "runs" / dead).exists()
        assert (nspawn.WORK_ROOT / "runs" / alive).exists()
    finally:
        for ns in made:
            nspawn.sh("ip", "netns", "del", ns, check=False)
        subprocess.run(["rm", "-rf", str(nspawn.WORK_ROOT / "runs" / alive)], check=False, timeout=30)
        if not nspawn.SYSTEMD_IS_PID1:
            nspawn.kill_cgroup(f"{nspawn.CGROUP_TOP}/{alive}")


def test_deb_install_path_works_offline(e2e_image: Path, tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "usr/share/kbootd-e2e").mkdir(parents=True)
    (pkg / "usr/share/kbootd-e2e/marker").write_text("from the deb\n")
    (pkg / "DEBIAN/control").write_text(
        "Package: kbootd-e2e-dummy\nVersion: 1.0\nArchitecture: all\n"
        "Maintainer: kbootd e2e <e2e@invalid>\nDepends: python3-yaml\nDescription: e2e dummy\n")
    (pkg / "DEBIAN/postinst").write_text("#!/bin/sh\nset -e\necho ran > /var/lib/kbootd-e2e-postinst\n")
    (pkg / "DEBIAN/postinst").chmod(0o755)
    deb = tmp_path / "kbootd-e2e-dummy_1.0_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(pkg), str(deb)],
                   check=True, capture_output=True, timeout=60)
    h = Host(None, name="debtest", image=e2e_image)
    try:
        h.prepare()
        install_kbootd(h, deb)
        assert (h.upper / "usr/share/kbootd-e2e/marker").read_text() == "from the deb\n"
        assert (h.upper / "var/lib/kbootd-e2e-postinst").read_text() == "ran\n"
        assert "Package: kbootd-e2e-dummy\nStatus: install ok installed" in \
            (h.upper / "var/lib/dpkg/status").read_text()
    finally:
        h.close()
