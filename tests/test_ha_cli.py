# ruff: noqa: F811 - pytest fixtures imported from test_init_cluster are parameters here
"""The HA command line, kubeadm-compatible, against a cluster kbootd's init made on the test API server:
`init phase upload-certs`, `token create --print-join-command --certificate-key`, `join --control-plane`,
and the flags' validation."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kbootd.pin import pin_of
from tests.test_init_cluster import (  # noqa: F401 - fixtures
    TOKEN,
    Cluster,
    cluster,
    cluster_env,
    initialized,
)

KEY = "3f1c2a9b8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a392817f6e5d4c3"


def decrypt(value: str, key: str) -> bytes:
    blob = base64.b64decode(value)
    return AESGCM(bytes.fromhex(key)).decrypt(blob[:12], blob[12:], None)


def test_init_phase_upload_certs_with_a_given_key(initialized: Cluster, run_cli: Any) -> None:
    root = initialized.root
    rc, out, err = run_cli("init", "phase", "upload-certs", "--root", str(root), "--upload-certs",
                           "--certificate-key", KEY)
    assert rc == 0, err
    assert out.endswith(f"[upload-certs] Using certificate key:\n{KEY}\n")
    assert '[upload-certs] Storing the certificates in Secret "kubeadm-certs" in the "kube-system" Namespace' in out
    secret = initialized.srv.store.get("secrets", "kubeadm-certs", "kube-system")
    assert decrypt(secret["data"]["ca.key"], KEY) == (root / "etc/kubernetes/pki/ca.key").read_bytes()
    assert decrypt(secret["data"]["etcd-ca.crt"], KEY) == (root / "etc/kubernetes/pki/etcd/ca.crt").read_bytes()


def test_init_phase_upload_certs_generates_a_key_and_skips_without_the_flag(initialized: Cluster,
                                                                             run_cli: Any) -> None:
    root = str(initialized.root)
    rc, out, err = run_cli("init", "phase", "upload-certs", "--root", root)
    assert rc == 0, err
    assert "[upload-certs] Skipping phase. Please see --upload-certs" in out
    assert initialized.srv.store.get("secrets", "kubeadm-certs", "kube-system") is None
    rc, out, err = run_cli("phase", "init", "upload-certs", "--root", root, "--upload-certs")
    assert rc == 0, err
    key = out.rsplit("\n", 2)[-2]
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    secret = initialized.srv.store.get("secrets", "kubeadm-certs", "kube-system")
    assert decrypt(secret["data"]["sa.key"], key) == (initialized.root / "etc/kubernetes/pki/sa.key").read_bytes()


def test_token_create_prints_the_control_plane_join_command(initialized: Cluster, run_cli: Any) -> None:
    rc, out, err = run_cli("token", "create", "--root", str(initialized.root), "--print-join-command",
                           "--certificate-key", KEY)
    assert rc == 0, err
    tok = out.split("--token ")[1].split()[0]
    pin = pin_of((initialized.root / "etc/kubernetes/pki/ca.crt").read_bytes())
    # kubeadm's GetJoinControlPlaneCommand with its line breaks removed, as `token create` prints it.
    assert out == (f"kbootd join 127.0.0.1:{initialized.port} --token {tok} --discovery-token-ca-cert-hash {pin} "
                   f"--control-plane --certificate-key {KEY}\n")


@pytest.mark.parametrize("argv,flag", [
    (("token", "create", "--certificate-key", KEY), "--certificate-key: only with --print-join-command"),
    (("token", "create", "--print-join-command", "--certificate-key", "abc"), "--certificate-key"),
    (("join", "10.0.0.1:6443", "--token", TOKEN, "--discovery-token-unsafe-skip-ca-verification",
      "--certificate-key", KEY), "--certificate-key: only with --control-plane"),
    (("join", "10.0.0.1:6443", "--token", TOKEN, "--discovery-token-unsafe-skip-ca-verification",
      "--apiserver-bind-port", "7443"), "--apiserver-bind-port: only with --control-plane"),
    (("join", "10.0.0.1:6443", "--token", TOKEN, "--discovery-token-unsafe-skip-ca-verification",
      "--control-plane", "--certificate-key", "xyz"), "--certificate-key: the certificate key must be 64"),
    (("init", "--certificate-key", "12"), "--certificate-key: the certificate key must be 64"),
])
def test_bad_flags_exit_3_naming_the_flag(root: Path, run_cli: Any, argv: tuple[str, ...], flag: str) -> None:
    rc, out, err = run_cli(*argv, "--root", str(root))
    assert rc == 3, (out, err)
    assert flag in err
    assert "xyz" not in err or "certificate key" in err


def test_join_control_plane_needs_a_control_plane_endpoint(initialized: Cluster, run_cli: Any, root: Path) -> None:
    """kbootd's init above set no controlPlaneEndpoint: kubeadm's preflight refuses a second control plane."""
    pin = pin_of((initialized.root / "etc/kubernetes/pki/ca.crt").read_bytes())
    rc, out, err = run_cli("join", f"127.0.0.1:{initialized.port}", "--token", TOKEN,
                           "--discovery-token-ca-cert-hash", pin, "--control-plane", "--certificate-key", KEY,
                           "--apiserver-advertise-address", "127.0.0.2", "--root", str(root),
                           "--dry-run", "--ignore-preflight-errors", "all")
    assert rc == 2, (out, err)
    assert "doesn't have a stable controlPlaneEndpoint" in err
    assert KEY not in out + err


def test_init_prints_the_control_plane_join_command_after_upload_certs(root: Path, capsys: Any) -> None:
    from kbootd.cluster import sharedpki
    from kbootd.config.model import BootstrapTokenSpec, ClusterConfig, InitConfig
    from kbootd.context import make_context
    from kbootd.joincmd import print_join_command
    from kbootd.report import RecordingReporter
    from kbootd.token import BootstrapToken

    m = sharedpki.generate()
    ca = next(f for f in m.files if f.path.endswith("/ca.crt"))
    (root / "etc/kubernetes/pki").mkdir(parents=True)
    (root / "etc/kubernetes/pki/ca.crt").write_text(ca.content)
    tok = BootstrapToken.parse(TOKEN)
    spec = BootstrapTokenSpec(token=tok)
    ctx = make_context(root=str(root), reporter=RecordingReporter(), init=InitConfig(
        cluster=ClusterConfig(control_plane_endpoint="lb.example:6443"), bootstrap_tokens=(spec,),
        upload_certs=True, certificate_key=KEY))
    ctx.data.tokens = [(spec, tok)]
    ctx.data.certificate_key = KEY
    print_join_command(ctx)
    out = capsys.readouterr().out
    assert (f"  kbootd join lb.example:6443 --token {TOKEN} \\\n\t--discovery-token-ca-cert-hash {m.pin} \\\n"
            f"\t--control-plane --certificate-key {KEY}\n") in out
    assert out.index("control-plane nodes") < out.index("worker nodes")
    assert "uploaded-certs will be deleted in two hours" in out
