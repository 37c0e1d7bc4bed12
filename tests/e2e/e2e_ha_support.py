"""Stand-ins and probes for the highly-available control-plane e2e (test_e2e_ha.py).

The kubelet's static-Pod duty on a control plane, played by the test (StaticPods.poll):

* etcd: when kbootd writes /etc/kubernetes/manifests/etcd.yaml, Debian's REAL etcd
  (/usr/bin/etcd, etcd-server in the e2e image) runs inside the host with exactly the
  manifest's command-line flags (the static Pod's hostPath mounts are the same paths
  inside the host), as a transient unit with Restart=always, as the kubelet restarts a
  static Pod's container;
* kube-apiserver: the in-repo test API server (tests/apiserver), as in test_e2e_daemon;
* the etcd mirror Pod: a kubelet announces each static Pod to the API server, and kubeadm
  (and kbootd's control-plane join) finds the etcd members through the mirror Pods'
  `kubeadm.kubernetes.io/etcd.advertise-client-urls` annotation. The test creates
  `etcd-<node>` in kube-system from the manifest once that host's etcd runs.

Probes that do not go through kbootd: etcdctl (Debian's etcd-client) for the member list.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from typing import Any

import yaml

from tests.e2e import e2e_daemon_support as s
from tests.e2e.nspawn import Host, HostError

ETCD_MANIFEST = "/etc/kubernetes/manifests/etcd.yaml"
ETCD_UNIT = "e2e-etcd"
PKI = "/etc/kubernetes/pki"
ETCDCTL = ["env", "ETCDCTL_API=3", "etcdctl", "--endpoints=https://127.0.0.1:2379",
           f"--cacert={PKI}/etcd/ca.crt", f"--cert={PKI}/etcd/healthcheck-client.crt",
           f"--key={PKI}/etcd/healthcheck-client.key", "--command-timeout=5s"]

# Runs inside a control plane: create an object through admin.conf (the kubelet's mirror Pod).
API_CREATE = """\
import json, sys
from kbootd import apiclient
from kbootd.hostio import Host
from kbootd.paths import Paths
class Ctx: pass
ctx = Ctx(); ctx.host = Host(Paths.rooted("/")); ctx.paths = ctx.host.paths
kc = apiclient.load_kubeconfig(ctx, "/etc/kubernetes/admin.conf")
c = apiclient.Client(apiclient.KubernetesTransport(kc), timeout=10)
try:
    c.create(json.loads(sys.stdin.read()))
    print("created")
except apiclient.APIError as e:
    if not e.already_exists:
        raise
    print("exists")
"""


def exists(h: Host, path: str) -> bool:
    return h.run(["test", "-s", path], check=False).returncode == 0


def active(h: Host, unit: str) -> bool:
    return h.run(["systemctl", "is-active", unit], check=False).stdout.strip() == "active"


def etcd_argv(manifest: str) -> list[str]:
    """The etcd static Pod's command, to run on the host: the manifest's flags unchanged."""
    doc = yaml.safe_load(manifest)
    (ctr,) = doc["spec"]["containers"]
    cmd = list(ctr["command"])
    if cmd[0] != "etcd":
        raise AssertionError(f"etcd manifest: unexpected command {cmd[:2]}")
    return ["/usr/bin/etcd", *cmd[1:]]


def mirror_pod(manifest: str, node: str) -> dict[str, Any]:
    """The mirror Pod a kubelet creates for a static Pod: `<name>-<node>`, the manifest's
    labels, annotations and spec, bound to the node."""
    doc = yaml.safe_load(manifest)
    meta = doc["metadata"]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{meta['name']}-{node}", "namespace": meta.get("namespace", "kube-system"),
                         "labels": meta.get("labels") or {},
                         "annotations": {**(meta.get("annotations") or {}),
                                         "kubernetes.io/config.source": "file"}},
            "spec": {**doc["spec"], "nodeName": node}}


@dataclass
class StaticPods:
    """The kubelet's static Pods on every control plane, one poll() at a time.

    api: the host whose admin.conf the mirror Pods are created through (the first control
    plane: its test API server holds the cluster's objects). hold_etcd: hosts whose etcd
    is not started even if its manifest exists (the kill test starts it itself)."""

    api: Host
    hold_etcd: set[str] = field(default_factory=set)
    etcd_from: dict[str, str] = field(default_factory=dict)       # host -> manifest text it runs
    apiserver: set[str] = field(default_factory=set)
    mirrored: set[str] = field(default_factory=set)
    log: list[str] = field(default_factory=list)

    def poll(self, hosts: list[Host]) -> None:
        for h in hosts:
            try:
                self._etcd(h)
                self._apiserver(h)
                self._mirror(h)
            except (HostError, subprocess.TimeoutExpired) as e:   # a host busy booting: next poll
                self.log.append(f"{h.name}: {e}")

    def start_etcd(self, h: Host) -> None:
        manifest = h.read_file(ETCD_MANIFEST)
        if h.name in self.etcd_from:           # the manifest changed: the kubelet restarts the Pod
            h.run(["systemctl", "stop", ETCD_UNIT], check=False)
            h.run(["systemctl", "reset-failed", ETCD_UNIT], check=False)
        h.run(["systemd-run", f"--unit={ETCD_UNIT}", "--property=Restart=always", "--property=RestartSec=1",
               "--property=SyslogIdentifier=e2e-etcd", *etcd_argv(manifest)])
        self.etcd_from[h.name] = manifest
        self.log.append(f"{h.name}: etcd started from {ETCD_MANIFEST}")

    def _etcd(self, h: Host) -> None:
        if h.name in self.hold_etcd or not exists(h, ETCD_MANIFEST):
            return
        if self.etcd_from.get(h.name) != h.read_file(ETCD_MANIFEST):
            self.start_etcd(h)

    def _apiserver(self, h: Host) -> None:
        if h.name in self.apiserver or not exists(h, s.APISERVER_MANIFEST):
            return
        h.run(["systemd-run", f"--unit={s.APISERVER_UNIT}", f"--setenv=PYTHONPATH={s.E2E_ROOT}",
               "--property=Restart=always", "--property=RestartSec=1",
               "--property=StandardOutput=journal", "--property=SyslogIdentifier=e2e-apiserver",
               "python3", f"{s.E2E_ROOT}/e2e_daemon_apiserver.py", "--cert-dir", PKI,
               "--bind", h.ip or "127.0.0.1", "--port", "6443"])
        self.apiserver.add(h.name)
        self.log.append(f"{h.name}: test API server started")

    def _mirror(self, h: Host) -> None:
        if h.name in self.mirrored or h.name not in self.etcd_from or self.api.name not in self.apiserver:
            return
        if not exists(self.api, "/etc/kubernetes/admin.conf"):
            return
        pod = mirror_pod(self.etcd_from[h.name], h.name)
        r = self.api.run(["python3", "-c", API_CREATE], input=json.dumps(pod), check=False, timeout=30)
        if r.returncode == 0:
            self.mirrored.add(h.name)
            self.log.append(f"{h.name}: mirror Pod {pod['metadata']['name']} {r.stdout.strip()}")


def members(h: Host) -> list[dict[str, Any]]:
    """`etcdctl member list -w json` on h (its local etcd), members sorted by name."""
    r = h.run([*ETCDCTL, "member", "list", "-w", "json"], check=False, timeout=30)
    if r.returncode != 0:
        raise AssertionError(f"{h.name}: etcdctl member list failed: {r.stdout}{r.stderr}")
    return sorted(json.loads(r.stdout).get("members") or [], key=lambda m: m.get("name", ""))


def endpoint_health(h: Host) -> bool:
    return h.run([*ETCDCTL, "endpoint", "health"], check=False, timeout=30).returncode == 0
