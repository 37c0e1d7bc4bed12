"""Preflight under --root (issue 11 #14): executables and /proc that a bare root lacks are
"not checked", never reported as missing; what the root does hold is still checked."""

from __future__ import annotations

from pathlib import Path

from tests.test_crash import CONFIG


def test_a_bare_root_gets_no_false_warnings(tmp_path: Path, run_cli) -> None:  # noqa: ANN001
    cfg = tmp_path / "kubeadm.yaml"
    cfg.write_text(CONFIG)
    root = tmp_path / "R"
    root.mkdir()
    code, out, err = run_cli("phase", "init", "preflight", "--config", str(cfg), "--root", str(root),
                             "--ignore-preflight-errors", "CRI")
    text = out + err
    assert code == 0, text
    assert "not found in system path" not in text
    assert "does not exist" not in text.replace("kubelet service does not exist", "")
    not_checked = next(line for line in text.splitlines() if "Not checked (--root is" in line)
    for name in ("FileExisting-ip", "FileExisting-iptables", "FileExisting-crictl",
                 "FileContent--proc-sys-net-ipv4-ip_forward"):
        assert name in not_checked


def test_what_the_root_holds_is_still_checked(tmp_path: Path, run_cli) -> None:  # noqa: ANN001
    cfg = tmp_path / "kubeadm.yaml"
    cfg.write_text(CONFIG)
    root = tmp_path / "R"
    (root / "proc/sys/net/ipv4").mkdir(parents=True)
    (root / "proc/sys/net/ipv4/ip_forward").write_text("0\n")
    (root / "usr/sbin").mkdir(parents=True)
    (root / "usr/sbin/iptables").write_text("")
    code, out, err = run_cli("phase", "init", "preflight", "--config", str(cfg), "--root", str(root),
                             "--ignore-preflight-errors", "CRI")
    text = out + err
    assert code == 2, text
    assert "/proc/sys/net/ipv4/ip_forward contents are not set to 1" in text
    not_checked = next(line for line in text.splitlines() if "Not checked (--root is" in line)
    assert "FileExisting-iptables" not in not_checked and "FileExisting-ip," in not_checked
