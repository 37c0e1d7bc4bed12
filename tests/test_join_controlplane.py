"""join --control-plane's phases against the HTTPS test API server: prerequisites, download-certs with
the certificate key or pre-shared material, certs/kubeconfig/manifests for the new control plane.

The cluster is built the way an operator would: shared material from `kbootd ca generate
--control-plane` (kbootd.cluster.sharedpki), the API server serving with that CA, kbootd's init
phases writing the cluster objects, kbootd's upload-certs storing kubeadm-certs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from kbootd.cluster import admin_client, sharedpki, uploadcerts, uploadconfig, write_all
from kbootd.config.model import ClusterConfig, InitConfig, JoinControlPlane
from kbootd.context import make_context
from kbootd.errors import (
    EXIT_PREFLIGHT,
    EXIT_SECURITY,
    PreflightError,
    SecurityError,
    exit_code_for,
)
from kbootd.join import controlplane as cp
from kbootd.pki import certs
from kbootd.report import RecordingReporter
from tests.apiserver import TestAPIServer
from tests.conftest import tree_snapshot
from tests.test_join_support import init_control_plane, join_context, pinned, wait_signed

KEY = "3f1c2a9b8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a392817f6e5d4c3"
SHARED = ("ca.crt", "ca.key", "front-proxy-ca.crt", "front-proxy-ca.key", "etcd/ca.crt", "etcd/ca.key",
          "sa.key", "sa.pub")


def write_material(root: Path, m: sharedpki.SharedMaterial) -> None:
    for f in m.files:
        p = root / f.path.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f.content)
        p.chmod(f.mode)


class Cluster:
    def __init__(self, srv: TestAPIServer, cp1: Path, material: sharedpki.SharedMaterial) -> None:
        self.srv, self.cp1, self.material = srv, cp1, material


def make_cluster(tmp_path: Path, *, endpoint: bool = True, upload: bool = True) -> Iterator[Cluster]:
    cp1 = tmp_path / "cp1"
    m = sharedpki.generate()
    write_material(cp1, m)
    with TestAPIServer(cert_dir=cp1 / "etc/kubernetes/pki") as srv:
        ctx = init_control_plane(srv, cp1)
        wait_signed(srv)
        if endpoint:  # kubeadm-config as an HA init uploads it
            cfg = InitConfig(cluster=ClusterConfig(control_plane_endpoint=srv.server_address))
            write_all(admin_client(ctx), uploadconfig.kubeadm_config_objects(cfg))
        if upload:
            up = make_context(root=str(cp1), reporter=RecordingReporter(), init=InitConfig())
            up.data.api_client = admin_client(ctx)
            up.data.cluster_admins_ensured = True
            uploadcerts.upload(up, up.data.api_client, KEY)
        yield Cluster(srv, cp1, m)
        ctx.data.api_client.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    yield from make_cluster(tmp_path)


def cp_join(c: Cluster, root: Path, *, key: str | None = KEY, dry_run: bool = False):
    cfg = replace(pinned(c.srv, node="cp-2"),
                  control_plane=JoinControlPlane(advertise_address="127.0.0.2", certificate_key=key))
    return join_context(root, cfg, dry_run=dry_run)


PREPARE = (cp.preflight, cp.download_certs, cp.certs, cp.kubeconfigs, cp.control_plane)


def test_prepare_with_the_certificate_key(cluster: Cluster, root: Path) -> None:
    ctx = cp_join(cluster, root)
    for phase in PREPARE:
        phase(ctx)
    pki = root / "etc/kubernetes/pki"
    for rel in SHARED:  # the cluster's material, byte for byte; never a CA of its own
        assert (pki / rel).read_bytes() == (cluster.cp1 / "etc/kubernetes/pki" / rel).read_bytes(), rel
    ca = certs.load_cert_pem((pki / "ca.crt").read_bytes(), "ca")
    apiserver = certs.load_cert_pem((pki / "apiserver.crt").read_bytes(), "apiserver")
    assert certs.signed_by(apiserver, ca)
    alt = certs.alt_names_of(apiserver)
    assert "127.0.0.2" in [str(i) for i in alt.ips]  # this node's advertise address
    etcd_ca = certs.load_cert_pem((pki / "etcd/ca.crt").read_bytes(), "etcd ca")
    assert certs.signed_by(certs.load_cert_pem((pki / "etcd/peer.crt").read_bytes(), "peer"), etcd_ca)
    admin = yaml.safe_load((root / "etc/kubernetes/admin.conf").read_text())
    assert admin["clusters"][0]["cluster"]["server"] == f"https://{cluster.srv.server_address}"
    assert not (root / "etc/kubernetes/super-admin.conf").exists()  # init's only
    for m in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        assert (root / f"etc/kubernetes/manifests/{m}.yaml").exists(), m
    api = yaml.safe_load((root / "etc/kubernetes/manifests/kube-apiserver.yaml").read_text())
    assert "--advertise-address=127.0.0.2" in api["spec"]["containers"][0]["command"]
    # A re-run (after a crash) changes nothing.
    before = tree_snapshot(root)
    ctx2 = cp_join(cluster, root)
    for phase in PREPARE:
        phase(ctx2)
    assert tree_snapshot(root) == before
    assert KEY not in ctx.reporter.text() + ctx2.reporter.text()


def test_wrong_key_is_a_security_failure_before_any_pki(cluster: Cluster, root: Path) -> None:
    ctx = cp_join(cluster, root, key="00" * 32)
    cp.preflight(ctx)
    with pytest.raises(SecurityError) as e:
        cp.download_certs(ctx)
    assert exit_code_for(e.value) == EXIT_SECURITY
    assert not (root / "etc/kubernetes/pki").exists()
    with pytest.raises(SecurityError, match="refusing to generate new certificate authorities"):
        cp.certs(ctx)
    assert not (root / "etc/kubernetes/pki").exists()


def test_pre_shared_material_is_checked_and_used(cluster: Cluster, root: Path) -> None:
    write_material(root, cluster.material)
    ctx = cp_join(cluster, root, key=None)
    for phase in PREPARE:
        phase(ctx)
    assert "Skipping phase. Please see --certificate-key" in ctx.reporter.text()
    assert "pre-shared certificates match" in ctx.reporter.text()
    assert (root / "etc/kubernetes/pki/apiserver.crt").exists()


def test_pre_shared_material_of_another_cluster_is_refused(cluster: Cluster, root: Path) -> None:
    write_material(root, sharedpki.generate())
    ctx = cp_join(cluster, root, key=None)
    cp.preflight(ctx)
    with pytest.raises(SecurityError, match="is not the CA of the cluster this node discovered") as e:
        cp.download_certs(ctx)
    assert exit_code_for(e.value) == EXIT_SECURITY
    assert not (root / "etc/kubernetes/pki/apiserver.crt").exists()


def test_pre_shared_key_not_matching_its_certificate_is_refused(cluster: Cluster, root: Path) -> None:
    write_material(root, cluster.material)
    other = sharedpki.generate()
    (root / "etc/kubernetes/pki/front-proxy-ca.key").write_text(
        next(f.content for f in other.files if f.path.endswith("front-proxy-ca.key")))
    ctx = cp_join(cluster, root, key=None)
    with pytest.raises(SecurityError, match="front-proxy-ca.key is not the key"):
        cp.download_certs(ctx)


def test_no_key_and_nothing_shared_fails_preflight(cluster: Cluster, root: Path) -> None:
    ctx = cp_join(cluster, root, key=None)
    with pytest.raises(PreflightError, match="no certificate key and no pre-shared cluster CA") as e:
        cp.preflight(ctx)
    assert exit_code_for(e.value) == EXIT_PREFLIGHT


def test_a_cluster_without_control_plane_endpoint_cannot_get_a_control_plane(tmp_path: Path, root: Path) -> None:
    for c in make_cluster(tmp_path, endpoint=False):
        ctx = cp_join(c, root)
        with pytest.raises(PreflightError, match="doesn't have a stable controlPlaneEndpoint") as e:
            cp.preflight(ctx)
        assert exit_code_for(e.value) == EXIT_PREFLIGHT == 2


def test_expired_secret_says_so(cluster: Cluster, root: Path) -> None:
    cluster.srv.store.delete("secrets", "kubeadm-certs", "kube-system")
    ctx = cp_join(cluster, root)
    with pytest.raises(uploadcerts.CertsNotUploaded, match="might have expired"):
        cp.download_certs(ctx)


def test_dry_run_writes_nothing(cluster: Cluster, root: Path) -> None:
    ctx = cp_join(cluster, root, dry_run=True)
    before = tree_snapshot(root)
    for phase in PREPARE:
        phase(ctx)
    assert tree_snapshot(root) == before
    assert KEY not in ctx.reporter.text()


def test_the_daemon_waits_for_the_certificates_to_be_uploaded(cluster: Cluster, root: Path) -> None:
    """Without a deadline (the daemon's join), a missing kubeadm-certs is waited for, and said so."""
    import math
    import threading

    from kbootd.config.model import Timeouts

    cluster.srv.store.delete("secrets", "kubeadm-certs", "kube-system")
    ctx = cp_join(cluster, root)
    ctx.join = replace(ctx.join, timeouts=replace(ctx.join.timeouts, discovery=math.inf))
    assert isinstance(ctx.join.timeouts, Timeouts)
    cp.preflight(ctx)

    def upload_later() -> None:
        cluster.srv.wait_for(lambda: "waiting for the control plane's certificates" in ctx.reporter.text(), 10)
        up = make_context(root=str(cluster.cp1), reporter=RecordingReporter(), init=InitConfig())
        client = admin_client(up)
        up.data.cluster_admins_ensured = True
        try:
            uploadcerts.upload(up, client, KEY)
        finally:
            client.close()

    t = threading.Thread(target=upload_later)
    t.start()
    cp.download_certs(ctx)
    t.join(10)
    text = ctx.reporter.text()
    assert 'waiting for the control plane\'s certificates (Secret kubeadm-certs): Secret "kubeadm-certs" was not found' in text
    assert (root / "etc/kubernetes/pki/ca.key").read_bytes() == (cluster.cp1 / "etc/kubernetes/pki/ca.key").read_bytes()


CP_PHASES = ("preflight/control-plane", "control-plane-prepare", "control-plane-prepare/download-certs",
             "control-plane-prepare/certs", "control-plane-prepare/kubeconfig", "control-plane-prepare/control-plane",
             "control-plane-join", "control-plane-join/etcd", "control-plane-join/mark-control-plane",
             "wait-control-plane")


@pytest.mark.parametrize("phase", CP_PHASES)
def test_each_control_plane_phase_runs_alone_in_dry_run_from_the_cli(cluster: Cluster, root: Path, run_cli,
                                                                    phase: str) -> None:
    from kbootd.pin import pin_of

    before = tree_snapshot(root)
    rc, out, err = run_cli("join", "phase", phase, cluster.srv.server_address, "--token", "abcdef.0123456789abcdef",
                           "--discovery-token-ca-cert-hash", pin_of(cluster.srv.ca_pem), "--control-plane",
                           "--certificate-key", KEY, "--apiserver-advertise-address", "127.0.0.2",
                           "--node-name", "cp-2", "--root", str(root), "--dry-run")
    assert rc == 0, (out, err)
    assert tree_snapshot(root) == before
    assert KEY not in out + err


def test_control_plane_preflight_runs_inits_node_checks(cluster: Cluster, root: Path) -> None:
    """kubeadm's RunInitNodeChecks for a secondary control plane: a leftover static Pod manifest stops it."""
    ctx = cp_join(cluster, root)
    ctx.ignore_preflight_errors = frozenset()
    cp.preflight(ctx)  # a clean host passes
    leftover = root / "etc/kubernetes/manifests/kube-apiserver.yaml"
    leftover.parent.mkdir(parents=True, exist_ok=True)
    leftover.write_text("old\n")
    with pytest.raises(PreflightError, match="FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml") as e:
        cp_join_again = cp_join(cluster, root)
        cp_join_again.ignore_preflight_errors = frozenset()
        cp.preflight(cp_join_again)
    assert exit_code_for(e.value) == EXIT_PREFLIGHT


def test_cli_wrong_key_exits_4_and_writes_no_pki(cluster: Cluster, root: Path, run_cli) -> None:
    from kbootd.pin import pin_of

    wrong = "0f" * 32
    rc, out, err = run_cli("join", "phase", "control-plane-prepare/download-certs", cluster.srv.server_address,
                           "--token", "abcdef.0123456789abcdef", "--discovery-token-ca-cert-hash",
                           pin_of(cluster.srv.ca_pem), "--control-plane", "--certificate-key", wrong,
                           "--node-name", "cp-2", "--root", str(root))
    assert rc == 4, (out, err)
    assert "message authentication failed" in err and wrong not in out + err
    assert not (root / "etc/kubernetes/pki").exists()
