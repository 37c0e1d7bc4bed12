"""Three control planes and a worker booted at the same moment converge into one HA cluster,
on real systemd and cloud-init (each Debian release of image.SUITES) with a REAL etcd.

Hosts (systemd-nspawn, private bridge 10.213.0.0/24), all launched at once, each seeded with
NoCloud user-data whose write_files puts /etc/kbootd/kbootd.yaml (0600) in place:

* cp1     10.213.0.10  role control-plane: inits. controlPlaneEndpoint = 10.213.0.10:6443,
                       the first control plane's own address (its `endpoint`; no load
                       balancer or DNS name in this test).
* cp2     10.213.0.11  role control-plane with controlPlaneJoin (the daemon's explicit
* cp3     10.213.0.12  setting: never an election): they wait for cp1's API server and
                       etcd (STATUS says for what), then join through the controlPlaneEndpoint.
* worker  10.213.0.13  role worker, joins through the controlPlaneEndpoint.

The shared material (cluster CA, front-proxy CA, etcd CA, sa key pair) comes from `kbootd ca
generate --control-plane` and reaches the joiners both ways the daemon offers:
* cp1 and cp3 get it by write_files (pre-shared, the Cluster API way);
* cp1 also has a certificateKey, so its init uploads the material to the kubeadm-certs
  Secret (kubeadm's --upload-certs); cp2 gets only that key and downloads the material.
Every joiner pins the cluster CA; every control plane must end with the same material.

Stand-ins (e2e_ha_support.StaticPods, the kubelet's static-Pod duty, driven by the test):
* etcd: Debian's real etcd, started in each control plane with exactly the flags of the
  etcd manifest kbootd wrote (cp2 and cp3 with --initial-cluster-state=existing), so the
  membership (learner add, promote) is real etcd's, over the bridge;
* kube-apiserver: the in-repo test API server, one per control plane. The three instances
  do NOT share state (each keeps its objects in memory; they do not use etcd). So the
  cluster's objects (kubeadm-config, the Nodes, the etcd mirror Pods, RBAC) live on cp1's
  instance, reached by everyone through the controlPlaneEndpoint; cp2's and cp3's own
  instances only answer their wait-control-plane health check;
* the etcd mirror Pods (kubeadm and kbootd find the members through their
  advertise-client-urls annotation) are created on cp1's API server from each manifest;
* the kubelet, containerd, iptables and modprobe of test_e2e_daemon (e2e_daemon_support).

cp3's etcd is held back: when its manifest appears (its learner added, the manifest
written, not yet promoted) kbootd is SIGKILLed there; then its etcd starts, systemd
restarts kbootd, and the join resumes: etcd must end with exactly three voting members,
one per peer URL, cp3's with the ID it had when it was killed.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml

from tests.e2e import e2e_daemon_support as s
from tests.e2e import e2e_ha_support as ha
from tests.e2e.hosts import Hosts
from tests.e2e.nspawn import Host, Seed

pytestmark = pytest.mark.e2e

IPS = {"cp1": "10.213.0.10", "cp2": "10.213.0.11", "cp3": "10.213.0.12", "worker": "10.213.0.13"}
ENDPOINT = f"{IPS['cp1']}:6443"          # the controlPlaneEndpoint: cp1's own address
JOINERS = ("cp2", "cp3")
KEYED, PRESHARED = "cp2", "cp3"          # how each joiner gets the shared material
KILLED = "cp3"
BOOTED = "multi-user.target"
STATE_FILE = "/var/lib/kbootd/state.json"
STATUS_FILE = "/run/kbootd/status.json"
CA_CRT = "/etc/kubernetes/pki/ca.crt"
# join's control-plane phases (kbootd/phases.py JOIN), in the order they must finish.
CONTROL_PLANE_PHASES = ("control-plane-prepare/download-certs", "control-plane-prepare/certs",
                        "control-plane-prepare/kubeconfig", "control-plane-prepare/control-plane",
                        "kubelet-start", "control-plane-join/etcd", "control-plane-join/mark-control-plane",
                        "wait-control-plane")
CONVERGE_TIMEOUT = 480                   # 2 cores shared: four hosts, three etcd members


@dataclass
class HA:
    hosts: dict[str, Host]
    material: dict[str, Any]
    token: str
    certificate_key: str
    statics: ha.StaticPods
    statuses: dict[str, list[str]] = field(default_factory=dict)     # STATUS lines seen, in order
    killed: dict[str, Any] = field(default_factory=dict)             # what the kill saw
    converged_in: float = 0.0

    @property
    def cps(self) -> list[Host]:
        return [self.hosts[n] for n in ("cp1", *JOINERS)]


def _joiner_document(name: str, token: str, pin: str, key: str | None = None) -> str:
    """role control-plane with controlPlaneJoin; the embedded JoinConfiguration gives this
    node's API server address, the document the discovery (token, endpoint, pin) and the
    certificate key (kubeadm-certs) when given."""
    kubeadm = [{"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "JoinConfiguration",
                "controlPlane": {"localAPIEndpoint": {"advertiseAddress": IPS[name], "bindPort": 6443}}}]
    return s.kbootd_document(role="control-plane", controlPlaneJoin=True, token=token, endpoint=ENDPOINT,
                             caCertHashes=[pin], kubeadm=kubeadm, **({"certificateKey": key} if key else {}))


def _seed(material: dict[str, Any] | None, document: str) -> Seed:
    """kbootd.yaml (0600) and, pre-shared, every file `kbootd ca generate --control-plane` printed."""
    config = {"path": s.CONFIG_PATH, "owner": "root:root", "permissions": "0600", "content": document}
    return Seed(user_data={"write_files": [config, *(material["files"] if material else [])]})


@pytest.fixture(scope="module")
def cluster(e2e_hosts: Hosts) -> Iterator[HA]:
    material = json.loads(subprocess.run(
        [sys.executable, "-m", "kbootd", "ca", "generate", "--control-plane", "-o", "json"],
        capture_output=True, text=True, timeout=120, check=True, cwd=s.REPO).stdout)
    pin = material["caCertHash"]
    token = s.new_token()
    key = secrets.token_hex(32)
    init_doc = yaml.safe_load(s.control_plane_document(IPS["cp1"], token, pin))
    init_doc["certificateKey"] = key                    # init uploads the material with it
    seeds = {"cp1": _seed(material, yaml.safe_dump(init_doc, sort_keys=False)),
             "worker": s.seed(s.kbootd_document(role="worker", token=token, endpoint=ENDPOINT,
                                                caCertHashes=[pin]))}
    seeds[KEYED] = _seed(None, _joiner_document(KEYED, token, pin, key))
    seeds[PRESHARED] = _seed(material, _joiner_document(PRESHARED, token, pin))
    hosts = {}
    for name in ("cp1", *JOINERS, "worker"):            # all four at the same moment
        hosts[name] = e2e_hosts.launch(name, ip=IPS[name], seed=seeds[name], install=[s.install_node])
    for h in hosts.values():
        h.wait_ready(target=BOOTED)
    yield HA(hosts, material, token, key, ha.StaticPods(api=hosts["cp1"], hold_etcd={KILLED}))


def _kill_mid_join(c: HA) -> None:
    """cp3's learner is added, its manifest written, and kbootd waits to promote it (its etcd
    held back, the learner cannot catch up): SIGKILL kbootd there."""
    h = c.hosts[KILLED]
    if c.killed or not ha.exists(h, ha.ETCD_MANIFEST):
        return
    u = s.unit(h)
    if "promote" not in u["StatusText"]:
        return
    h.run(["kill", "-9", u["MainPID"]])
    c.killed = {"pid": u["MainPID"], "status": s.status_line(u), "members": ha.members(c.hosts["cp1"]),
                "phase": (s.json_file(h, STATUS_FILE) or {}).get("phase")}
    c.statics.hold_etcd.discard(KILLED)      # the kubelet starts it now; systemd restarts kbootd


def test_all_converge(cluster: HA) -> None:
    c = cluster
    start = time.monotonic()

    def converged() -> bool:
        c.statics.poll(c.cps)
        _kill_mid_join(c)
        done = True
        for name, h in c.hosts.items():
            u = s.unit(h)
            line = s.status_line(u)
            seen = c.statuses.setdefault(name, [])
            if line and (not seen or seen[-1] != line):
                seen.append(line)
            if u["ActiveState"] == "failed":
                raise AssertionError(f"{name}: kbootd failed: {u}\n{s.diagnose(h, lines=80)}")
            done = done and u["ActiveState"] == "active"
        return done and bool(c.killed)
    s.wait_for("all four nodes set up (kbootd active: READY=1)", converged, CONVERGE_TIMEOUT,
               *c.hosts.values(), units=("kbootd", ha.ETCD_UNIT, s.APISERVER_UNIT), interval=0.5)
    c.converged_in = time.monotonic() - start
    print(f"\n[e2e] HA converged in {c.converged_in:.0f}s; STATUS seen: {json.dumps(c.statuses, indent=1)}")
    print("[e2e] stand-ins: " + "; ".join(c.statics.log))
    for name, h in c.hosts.items():
        role, verb = ("worker", "joined") if name == "worker" else \
            ("control-plane", "initialised" if name == "cp1" else "joined")
        want = f"{role} {name} {verb} https://{ENDPOINT}"
        # READY=1's STATUS, soon replaced by the supervisor's (the same words plus health; the
        # polling may miss the first): the ready event in the journal has READY's words.
        line = s.status_line(s.wait_for(f"{name}: the supervisor's STATUS", lambda h=h: (
            u if "; kubelet active" in (u := s.unit(h))["StatusText"] else None), 60, h))
        assert line.startswith(want + "; kubelet active"), line
        if role == "control-plane":
            assert "apiserver ok" in line, line
        ready = [e for e in s.kbootd_entries(h) if e.get("KBOOTD_EVENT") == "ready"]
        assert [e["MESSAGE"] for e in ready] == [want], ready
        r = h.run(["kbootd", "status"], check=False)
        assert r.returncode == 0 and "status: done" in r.stdout and f"role: {role}" in r.stdout, r.stdout


def test_joining_control_planes_said_what_they_waited_for(cluster: HA) -> None:
    """Booted with cp1, the joiners waited (no deadline) for its API server, and cp3 for etcd
    (its learner was not in sync while its etcd was held back); then each ran join's
    control-plane phases once, in kubeadm's order."""
    c = cluster
    for n in JOINERS:
        seen = c.statuses.get(n, [])
        assert any(x.startswith(f"join: discovery: waiting for https://{ENDPOINT}") for x in seen), seen
        # Phases done (a resumed run logs the ones done before it as skipped), each once, in order.
        done = [e["KBOOTD_PHASE"] for e in s.kbootd_entries(c.hosts[n]) if e.get("KBOOTD_EVENT") == "done"]
        assert len(done) == len(set(done)), f"{n}: a phase ran to its end twice: {done}"
        assert [p for p in done if p in CONTROL_PLANE_PHASES] == list(CONTROL_PLANE_PHASES), done
    assert c.killed["status"].startswith("join: etcd: ") and "promote" in c.killed["status"], c.killed


def test_etcd_has_three_voting_members_one_per_node(cluster: HA) -> None:
    c = cluster
    if not c.converged_in:
        pytest.fail("the cluster did not converge (see test_all_converge)")
    expected = {n: [f"https://{IPS[n]}:2380"] for n in ("cp1", *JOINERS)}
    for h in c.cps:
        ms = ha.members(h)
        assert [m.get("name") for m in ms] == ["cp1", "cp2", "cp3"], ms
        assert not [m for m in ms if m.get("isLearner")], f"learners left: {ms}"
        assert {m["name"]: m["peerURLs"] for m in ms} == expected, ms
        assert ha.endpoint_health(h), f"{h.name}: etcd endpoint unhealthy"
    # Each member runs the manifest kbootd wrote: joiners with the existing cluster listed.
    for n in JOINERS:
        m = c.hosts[n].read_file(ha.ETCD_MANIFEST)
        assert "--initial-cluster-state=existing" in m, m
        assert f"cp1=https://{IPS['cp1']}:2380" in m, m
    assert "--initial-cluster-state=existing" not in c.hosts["cp1"].read_file(ha.ETCD_MANIFEST)


def test_killed_joiner_resumed_without_a_second_member(cluster: HA) -> None:
    c = cluster
    h = c.hosts[KILLED]
    assert c.killed, "cp3 was never killed"
    peer = f"https://{IPS[KILLED]}:2380"
    at_kill = [m for m in c.killed["members"] if peer in m.get("peerURLs", [])]
    assert len(at_kill) == 1 and at_kill[0].get("isLearner"), \
        f"at the kill, cp3 should be one learner not yet promoted: {c.killed}"
    now = [m for m in ha.members(c.hosts["cp1"]) if peer in m["peerURLs"]]
    assert [m["ID"] for m in now] == [at_kill[0]["ID"]], (at_kill, now)
    print(f"\n[e2e] cp3: kbootd SIGKILLed in phase {c.killed['phase']} (STATUS {c.killed['status']!r})")
    unit_log = [e.get("MESSAGE", "") for e in h.journal("kbootd") if e.get("SYSLOG_IDENTIFIER") == "systemd"]
    assert any("Main process exited, code=killed, status=9/KILL" in m for m in unit_log), unit_log
    assert s.unit(h)["NRestarts"] == "1", s.unit(h)
    invocation = h.show("kbootd", "InvocationID")["InvocationID"]
    second = [e["MESSAGE"] for e in s.kbootd_entries(h) if e.get("_SYSTEMD_INVOCATION_ID") == invocation]
    assert any(m.startswith("resuming join:") for m in second), second
    assert any("etcd already lists this node's member" in m for m in second), second
    assert not any("Announced new etcd member" in m for m in second), second


def test_nodes_and_shared_material(cluster: HA) -> None:
    c = cluster
    cp1 = c.hosts["cp1"]
    for n in ("cp1", *JOINERS):
        node = s.api_get(cp1, "Node", n)
        assert node is not None, f"Node {n} is not on the API server"
        assert "node-role.kubernetes.io/control-plane" in node["metadata"]["labels"], node
        assert any(t.get("key") == "node-role.kubernetes.io/control-plane"
                   for t in node["spec"].get("taints") or []), node
    worker = s.api_get(cp1, "Node", "worker")
    assert worker is not None and "node-role.kubernetes.io/control-plane" not in worker["metadata"]["labels"]
    shared = {f["path"]: f["content"] for f in c.material["files"]}
    for h in c.cps:                   # nothing shared was regenerated, on any control plane
        for path, content in shared.items():
            assert h.read_file(path) == content, f"{h.name}: {path} differs from the pre-shared one"
    assert c.hosts["worker"].read_file(CA_CRT) == shared[CA_CRT]
    # How they got there: cp2 downloaded kubeadm-certs (uploaded by cp1's init), cp3 checked its files.
    secret = s.api_get(cp1, "Secret", "kubeadm-certs", "kube-system")
    assert secret is not None and "ca.key" in secret["data"], secret and sorted(secret.get("data", {}))
    messages = {n: [e["MESSAGE"] for e in s.kbootd_entries(c.hosts[n])] for n in JOINERS}
    assert any('Downloading the certificates in Secret "kubeadm-certs"' in m for m in messages[KEYED]), messages[KEYED]
    assert any("The pre-shared certificates match the cluster's CA" in m for m in messages[PRESHARED]), \
        messages[PRESHARED]


def test_no_secret_in_any_journal(cluster: HA) -> None:
    c = cluster
    secret = c.token.split(".")[1]
    keys = [f["content"] for f in c.material["files"] if f["path"].endswith(".key")]
    cert_key = c.certificate_key
    # A distinctive run of each private key's base64 body.
    needles = [re.sub(r"\s", "", k.split("-----")[2])[40:100] for k in keys]
    for name, h in c.hosts.items():
        journal = s.journal_bytes(h)
        assert secret.encode() not in journal, f"{name}: the token secret is in the journal"
        assert cert_key.encode() not in journal, f"{name}: the certificate key is in the journal"
        for n in needles:
            assert n.encode() not in journal, f"{name}: a private key is in the journal"
        for path in (STATE_FILE, STATUS_FILE):
            text = h.run(["cat", path], check=False).stdout
            assert secret not in text and cert_key not in text, f"{name}: a secret is in {path}"
