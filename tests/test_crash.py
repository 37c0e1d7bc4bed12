"""Crash suite: SIGKILL after every write of init's node-local half and of join; each re-run
converges and no CA or key ever changes (issue 11 #1)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from kbootd.cli.main import main
from kbootd.pki import certs as c
from kbootd.pki import keys
from tests.crashkit import files, keys_and_cas, killed_after

CONFIG = """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens: [{token: abcdef.0123456789abcdef}]
localAPIEndpoint: {advertiseAddress: 10.0.0.10}
nodeRegistration: {name: cp-1, criSocket: unix:///run/containerd/containerd.sock}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.32.0
encryptionAlgorithm: ECDSA-P256
networking: {podSubnet: 10.244.0.0/16}
"""
CLUSTER_HALF = "wait-control-plane,upload-config,mark-control-plane,bootstrap-token,addon"


def init_local(root: Path, config: Path) -> int:
    import contextlib

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return main(["init", "--config", str(config), "--root", str(root), "--skip-phases", CLUSTER_HALF,
                     "--ignore-preflight-errors", "all"])


def check_pki(root: Path) -> None:
    """Every CA's certificate matches its key, every leaf chains to its CA."""
    pki = root / "etc/kubernetes/pki"
    for ca, leaves in (("ca", ("apiserver", "apiserver-kubelet-client")),
                       ("front-proxy-ca", ("front-proxy-client",)),
                       ("etcd/ca", ("etcd/server", "etcd/peer", "etcd/healthcheck-client"))):
        ca_cert = c.load_cert_pem((pki / f"{ca}.crt").read_bytes(), ca)
        ca_key = keys.load_private_key_pem((pki / f"{ca}.key").read_bytes(), ca)
        assert c.key_matches(ca_cert, ca_key), ca
        for leaf in leaves:
            cert = c.load_cert_pem((pki / f"{leaf}.crt").read_bytes(), leaf)
            assert c.chain_problem(cert, [], ca_cert) is None, leaf


@pytest.fixture
def config(tmp_path: Path) -> Path:
    p = tmp_path / "kubeadm.yaml"
    p.write_text(CONFIG)
    return p


@pytest.mark.parametrize("before_rename", [False, True], ids=["after-write", "before-rename"])
def test_init_local_converges_after_a_kill_at_every_write(tmp_path: Path, config: Path, before_rename: bool) -> None:
    ref = tmp_path / "ref"
    ref.mkdir()
    assert init_local(ref, config) == 0
    expected = files(ref)
    kills = 0
    for n in range(1, len(expected) + 10):
        root = tmp_path / f"r{n}"
        root.mkdir()
        if not killed_after(n, lambda root=root: init_local(root, config), before_rename=before_rename):
            break  # the run finished before its n-th write: every boundary has been covered
        kills += 1
        before = keys_and_cas(root)
        assert init_local(root, config) == 0, f"stuck after a kill at write {n}"
        after = keys_and_cas(root)
        assert {k: after[k] for k in before} == before, f"a key or CA changed after a kill at write {n}"
        assert files(root) == expected, n
        check_pki(root)
        assert not [p for p in root.rglob("*.kbootd-tmp-*")], n  # a killed run's temp file is cleaned up
    assert kills >= 30  # ~38 writes: every CA, key, certificate, kubeconfig, manifest, kubelet file


@pytest.mark.parametrize("ca", ["ca", "front-proxy-ca", "etcd/ca"])
def test_an_orphaned_ca_key_gets_its_certificate_and_keeps_its_pin(tmp_path: Path, config: Path, ca: str) -> None:
    from kbootd.pin import pin_of

    root = tmp_path / "r"
    root.mkdir()
    assert init_local(root, config) == 0
    crt, key = root / f"etc/kubernetes/pki/{ca}.crt", root / f"etc/kubernetes/pki/{ca}.key"
    pin, key_bytes = pin_of(crt.read_bytes()), key.read_bytes()
    crt.unlink()
    assert init_local(root, config) == 0
    assert key.read_bytes() == key_bytes
    assert pin_of(crt.read_bytes()) == pin
    check_pki(root)  # the leaves signed before the crash chain to the new certificate


@pytest.mark.parametrize("before_rename", [False, True], ids=["after-write", "before-rename"])
def test_join_host_writes_converge_after_a_kill_at_every_write(tmp_path: Path, before_rename: bool) -> None:
    """join's host writes (cri, then kubelet-start after discovery); the TLS bootstrap is the kubelet's."""
    from kbootd import workflow
    from kbootd.phases import JOIN
    from tests.apiserver import TestAPIServer
    from tests.test_join_support import init_control_plane, join_context, pinned, wait_signed

    skip = ("wait-tls-bootstrap",)
    with TestAPIServer() as srv:
        init_control_plane(srv, tmp_path / "cp")
        wait_signed(srv)

        def join(root: Path) -> None:
            workflow.run(JOIN, join_context(root, pinned(srv)), skip=skip)

        ref = tmp_path / "ref"
        ref.mkdir()
        join(ref)
        expected = files(ref)
        kills = 0
        for n in range(1, len(expected) + 10):
            root = tmp_path / f"j{n}"
            root.mkdir()
            if not killed_after(n, lambda root=root: join(root), before_rename=before_rename):
                break
            kills += 1
            before = keys_and_cas(root)
            join(root)
            after = keys_and_cas(root)
            assert {k: after[k] for k in before} == before, n
            assert files(root) == expected, n
            assert not [p for p in root.rglob("*.kbootd-tmp-*")], n
    assert kills >= 9  # cri: crictl, containerd, modules, sysctl; kubelet-start: bootstrap conf, ca.crt, flags, config, drop-in
