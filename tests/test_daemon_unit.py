import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from kbootd.errors import PERMANENT_EXIT_CODES

UNIT = Path(__file__).resolve().parents[1] / "units" / "kbootd.service"


def parse(text: str) -> dict[str, list[str]]:
    """section.key -> every value (systemd allows repeated keys; an empty value resets)."""
    out: dict[str, list[str]] = {}
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        k, _, v = line.partition("=")
        out.setdefault(f"{section}.{k}", []).extend(v.split())
    return out


@pytest.fixture(scope="module")
def unit():
    return parse(UNIT.read_text())


def test_type_notify_main_pid_only(unit):
    assert unit["Service.Type"] == ["notify"] and unit["Service.NotifyAccess"] == ["main"]
    assert unit["Service.ExecStart"] == ["/usr/bin/kbootd", "run"]


def test_permanent_errors_are_not_restarted(unit):
    assert unit["Service.Restart"] == ["on-failure"]
    assert {int(c) for c in unit["Service.RestartPreventExitStatus"]} == set(PERMANENT_EXIT_CODES)
    assert unit["Unit.StartLimitIntervalSec"] == ["0"]


def test_ordering_avoids_the_cloud_final_cycle_and_blocking_boot(unit):
    after = unit["Unit.After"]
    # cloud-init's network stage under both names: up to 24.2, and 24.3+ (Debian 13).
    assert {"cloud-init.service", "cloud-init-network.service", "network-online.target"} <= set(after)
    assert "cloud-final.service" not in after + unit.get("Unit.Requires", []) + unit.get("Unit.Wants", [])
    assert unit["Unit.DefaultDependencies"] == ["no"]  # multi-user.target must not wait for READY=1
    assert {"sysinit.target", "basic.target"} <= set(after)
    assert unit["Unit.Conflicts"] == ["shutdown.target"] and unit["Unit.Before"] == ["shutdown.target"]
    assert unit["Install.WantedBy"] == ["multi-user.target"]


def test_hardening_leaves_what_kbootd_writes_writable(unit):
    assert unit["Service.ProtectSystem"] == ["strict"]
    rw = unit["Service.ReadWritePaths"]
    state = ["/var/lib/" + d for d in unit["Service.StateDirectory"]]
    run = ["/run/" + d for d in unit["Service.RuntimeDirectory"]]
    needed = ["/etc/kubernetes", "/var/lib/kubelet", "/var/lib/etcd", "/etc/systemd/system/kubelet.service.d",
              "/etc/containerd", "/etc/crictl.yaml", "/etc/modules-load.d", "/etc/sysctl.d", "/var/lib/kbootd",
              "/run/kbootd"]
    for path in needed:
        assert any(path == p or path.startswith(p.rstrip("/") + "/") for p in rw + state + run), path
    # The cluster's data is not kbootd's state: `systemctl clean --what=state` must not reach it.
    assert unit["Service.StateDirectory"] == ["kbootd"]
    # modprobe and sysctl
    assert unit["Service.ProtectKernelModules"] == ["no"] and unit["Service.ProtectKernelTunables"] == ["no"]


def test_timeouts(unit):
    assert unit["Service.TimeoutStartSec"] == ["5min"] and unit["Service.WatchdogSec"]


def verify(path: Path) -> str:
    p = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True,
                       env={**os.environ, "SYSTEMD_LOG_COLOR": "0"})
    return (p.stdout + p.stderr).strip() + ("" if p.returncode == 0 else f"\n(exit {p.returncode})")


@pytest.mark.subprocess
@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_systemd_analyze_verify_is_clean(tmp_path):
    stub = tmp_path / "kbootd"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    text = re.sub(r"^ExecStart=/usr/bin/kbootd ", f"ExecStart={stub} ", UNIT.read_text(), flags=re.M)
    (tmp_path / "kbootd.service").write_text(text)
    assert verify(tmp_path / "kbootd.service") == ""


@pytest.mark.subprocess
@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_verify_catches_mistakes(tmp_path):
    """The check above can fail: a typo in the unit shows up in its output."""
    stub = tmp_path / "kbootd"
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    text = re.sub(r"^ExecStart=/usr/bin/kbootd ", f"ExecStart={stub} ", UNIT.read_text(), flags=re.M)
    (tmp_path / "kbootd.service").write_text(text.replace("NotifyAccess=main", "NotifyAcess=main"))
    assert "NotifyAcess" in verify(tmp_path / "kbootd.service")


@pytest.mark.subprocess
@pytest.mark.skipif(not (shutil.which("systemd-analyze") and Path("/usr/bin/kbootd").exists()),
                    reason="needs systemd-analyze and an installed /usr/bin/kbootd")
def test_shipped_unit_verifies_as_is(tmp_path):
    shutil.copy(UNIT, tmp_path / "kbootd.service")
    assert verify(tmp_path / "kbootd.service") == ""
