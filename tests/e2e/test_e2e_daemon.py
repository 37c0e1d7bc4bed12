"""The daemon end to end on real systemd and cloud-init (Debian 12: 252 and 22.4; Debian 13:
257 and 25.1; every test runs on each): a freshly booted machine becomes a control plane or
a worker with no human step.

Hosts (systemd-nspawn, private bridge 10.213.0.0/24), each seeded with NoCloud
user-data whose write_files puts /etc/kbootd/kbootd.yaml (0600) in place, as in
cloud-init/examples/:

* worker  10.213.0.11  role worker, the shared token, the CA pin made up front with
                       `kbootd ca generate` (never unsafeSkipCAVerification); boots first.
* cp      10.213.0.10  role control-plane, the same token, and the pre-made CA's ca.crt and
                       ca.key by write_files: the worker has its pin before anything runs.
* crash   10.213.0.12  a second, unrelated control plane (CA made by init) whose kbootd is
                       SIGKILLed right after its certs phase.
* no-role, bad-token   invalid seeds (loopback only).

Stand-ins (e2e_daemon_support.py): the kubelet (/usr/bin/kubelet: healthz, Node
registration, the TLS bootstrap of tests/kubelet_double.py), containerd (a CRI socket and
a Type=notify unit), iptables and modprobe; the kube-apiserver static Pod is the test API
server (tests/apiserver), started by the test inside a control plane once kbootd wrote
its manifest. Nothing of kbootd's is faked: its unit file, cloud-init, sd_notify,
journald, Restart= and RestartPreventExitStatus= are the real ones. No preflight error is
ignored.

The tests run in file order and share the hosts (module scope); each waits with a
bound and fails with `systemctl status` and the journal tail of the hosts involved.
Failed runs keep every host's journal and console log (see the [e2e] lines).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from kbootd.daemon.journal import MESSAGE_IDS
from kbootd.join.controlplane import skip_unless_control_plane
from kbootd.phases import INIT, JOIN
from tests.e2e import e2e_daemon_support as s
from tests.e2e.hosts import Hosts
from tests.e2e.nspawn import Host

pytestmark = pytest.mark.e2e

CP_IP, WORKER_IP, CRASH_IP = "10.213.0.10", "10.213.0.11", "10.213.0.12"
ENDPOINT = f"{CP_IP}:6443"
BOOTED = "multi-user.target"      # see test_worker_waits_without_blocking_boot
STATE_FILE, STATUS_FILE = "/var/lib/kbootd/state.json", "/run/kbootd/status.json"
CA_CRT = "/etc/kubernetes/pki/ca.crt"
WAITING = re.compile(rf"^join: discovery: waiting for https://{re.escape(ENDPOINT)}\b.*, attempt (\d+)$")
RESTART_SEC = 5                   # units/kbootd.service
JOIN_MISSING = "join's phases are not registered in kbootd/phases.py (JOIN is empty)"


@dataclass
class Cluster:
    hosts: Hosts
    token: str
    ca: dict[str, str]
    worker: Host | None = None
    cp: Host | None = None
    crash: Host | None = None
    bad: dict[str, Host] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)     # must never show up anywhere


@pytest.fixture(scope="module")
def cluster(e2e_hosts: Hosts) -> Iterator[Cluster]:
    """Boot the worker and the two invalid seeds in parallel (the worker first of all nodes)."""
    ca = s.generate_ca()
    token = s.new_token()
    c = Cluster(e2e_hosts, token, ca, secrets=[token.split(".")[1]])
    launched = []
    if JOIN:
        worker_doc = s.kbootd_document(role="worker", token=token, endpoint=ENDPOINT,
                                       caCertHashes=[ca["caCertHash"]])
        c.worker = e2e_hosts.launch("worker", ip=WORKER_IP, seed=s.seed(worker_doc),
                                    install=[s.install_node])
        launched.append(c.worker)
    no_role_token = s.new_token()
    bad_token = s.new_token()[:-1].upper() + "X"          # right shape, wrong alphabet
    c.secrets += [no_role_token.split(".")[1], bad_token.split(".")[1]]
    no_role = s.kbootd_document(token=no_role_token, endpoint=ENDPOINT, caCertHashes=[ca["caCertHash"]])
    malformed = s.kbootd_document(role="worker", token=bad_token, endpoint=ENDPOINT,
                                  caCertHashes=[ca["caCertHash"]])
    for name, doc in (("no-role", no_role), ("bad-token", malformed)):
        c.bad[name] = e2e_hosts.launch(name, seed=s.seed(doc), install=[s.install_node])
        launched.append(c.bad[name])
    for h in launched:
        h.wait_ready(target=BOOTED)
    yield c


def _secret_free(h: Host, secrets: list[str]) -> None:
    journal = s.journal_bytes(h)
    assert b"KBOOTD_EVENT=" in journal, f"{h.name}: no kbootd records in the journal"
    for secret in secrets:
        assert secret.encode() not in journal, f"{h.name}: a token secret is in the journal"


def _events(entries: list[dict[str, Any]], event: str, phase: str | None = None) -> list[dict[str, Any]]:
    return [e for e in entries if e.get("KBOOTD_EVENT") == event
            and (phase is None or e.get("KBOOTD_PHASE") == phase)]


def _sha(h: Host, path: str) -> str:
    return hashlib.sha256(h.run(["cat", path]).stdout.encode()).hexdigest()


# ------------------------------------------------------------------------------ 1. worker

def test_worker_waits_without_blocking_boot(cluster: Cluster) -> None:
    if cluster.worker is None:
        pytest.skip(JOIN_MISSING)
    w = cluster.worker

    def waiting() -> dict[str, str] | None:
        u = s.unit(w)
        m = WAITING.match(s.status_line(u))
        return u if u["ActiveState"] == "activating" and m and int(m.group(1)) >= 2 else None
    u = s.wait_for("worker: STATUS 'join: discovery: waiting for ..., attempt N' (N >= 2)", waiting, 60, w)
    assert u["SubState"] == "start" and u["NRestarts"] == "0", u

    retries = s.wait_for("worker: discovery retry records in the journal",
                         lambda: _events(s.kbootd_entries(w), "retry", "discovery"), 30, w)
    r = retries[-1]
    assert r["KBOOTD_ROLE"] == "worker" and r["SYSLOG_IDENTIFIER"] == "kbootd", r
    assert r["MESSAGE_ID"] == MESSAGE_IDS["retry"] and r["PRIORITY"] == "5", r
    assert int(r["KBOOTD_ATTEMPT"]) >= 1 and "KBOOTD_DURATION_MS" in r, r
    assert f"waiting for https://{ENDPOINT}" in r["MESSAGE"], r["MESSAGE"]
    # The settings came from cloud-init's write_files, and the file is root-only.
    inputs = _events(s.kbootd_entries(w), "input", "inputs")
    assert any(s.CONFIG_PATH in e["MESSAGE"] and "token" in e["MESSAGE"] for e in inputs), inputs
    assert w.run(["stat", "-c", "%a %U", s.CONFIG_PATH]).stdout.split() == ["600", "root"]

    # Boot is not held: multi-user.target and graphical.target are reached and cloud-init's
    # last stage is done, while kbootd is still activating. (systemd counts the system as
    # "starting" while any start job is queued, and kbootd's stays queued until READY=1:
    # `systemctl is-system-running --wait` waits for the join.)
    assert w.run(["systemctl", "is-active", "multi-user.target", "graphical.target"]).stdout.split() == \
        ["active", "active"]
    final = w.show("cloud-final.service", "ActiveState", "Result")
    assert final == {"ActiveState": "active", "Result": "success"}, final
    assert w.wait_cloud_init(timeout=30) == "done"
    jobs = w.run(["systemctl", "list-jobs", "--no-legend", "--no-pager"]).stdout.split("\n")
    assert [j.split()[1] for j in jobs if j.strip()] == ["kbootd.service"], jobs
    assert w.run(["systemctl", "is-system-running"], check=False).stdout.strip() == "starting"

    st = w.run(["kbootd", "status", "-o", "json"], check=False)
    assert st.returncode == 2, st.stdout + st.stderr
    data = json.loads(st.stdout)
    assert data["state"] == "waiting" and data["phase"] == "discovery" and data["role"] == "worker", data


# -------------------------------------------------------------------------- 6. bad seeds

@pytest.mark.parametrize("name,status", [
    ("no-role", "failed: no role for this node"),
    ("bad-token", "failed: /etc/kbootd/kbootd.yaml:"),
])
def test_bad_seed_fails_once_with_a_clear_status(cluster: Cluster, name: str, status: str) -> None:
    h = cluster.bad[name]

    def failed() -> dict[str, str] | None:
        u = s.unit(h)
        return u if u["ActiveState"] == "failed" else None
    u = s.wait_for(f"{name}: kbootd failed", failed, 60, h)
    assert u["Result"] == "exit-code" and u["ExecMainStatus"] == "3", u
    assert s.status_line(u).startswith(status), u
    if name == "bad-token":
        assert "is not of the form [a-z0-9]{6}.[a-z0-9]{16}" in u["StatusText"], u
    # No restart loop: RestartPreventExitStatus=3 4. systemd decides at exit: a restart to come
    # shows as SubState auto-restart (ActiveState activating); failed/failed means none is queued,
    # so there is nothing to wait RestartSec for.
    again = h.show("kbootd", "ActiveState", "SubState", "NRestarts")
    assert again == {"ActiveState": "failed", "SubState": "failed", "NRestarts": "0"}, again
    r = h.run(["kbootd", "status"], check=False)
    assert r.returncode == 1 and "will retry: no" in r.stdout, r.stdout
    failures = _events(s.kbootd_entries(h), "failed")
    assert failures and failures[-1]["MESSAGE_ID"] == MESSAGE_IDS["failed"], failures
    assert failures[-1]["PRIORITY"] == "3" and failures[-1]["KBOOTD_EXIT_CODE"] == "3", failures[-1]


# ------------------------------------------------------------- 5. SIGKILL in the middle

def test_kill_during_init_resumes_without_new_certificates(cluster: Cluster) -> None:
    """A control plane whose init generates its CA; kbootd is SIGKILLed as soon as the
    certs phase is recorded: systemd restarts it and it resumes with the same PKI."""
    token = s.new_token()
    cluster.secrets.append(token.split(".")[1])
    doc = s.control_plane_document(CRASH_IP, token, pin=None)
    h = cluster.crash = cluster.hosts.launch("crash", ip=CRASH_IP, seed=s.seed(doc), install=[s.install_node])
    h.wait_booted(target=BOOTED)

    def certs_done() -> dict[str, Any] | None:
        st = s.json_file(h, STATE_FILE)
        return st if st and "certs" in st.get("phases_done", []) else None
    before = s.wait_for("crash: the certs phase recorded in state.json", certs_done, 90, h, interval=0.05)
    main_pid = s.unit(h)["MainPID"]
    h.run(["kill", "-9", main_pid])
    killed_in = (s.json_file(h, STATUS_FILE) or {}).get("phase")
    assert not before.get("status") == "done", before
    pki = h.run(["sh", "-c", "cd /etc/kubernetes/pki && sha256sum $(find . -type f | sort)"]).stdout

    def restarted() -> dict[str, str] | None:
        u = s.unit(h)
        return u if u["NRestarts"] == "1" and u["MainPID"] not in ("0", main_pid) else None
    s.wait_for("crash: systemd restarted kbootd after SIGKILL", restarted, RESTART_SEC + 30, h)
    invocation = h.show("kbootd", "InvocationID")["InvocationID"]
    s.start_apiserver(h)
    u = s.wait_active(h, 120)
    assert u["SubState"] == "running" and u["NRestarts"] == "1", u
    assert s.status_line(u).startswith(f"control-plane crash initialised https://{CRASH_IP}:6443"), u

    print(f"\n[e2e] crash: kbootd SIGKILLed in phase {killed_in}, after {before['phases_done']}")
    unit_log = [e.get("MESSAGE", "") for e in h.journal("kbootd") if e.get("SYSLOG_IDENTIFIER") == "systemd"]
    assert any("Main process exited, code=killed, status=9/KILL" in m for m in unit_log), unit_log
    assert any("Scheduled restart job, restart counter is at 1" in m for m in unit_log), unit_log
    second = [e for e in s.kbootd_entries(h) if e.get("_SYSTEMD_INVOCATION_ID") == invocation]
    assert second, "no journal records of the restarted kbootd"
    assert any(e["MESSAGE"].startswith("resuming init:") for e in second), [e["MESSAGE"] for e in second]
    assert not _events(second, "start", "certs") and not _events(second, "start", "preflight"), \
        f"certs or preflight ran again after the restart (killed in phase {killed_in})"
    assert "done before kbootd restarted" in _events(second, "skipped", "certs")[0]["MESSAGE"]
    after = h.run(["sh", "-c", "cd /etc/kubernetes/pki && sha256sum $(find . -type f | sort)"]).stdout
    assert after == pki, f"the PKI changed after the restart (killed in phase {killed_in})"
    state = s.json_file(h, STATE_FILE)
    assert state and state["status"] == "done" and state["failures"] == 0, state


# ------------------------------------------------------------------- 2. control plane

def test_control_plane_initialises(cluster: Cluster) -> None:
    doc = s.control_plane_document(CP_IP, cluster.token, cluster.ca["caCertHash"])
    cp = cluster.cp = cluster.hosts.launch("cp", ip=CP_IP, seed=s.seed(doc, cluster.ca),
                                           install=[s.install_node])
    cp.wait_ready(target=BOOTED)
    # init runs up to the point where it needs the API server, and waits there.
    s.wait_for("cp: STATUS 'init: wait-control-plane'",
               lambda: s.unit(cp)["StatusText"].startswith("init: wait-control-plane"), 90, cp)
    assert s.unit(cp)["ActiveState"] == "activating"
    s.start_apiserver(cp)
    u = s.wait_active(cp, 120)
    assert u["SubState"] == "running" and u["NRestarts"] == "0", u
    assert s.status_line(u).startswith(f"control-plane cp initialised https://{ENDPOINT}"), u

    r = cp.run(["kbootd", "status"], check=False)
    assert r.returncode == 0 and "status: done" in r.stdout and "role: control-plane" in r.stdout, r.stdout
    # The pre-made CA from user-data is the cluster's CA: the worker's pin holds.
    assert cp.read_file(CA_CRT) == cluster.ca["caCert"]
    entries = s.kbootd_entries(cp)
    assert any("Using existing ca certificate authority" in e["MESSAGE"] for e in entries)
    for phase in (p.name for p in INIT):
        done = _events(entries, "done", phase) + _events(entries, "skipped", phase)
        assert len(done) == 1, f"phase {phase}: {[e['MESSAGE'] for e in done]}"
    ready = _events(entries, "ready")
    assert len(ready) == 1 and ready[0]["MESSAGE_ID"] == MESSAGE_IDS["ready"], ready
    assert {e["KBOOTD_ROLE"] for e in entries if e.get("KBOOTD_EVENT") != "input"} == {"control-plane"}
    node = s.api_get(cp, "Node", "cp")
    assert node is not None and "node-role.kubernetes.io/control-plane" in node["metadata"]["labels"], node


# ------------------------------------------------------------------------------ 3. join

def test_worker_joins(cluster: Cluster) -> None:
    if cluster.worker is None:
        pytest.skip(JOIN_MISSING)
    w, cp = cluster.worker, cluster.cp
    assert cp is not None, "the control plane did not come up (see test_control_plane_initialises)"
    # What a provisioning script would do: wait for kbootd to say the node is set up.
    r = w.run(["kbootd", "status", "--wait", "--timeout", "2m"], check=False, timeout=150)
    assert r.returncode == 0 and "status: done" in r.stdout, r.stdout + r.stderr + s.diagnose(w)
    u = s.wait_active(w, 30, cp)
    assert u["SubState"] == "running" and u["NRestarts"] == "0", u
    assert s.status_line(u).startswith(f"worker worker joined https://{ENDPOINT}"), u
    r = w.run(["kbootd", "status"], check=False)
    assert r.returncode == 0 and "status: done" in r.stdout and "role: worker" in r.stdout, r.stdout
    # The kubelet (stand-in) did the TLS bootstrap: its own credential, no bootstrap token left.
    assert w.run(["test", "-s", "/var/lib/kubelet/pki/kubelet-client-current.pem"], check=False).returncode == 0
    assert w.run(["test", "-e", "/etc/kubernetes/bootstrap-kubelet.conf"], check=False).returncode != 0
    assert w.read_file(CA_CRT) == cluster.ca["caCert"]
    node = s.api_get(cp, "Node", "worker")
    assert node is not None, "the worker's Node is not on the API server"
    assert node["metadata"]["annotations"].get("kubeadm.alpha.kubernetes.io/cri-socket"), node
    entries = s.kbootd_entries(w)
    for p in JOIN:
        if p.skip_if is skip_unless_control_plane:  # join --control-plane's phases: skipped on a worker
            assert len(_events(entries, "skipped", p.name)) == 1, f"join phase {p.name} was not skipped once"
            assert not _events(entries, "done", p.name), f"a worker ran {p.name}"
            continue
        assert len(_events(entries, "done", p.name)) == 1, f"join phase {p.name} did not finish once"
    # kubelet-start applies the cri settings again (the cluster's): those records are
    # kubelet-start's, timed from its start, the step named; none is filed under cri.
    cri_done = _events(entries, "done", "cri")[0]
    after_cri = entries[entries.index(cri_done) + 1:]
    assert not [e for e in after_cri if e.get("KBOOTD_PHASE") == "cri"], "records filed under the finished cri"
    steps = [e for e in after_cri if e.get("KBOOTD_STEP") == "cri"]
    assert steps and all(e["KBOOTD_PHASE"] == "kubelet-start" for e in steps), steps
    took = int(_events(entries, "done", "kubelet-start")[0]["KBOOTD_DURATION_MS"])
    assert all(int(e["KBOOTD_DURATION_MS"]) <= took for e in steps), (took, steps)


# ------------------------------------------------------------------ 7. no secret leaks

def test_token_secrets_never_leave_kbootd(cluster: Cluster) -> None:
    hosts = [h for h in (cluster.cp, cluster.worker, cluster.crash, *cluster.bad.values()) if h]
    for h in hosts:
        _secret_free(h, cluster.secrets)
        for path in (STATUS_FILE, STATE_FILE):
            text = h.run(["cat", path], check=False).stdout
            assert not any(x in text for x in cluster.secrets), f"{h.name}: a token secret is in {path}"
        assert h.run(["stat", "-c", "%a", STATE_FILE], check=False).stdout.strip() in ("600", "")


# ---------------------------------------------------------------------------- 4. reboot

def test_reboot_does_not_run_init_or_join_again(cluster: Cluster) -> None:
    nodes = [h for h in (cluster.cp, cluster.worker) if h]
    assert cluster.cp is not None, "the control plane did not come up"
    ca_before = cluster.cp.read_file(CA_CRT)
    for h in nodes:                      # power off and boot again, in parallel
        h.stop()
        h.launch()
    for h in nodes:
        h.wait_ready(target=BOOTED)
    for h in nodes:
        assert h.run(["cloud-init", "query", "instance_id"]).stdout.strip() == h.instance_id
        u = s.wait_active(h, 60)
        role = "control-plane" if h is cluster.cp else "worker"
        verb = "initialised" if h is cluster.cp else "joined"
        assert s.status_line(u).startswith(f"{role} {h.name} {verb} https://{ENDPOINT}"), u
        this_boot = [e for e in h.journal("kbootd", "-b", "0") if e.get("SYSLOG_IDENTIFIER") == "kbootd"]
        assert this_boot, f"{h.name}: no kbootd records in this boot's journal"
        started = _events(this_boot, "start")
        assert not started, f"{h.name}: phases ran again: {[e['MESSAGE'] for e in started]}"
        ready = _events(this_boot, "ready")
        assert ready and "set up earlier" in ready[0]["MESSAGE"], [e["MESSAGE"] for e in this_boot]
        state = s.json_file(h, STATE_FILE)
        assert state and state["status"] == "done" and state["role"] == role, state
        r = h.run(["kbootd", "status"], check=False)
        assert r.returncode == 0 and "status: done" in r.stdout, r.stdout
    assert cluster.cp.read_file(CA_CRT) == ca_before
    for h in nodes:
        _secret_free(h, cluster.secrets)


# -------------------------------------------------------------- 8. certificate renewal

CRICTL_LOG = "/run/e2e-crictl.log"
# A crictl stand-in: records its arguments; no container runs here (the API server is the
# test server, not a static Pod), so `ps` lists none and nothing is stopped.
CRICTL = f"""#!/bin/sh
echo "$*" >> {CRICTL_LOG}
exit 0
"""
RENEW_DROPIN = "/etc/kbootd/kbootd.d/90-e2e-renew.yaml"


def test_control_plane_renews_certificates_and_reports_them(cluster: Cluster) -> None:
    """The supervisor renews certificates inside its window (set here to ten years, so every
    leaf of the fresh cluster is due), restarts the static Pods in order, and says so in the
    journal, STATUS and `kbootd status`; CA and keys stay. `kbootd certs` works on the node."""
    cp = cluster.cp
    assert cp is not None, "the control plane did not come up"
    r = cp.run(["kbootd", "certs", "check-expiration"], check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = r.stdout.splitlines()
    assert rows[0].split()[0] == "CERTIFICATE" and len(rows) == 17, r.stdout
    assert all(re.search(r"UTC   36[45]d ", ln) for ln in rows[1:12]), r.stdout
    before = {p: _sha(cp, p) for p in ("/etc/kubernetes/pki/apiserver.crt", "/etc/kubernetes/pki/apiserver.key",
                                       CA_CRT, "/etc/kubernetes/pki/ca.key", "/etc/kubernetes/admin.conf")}
    cp.run(["sh", "-c", "cat > /usr/local/bin/crictl && chmod 0755 /usr/local/bin/crictl"], input=CRICTL)
    cp.run(["mkdir", "-p", RENEW_DROPIN.rsplit("/", 1)[0]])
    cp.run(["sh", "-c", f"umask 077 && cat > {RENEW_DROPIN}"],
           input="apiVersion: kbootd.io/v1alpha1\nkind: KbootdConfiguration\nsupervise:\n  renewBefore: 3650d\n")
    invocation_before = cp.show("kbootd", "InvocationID")["InvocationID"]
    cp.run(["systemctl", "restart", "kbootd"])
    s.wait_active(cp, 60)
    invocation = cp.show("kbootd", "InvocationID")["InvocationID"]
    assert invocation != invocation_before

    def restarts_done() -> list[dict[str, Any]] | None:
        mine = [e for e in s.kbootd_entries(cp) if e.get("_SYSTEMD_INVOCATION_ID") == invocation]
        done = _events(mine, "cert-restart")
        return mine if len(done) >= 4 else None
    mine = s.wait_for("cp: the supervisor renewed certificates and restarted the static Pods", restarts_done, 60, cp)
    renewed = _events(mine, "cert-renewed")
    assert [e["KBOOTD_CERT"] for e in renewed] == [
        "admin.conf", "apiserver", "apiserver-etcd-client", "apiserver-kubelet-client", "controller-manager.conf",
        "etcd-healthcheck-client", "etcd-peer", "etcd-server", "front-proxy-client", "scheduler.conf",
        "super-admin.conf"], [e["MESSAGE"] for e in mine]
    assert all(e["MESSAGE_ID"] == MESSAGE_IDS["cert-renewed"] and e["KBOOTD_PHASE"] == "certs" for e in renewed)
    restarts = _events(mine, "cert-restart")
    assert [e["KBOOTD_COMPONENT"] for e in restarts] == ["etcd", "kube-apiserver", "kube-controller-manager",
                                                          "kube-scheduler"]
    assert all(e["MESSAGE_ID"] == MESSAGE_IDS["cert-restart"] for e in restarts)
    assert not _events(mine, "cert-failed"), [e["MESSAGE"] for e in _events(mine, "cert-failed")]
    ps = cp.read_file(CRICTL_LOG).splitlines()
    assert [ln.split("--name ")[1].split()[0] for ln in ps if ln.startswith("ps ")] == \
        ["^etcd$", "^kube-apiserver$", "^kube-controller-manager$", "^kube-scheduler$"], ps

    after = {p: _sha(cp, p) for p in before}
    for same in ("/etc/kubernetes/pki/apiserver.key", CA_CRT, "/etc/kubernetes/pki/ca.key"):
        assert after[same] == before[same], f"{same} changed"
    for changed in ("/etc/kubernetes/pki/apiserver.crt", "/etc/kubernetes/admin.conf"):
        assert after[changed] != before[changed], f"{changed} was not renewed"
    u = s.wait_for("cp: STATUS shows the nearest expiry",
                   lambda: (lambda u: u if "; certs: next expiry " in s.status_line(u) else None)(s.unit(cp)), 40, cp)
    assert re.search(r"; certs: next expiry \S+ in 36[45]d$", s.status_line(u)), u
    r = cp.run(["kbootd", "status"], check=False)
    assert r.returncode == 0 and re.search(r"^certificates: nearest expiry \S+ on .* UTC \(36[45]d\)$", r.stdout,
                                           re.M), r.stdout
    assert not cp.run(["test", "-e", "/var/lib/kbootd/cert-renewal.json"], check=False).returncode == 0
    # Back to the default window (a pass an hour later would renew again under ten years).
    cp.run(["rm", "-f", RENEW_DROPIN])
    cp.run(["systemctl", "restart", "kbootd"])
    s.wait_active(cp, 60)
