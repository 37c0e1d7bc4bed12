"""Stacked etcd membership against REAL etcd (Debian's etcd-server): three members on loopback.

Each member is a host root with PKI from kbootd's certs phase (one shared etcd CA) and an etcd
started from the flags of the manifest kbootd wrote, as the kubelet would start the static Pod. The
only changes to those flags: host paths are taken inside the root, and the loopback listeners
(127.0.0.1:2379/2381, the same on every member) move to the member's own loopback address, so three
members fit on one machine. Joiners go through kbootd.etcd.members (learner, manifest, promote);
each is killed at one step and run again, and etcd must then list exactly one member per node.

Skipped with the reason when etcd is not installed; in CI (CI=true) that fails instead.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from kbootd.config.model import ClusterConfig, InitConfig, NodeRegistration
from kbootd.context import Seams, make_context
from kbootd.errors import KbootdError
from kbootd.etcd import gateway, members
from kbootd.manifests import etcd as etcd_manifest
from kbootd.manifests import phase as manifest_phase
from kbootd.pki import certlist
from kbootd.pki import phase as pki_phase
from kbootd.report import RecordingReporter
from kbootd.retry import Backoff

ETCD = shutil.which("etcd")
pytestmark = [pytest.mark.subprocess, pytest.mark.usefixtures("etcd_installed")]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@pytest.fixture(scope="module")
def etcd_installed() -> None:
    if ETCD is None:
        reason = "etcd is not installed (apt-get install etcd-server)"
        if in_ci():
            pytest.fail(f"real-etcd tests cannot run in CI: {reason}", pytrace=False)
        pytest.skip(reason)


class Crash(Exception):
    """The joining process died here (not a KbootdError: nothing retries it)."""


class Node:
    """One control-plane host: its root, its config, and its etcd process (the kubelet's job)."""

    def __init__(self, base: Path, name: str, addr: str) -> None:
        self.root = base / name
        self.root.mkdir(parents=True)
        self.name, self.addr = name, addr
        self.cfg = InitConfig(advertise_address=addr, node=NodeRegistration(name=name),
                              cluster=ClusterConfig(kubernetes_version="v1.32.0"))
        self.proc: subprocess.Popen | None = None
        self.started_from: bytes | None = None

    def ctx(self):
        return make_context(root=str(self.root), reporter=RecordingReporter(), init=self.cfg,
                            seams=Seams(backoff=Backoff(first=0.1, cap=0.5), skip_kubelet_check=True))

    def certs(self, ca_from: Node | None = None) -> None:
        pki = self.root / "etc/kubernetes/pki/etcd"
        pki.mkdir(parents=True, exist_ok=True)
        if ca_from is not None:
            for f in ("ca.crt", "ca.key"):
                shutil.copy(ca_from.root / "etc/kubernetes/pki/etcd" / f, pki / f)
        ctx = self.ctx()
        for spec in (certlist.ETCD_CA, certlist.ETCD_SERVER, certlist.ETCD_PEER, certlist.APISERVER_ETCD_CLIENT):
            pki_phase.ensure_cert(ctx, spec)

    @property
    def manifest(self) -> Path:
        return self.root / "etc/kubernetes/manifests/etcd.yaml"

    @property
    def client_url(self) -> str:
        return etcd_manifest.client_url(self.addr)

    def argv(self) -> list[str]:
        """The manifest's command, host paths inside the root, loopback listeners on our own address."""
        doc = yaml.safe_load(self.manifest.read_text())
        (ctr,) = doc["spec"]["containers"]
        out = [ETCD]
        for arg in ctr["command"][1:]:
            name, _, value = arg.partition("=")
            if name == "--listen-client-urls":
                value = ",".join(u for u in value.split(",") if "127.0.0.1:" not in u)
            elif name == "--listen-metrics-urls":
                value = value.replace("127.0.0.1", self.addr)
            elif value.startswith("/"):
                value = str(self.root) + value
            out.append(f"{name}={value}")
        return out

    def kubelet(self) -> None:
        """Start etcd from the manifest, as the kubelet does when the file appears (or restart it)."""
        if self.proc is not None and self.proc.poll() is None and self.started_from == self.manifest.read_bytes():
            return
        self.kill()
        self.started_from = self.manifest.read_bytes()
        log = open(self.root / "etcd.log", "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def gateway(self, endpoints: list[str] | None = None) -> gateway.Gateway:
        ctx = self.ctx()
        return gateway.Gateway(endpoints or [self.client_url],
                               gateway.load_credentials(ctx, ctx.cfg.cluster.certificates_dir))

    def log(self) -> str:
        p = self.root / "etcd.log"
        return p.read_text(errors="replace")[-3000:] if p.exists() else ""


def wait_healthy(node: Node, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < end:
        try:
            with node.gateway() as gw:
                if gw.status(node.client_url).get("leader"):
                    return
        except KbootdError as e:
            last = e
        time.sleep(0.2)
    raise AssertionError(f"etcd {node.name} not healthy: {last}\n{node.log()}")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[Node]]:
    """cp1 running as a one-member cluster (init's manifest); cp2, cp3 ready to join."""
    base = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}"
    nodes = [Node(tmp_path, f"cp{i}", f"{base}.{i}") for i in (1, 2, 3)]
    nodes[0].certs()
    for n in nodes[1:]:
        n.certs(ca_from=nodes[0])
    manifest_phase.etcd_local(nodes[0].ctx())
    nodes[0].kubelet()
    try:
        wait_healthy(nodes[0])
        yield nodes
    finally:
        for n in nodes:
            n.kill()


def member_list(node: Node) -> list[gateway.Member]:
    with node.gateway() as gw:
        return gw.members()


def join(joiner: Node, via: Node, *, gw: gateway.Gateway | None = None, start=None) -> gateway.Member:
    """kbootd's join of joiner's member; `start` plays the kubelet once the manifest is written."""
    ctx = joiner.ctx()
    g = gw or joiner.gateway([via.client_url])
    with g:
        return members.join(ctx, g, retry=_retry(ctx), start_wait=start or joiner.kubelet)


def _retry(ctx):
    from kbootd.retry import retry

    def step(fn, what):
        return retry(fn, what=what, deadline=60, backoff=Backoff(first=0.1, cap=0.5), timing=ctx.seams)

    return step


def assert_one_member_each(nodes: list[Node]) -> None:
    for n in nodes:
        ms = member_list(n)
        peers = sorted(u for m in ms for u in m.peer_urls)
        assert peers == sorted(etcd_manifest.peer_url(x.addr) for x in nodes), (n.name, ms)
        assert not any(m.learner for m in ms), ms
        assert sorted(m.name for m in ms) == sorted(x.name for x in nodes)


def manifest_flags(node: Node) -> dict[str, str]:
    doc = yaml.safe_load(node.manifest.read_text())
    return dict(a[2:].partition("=")[::2] for a in doc["spec"]["containers"][0]["command"][1:])


# --- forming a cluster ---------------------------------------------------------------------------

def test_three_members_join_as_learners_then_vote(cluster):
    cp1, cp2, cp3 = cluster
    seen_learner = []

    def start_and_look(node: Node):
        def start():
            node.kubelet()
            seen_learner.append([m.learner for m in member_list(cp1) if node.addr in m.peer_urls[0]])
        return start

    me2 = join(cp2, cp1, start=start_and_look(cp2))
    flags = manifest_flags(cp2)
    assert flags["initial-cluster-state"] == "existing"
    assert flags["initial-cluster"] == f"cp1={etcd_manifest.peer_url(cp1.addr)},cp2={etcd_manifest.peer_url(cp2.addr)}"
    me3 = join(cp3, cp2)  # through the new member: any member serves the membership API
    flags3 = manifest_flags(cp3)
    assert sorted(flags3["initial-cluster"].split(",")) == sorted(
        f"{n.name}={etcd_manifest.peer_url(n.addr)}" for n in cluster)
    assert seen_learner == [[True]]  # added as a learner, promoted only after it started
    assert not me2.learner and not me3.learner
    wait_healthy(cp3)
    assert_one_member_each(cluster)
    # init's member keeps its new-cluster manifest
    assert "initial-cluster-state" not in manifest_flags(cp1)


def test_a_second_join_run_adds_nothing(cluster):
    cp1, cp2, _ = cluster
    join(cp2, cp1)
    before = member_list(cp1)
    text = cp2.manifest.read_bytes()
    ctx = cp2.ctx()
    with cp2.gateway([cp1.client_url]) as gw:
        members.join(ctx, gw, retry=_retry(ctx), start_wait=cp2.kubelet)
    assert member_list(cp1) == before
    assert cp2.manifest.read_bytes() == text
    assert "already lists this node's member" in ctx.reporter.text()


# --- killed at each step, run again ----------------------------------------------------------------

class CrashAfter(gateway.Gateway):
    """A gateway whose process dies right after etcd applied the named call (its answer is lost)."""

    def __init__(self, call: str, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.crash_call = call

    def call(self, path, body=None):
        out = super().call(path, body)
        if path == self.crash_call:
            raise Crash(f"died after {path}")
        return out


def crash_after(node: Node, via: Node, call: str) -> CrashAfter:
    ctx = node.ctx()
    return CrashAfter(call, [via.client_url], gateway.load_credentials(ctx, ctx.cfg.cluster.certificates_dir))


def test_killed_after_member_add_and_after_promote(cluster):
    cp1, cp2, cp3 = cluster
    # cp2 dies as etcd adds its learner: nothing written on the host yet
    with pytest.raises(Crash):
        join(cp2, cp1, gw=crash_after(cp2, cp1, "cluster/member/add"))
    assert not cp2.manifest.exists()
    assert [m.learner for m in member_list(cp1)] == [False, True] or [m.learner for m in member_list(cp1)] == [True, False]
    join(cp2, cp1)
    assert len(member_list(cp1)) == 2
    # cp3 dies as etcd promotes it
    with pytest.raises(Crash):
        join(cp3, cp1, gw=crash_after(cp3, cp1, "cluster/member/promote"))
    join(cp3, cp1)
    wait_healthy(cp3)
    assert_one_member_each(cluster)


def test_killed_before_the_static_pod_runs_and_with_etcd_running(cluster):
    cp1, cp2, cp3 = cluster

    def die_before_start():
        raise Crash("died before the kubelet started etcd")

    with pytest.raises(Crash):
        join(cp2, cp1, start=die_before_start)
    assert cp2.manifest.exists() and cp2.proc is None
    join(cp2, cp1)

    def start_then_die():
        cp3.kubelet()
        wait_healthy(cp3)
        cp3.kill()  # the whole node goes down: its etcd with it
        raise Crash("node died with etcd running, learner not promoted")

    with pytest.raises(Crash):
        join(cp3, cp1, start=start_then_die)
    assert any(m.learner for m in member_list(cp1))
    join(cp3, cp1)  # the kubelet restarts etcd from the same manifest; the learner is promoted
    wait_healthy(cp3)
    assert_one_member_each(cluster)


def test_a_stale_member_without_local_data_is_named(cluster):
    cp1, cp2, _ = cluster
    join(cp2, cp1)
    wait_healthy(cp2)
    cp2.kill()
    shutil.rmtree(cp2.root / "var/lib/etcd")
    with pytest.raises(KbootdError, match="has run before") as e:
        join(cp2, cp1)
    assert "member remove" in (e.value.hint or "")
    assert len(member_list(cp1)) == 2


def test_concurrent_joiners_wait_for_the_pending_learner(cluster):
    """etcd allows one learner at a time: the second joiner retries "too many learner members"."""
    import threading

    cp1, cp2, cp3 = cluster
    errors: list[BaseException] = []

    def go(n: Node) -> None:
        try:
            join(n, cp1)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=go, args=(n,)) for n in (cp2, cp3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    wait_healthy(cp2)
    wait_healthy(cp3)
    assert_one_member_each(cluster)


def test_dry_run_changes_nothing(cluster):
    cp1, cp2, _ = cluster
    ctx = make_context(root=str(cp2.root), reporter=RecordingReporter(), init=cp2.cfg, dry_run=True)
    members.run(ctx, [cp1.client_url])
    assert len(member_list(cp1)) == 1
    assert not cp2.manifest.exists()
    assert "Would add etcd member 'cp2'" in ctx.reporter.text()


def test_reset_remove_node_removes_the_joined_member(cluster):
    """reset --remove-node finds the member join made (by name, or by peer URL before it started)."""
    from kbootd import engine
    from kbootd.reset import ResetOptions

    cp1, cp2, cp3 = cluster
    join(cp2, cp1)

    def never_started():
        raise Crash("the node dies before the kubelet starts etcd: the learner has no name yet")

    with pytest.raises(Crash):
        join(cp3, cp1, start=never_started)
    assert [m.name for m in member_list(cp1) if not m.name] == [""]
    for node in (cp3, cp2):
        rep = RecordingReporter()
        engine.run_reset(ResetOptions(force=True, remove_node=True, cri_socket="unix:///run/containerd/containerd.sock",
                                      etcd_endpoint=cp1.client_url, node_name=node.name),
                         reporter=rep, root=str(node.root), only="remove-etcd-member")
        assert f"Removed etcd member {node.name!r}" in rep.text()
    assert [m.name for m in member_list(cp1)] == ["cp1"]


def test_control_plane_join_phase_finds_the_members_through_the_etcd_pods(cluster):
    """The join phase (kbootd.join.controlplane.etcd) asks the API for the etcd Pods' client URLs, as
    kubeadm does, then joins; a kubelet stand-in starts etcd when the manifest appears."""
    import threading

    from kbootd.config.model import JoinConfig, JoinControlPlane
    from kbootd.join import controlplane
    from tests.apiserver import TestAPIServer

    cp1, cp2, _ = cluster
    with TestAPIServer() as srv:
        srv.store.create({"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": "etcd-cp1", "namespace": "kube-system", "labels": {"component": "etcd", "tier": "control-plane"},
            "annotations": {members.CLIENT_URLS_ANNOTATION: cp1.client_url}},
            "spec": {"containers": [{"name": "etcd", "image": "registry.k8s.io/etcd:3.5.16-0"}]}})
        srv.write_kubeconfig(cp2.root / "etc/kubernetes/admin.conf", "admin")
        kubeadm_rbac(srv)
        ctx = cp2.ctx()
        ctx.join = JoinConfig(control_plane=JoinControlPlane(advertise_address=cp2.addr))
        stop = threading.Event()

        def kubelet() -> None:
            while not stop.is_set():
                if cp2.manifest.exists():
                    cp2.kubelet()
                stop.wait(0.1)

        t = threading.Thread(target=kubelet, daemon=True)
        t.start()
        try:
            controlplane.etcd(ctx)
        finally:
            stop.set()
            t.join(5)
    assert any(r for r in srv.requests if r.path.startswith("/api/v1/namespaces/kube-system/pods"))
    ms = member_list(cp1)
    assert sorted(m.name for m in ms) == ["cp1", "cp2"] and not any(m.learner for m in ms)


def kubeadm_rbac(srv) -> None:
    from tests.apiserver import kubeadm

    kubeadm.grant_cluster_admins(srv.store)


def test_a_join_waits_while_a_member_is_down(cluster):
    """kubeadm checks the cluster's health before adding a member; so does kbootd, and it waits."""
    from kbootd.errors import WaitTimeout
    from kbootd.retry import retry

    cp1, cp2, cp3 = cluster
    join(cp2, cp1)
    wait_healthy(cp2)
    cp2.kill()
    ctx = cp3.ctx()

    def short(fn, what):
        return retry(fn, what=what, deadline=2, backoff=Backoff(first=0.1, cap=0.3), timing=ctx.seams)

    with cp3.gateway([cp1.client_url]) as gw, pytest.raises(WaitTimeout, match="wait for a healthy etcd cluster") as e:
        members.join(ctx, gw, retry=short, start_wait=cp3.kubelet)
    assert cp2.client_url in str(e.value) or "leader" in str(e.value), str(e.value)
    assert not cp3.manifest.exists()
    cp2.kubelet()  # back up: the join goes through
    wait_healthy(cp2)
    join(cp3, cp1)
    wait_healthy(cp3)
    assert_one_member_each(cluster)



KEY = "3f1c2a9b8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a392817f6e5d4c3"


@contextlib.contextmanager
def ha_cluster(tmp_path, monkeypatch):
    """Control plane 1 (shared material from `ca generate --control-plane`, its real etcd, kbootd's init
    objects, kubeadm-certs uploaded with KEY, its etcd Pod) and a context maker for control plane 2's
    `join --control-plane`. The test API server, bound to cp2's address, stands in for both API servers;
    tests/kubelet_double.py does the kubelet's TLS bootstrap, a thread starts etcd from cp2's manifest."""
    import threading
    from dataclasses import replace

    from kbootd.cluster import admin_client, sharedpki, uploadcerts, uploadconfig, write_all
    from kbootd.config.model import JoinControlPlane
    from tests.apiserver import TestAPIServer
    from tests.kubelet_double import KubeletDouble
    from tests.preflight_fakes import FakeFacts, healthy_root
    from tests.test_join_support import FAST, RawReporter, init_control_plane, pinned, wait_signed

    base = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}"
    cp1, cp2 = Node(tmp_path, "cp1", f"{base}.1"), Node(tmp_path, "cp2", f"{base}.2")
    for f in sharedpki.generate().files:
        p = cp1.root / f.path.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f.content)
        p.chmod(f.mode)
    cp1.certs()
    manifest_phase.etcd_local(cp1.ctx())
    cp1.kubelet()
    stop = threading.Event()
    try:
        wait_healthy(cp1)
        with TestAPIServer(cert_dir=cp1.root / "etc/kubernetes/pki", bind=cp2.addr) as srv:
            init = init_control_plane(srv, cp1.root)
            wait_signed(srv)
            admin = admin_client(init)
            write_all(admin, uploadconfig.kubeadm_config_objects(
                InitConfig(cluster=ClusterConfig(control_plane_endpoint=srv.server_address))))
            uploadcerts.upload(init, admin, KEY)
            srv.store.create({"apiVersion": "v1", "kind": "Pod", "metadata": {
                "name": "etcd-cp1", "namespace": "kube-system", "labels": {"component": "etcd", "tier": "control-plane"},
                "annotations": {members.CLIENT_URLS_ANNOTATION: cp1.client_url}},
                "spec": {"containers": [{"name": "etcd", "image": "registry.k8s.io/etcd:3.5.16-0"}]}})
            cfg = replace(pinned(srv, node="cp2"), control_plane=JoinControlPlane(
                advertise_address=cp2.addr, bind_port=srv.port, certificate_key=KEY))
            healthy_root(cp2.root)

            def new_ctx():
                return make_context(root=str(cp2.root), reporter=RawReporter(), join=cfg,
                                    ignore_preflight_errors=("all",),
                                    seams=Seams(backoff=FAST, preflight_facts=FakeFacts(), skip_kubelet_check=True))

            def static_pods() -> None:
                while not stop.is_set():
                    if cp2.manifest.exists():
                        cp2.kubelet()
                    stop.wait(0.1)

            threading.Thread(target=static_pods, daemon=True).start()
            kubelet = KubeletDouble(cp2.root, "cp2")
            with kubelet.install(monkeypatch):
                yield srv, cp1, cp2, new_ctx
            init.data.api_client.close()
    finally:
        stop.set()
        cp1.kill()
        cp2.kill()


def assert_joined(srv, cp1, cp2, out: str) -> None:
    assert "a new control plane instance was created" in out and KEY not in out
    node = srv.store.get("nodes", "cp2")
    assert node["metadata"]["labels"]["node-role.kubernetes.io/control-plane"] == ""
    assert {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"} in node["spec"]["taints"]
    for rel in ("ca.key", "sa.key", "etcd/ca.crt", "front-proxy-ca.crt"):
        assert (cp2.root / "etc/kubernetes/pki" / rel).read_bytes() == \
            (cp1.root / "etc/kubernetes/pki" / rel).read_bytes(), rel
    for m in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        assert (cp2.root / f"etc/kubernetes/manifests/{m}.yaml").exists(), m
    ms = member_list(cp1)
    assert sorted(m.name for m in ms) == ["cp1", "cp2"] and not any(m.learner for m in ms)
    assert manifest_flags(cp2)["initial-cluster-state"] == "existing"


def test_full_control_plane_join_workflow(tmp_path, monkeypatch):
    """`join --control-plane`'s whole workflow (kbootd.phases.JOIN): discovery through the
    controlPlaneEndpoint, kubeadm-certs decrypted with the key, its own PKI, kubeconfigs and manifests,
    the TLS bootstrap, its etcd member added as a learner to control plane 1's real etcd and promoted,
    the Node marked, its own API server awaited."""
    from kbootd import workflow
    from kbootd.phases import JOIN

    with ha_cluster(tmp_path, monkeypatch) as (srv, cp1, cp2, new_ctx):
        ctx = new_ctx()
        workflow.run(JOIN, ctx)
        assert_joined(srv, cp1, cp2, ctx.reporter.text())


@pytest.mark.parametrize("call", ["cluster/member/add", "cluster/member/promote"])
def test_a_control_plane_killed_mid_join_resumes_without_a_second_member(tmp_path, monkeypatch, call):
    """Killed as etcd applied the member add (or the promote): resumed as the daemon resumes (the phases
    done are skipped, the rest run again in a new process), etcd ends with one member per node."""
    from kbootd import workflow
    from kbootd.phases import JOIN

    with ha_cluster(tmp_path, monkeypatch) as (srv, cp1, cp2, new_ctx):
        ctx = new_ctx()
        with monkeypatch.context() as m:
            m.setattr(members, "Gateway", lambda *a, **kw: CrashAfter(call, *a, **kw))
            with pytest.raises(Crash):
                workflow.run(JOIN, ctx)
        assert "control-plane-join/etcd" not in ctx.completed
        assert "kubelet-start" in ctx.completed
        again = new_ctx()
        workflow.run(JOIN, again, skip=tuple(ctx.completed))
        assert_joined(srv, cp1, cp2, again.reporter.text())
        assert "already lists this node's member" in again.reporter.text()
