"""systemd itself checks the kubelet drop-in: `systemd-analyze verify` on a temp unit directory."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from kbootd import kubelet as k
from kbootd.paths import Paths

pytestmark = [
    pytest.mark.subprocess,
    pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                       reason="systemd-analyze not installed (Debian package: systemd)"),
]

BASE_UNIT = """\
[Unit]
Description=kubelet: The Kubernetes Node Agent

[Service]
ExecStart={stub}
Restart=always

[Install]
WantedBy=multi-user.target
"""


def verify(tmp_path: Path, dropin: str) -> subprocess.CompletedProcess[str]:
    """kubelet.service (whose ExecStart is a stub) plus the drop-in, verified by systemd."""
    units = tmp_path / "units"
    (units / "kubelet.service.d").mkdir(parents=True)
    stub = tmp_path / "kubelet"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    (units / "kubelet.service").write_text(BASE_UNIT.format(stub=stub))
    (units / "kubelet.service.d" / "10-kbootd.conf").write_text(dropin.replace("/usr/bin/kubelet", str(stub)))
    # The trailing ":" keeps systemd's own unit directories (for multi-user.target).
    env = {**os.environ, "SYSTEMD_UNIT_PATH": f"{units}:", "SYSTEMD_LOG_LEVEL": "notice"}
    return subprocess.run(["systemd-analyze", "verify", str(units / "kubelet.service")],
                          capture_output=True, text=True, env=env, timeout=60, check=False)


def test_dropin_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    res = verify(tmp_path, k.render_dropin(Paths()))
    complaints = [ln for ln in (res.stdout + res.stderr).splitlines() if "kubelet" in ln]
    assert res.returncode == 0, res.stdout + res.stderr
    assert complaints == []


@pytest.mark.parametrize("breakage, needle", [
    # Controls: the same harness does catch a broken drop-in.
    (("ExecStart=/usr/bin/kubelet $KUBELET", "ExecStart=kubelet-not-absolute $KUBELET"), "not executable"),
    (("[Service]", "[Service]\nEnvironmentFiel=-/etc/default/kubelet"), "EnvironmentFiel"),
])
def test_harness_catches_a_broken_dropin(tmp_path: Path, breakage: tuple[str, str], needle: str) -> None:
    broken = k.render_dropin(Paths()).replace(*breakage)
    res = verify(tmp_path, broken)
    assert needle in res.stdout + res.stderr
