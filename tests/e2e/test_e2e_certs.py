"""The supervisor renews a control plane's certificates, on real systemd and journald (each
Debian release of image.SUITES): the cert-* journal records with their MESSAGE_IDs, STATUS,
`kbootd status`, and the files themselves.

One control plane, 10.213.0.20, seeded like test_e2e_daemon's with kbootd.yaml holding

    supervise: {renewBefore: 400d, caWarnBefore: 3700d}

Its leaf certificates and kubeconfigs are valid for a year (365 d) and its CAs for ten
(3650 d), so the supervisor's first pass, right after init, finds every leaf within the
renewal window and every CA within the warning window: it renews the eleven leaves, restarts
the static Pods one at a time, and warns about the three CAs (never renewing them).

Stand-ins: etcd (Debian's real etcd from the manifest's flags) and the kube-apiserver (the
test API server) run as transient units (e2e_ha_support.StaticPods); crictl is
e2e_crictl.py, which restarts those units when kbootd "stops their containers", and
reports the controller-manager and the scheduler as not running (no stand-in runs them).
The test API server keeps its objects in memory, so its restart empties it: only the
certificate pass is checked after it, not the cluster's objects.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml
from cryptography import x509

from kbootd.daemon.journal import MESSAGE_IDS
from kbootd.pki import inventory
from tests.e2e import e2e_daemon_support as s
from tests.e2e import e2e_ha_support as ha
from tests.e2e.hosts import Hosts
from tests.e2e.nspawn import Host

pytestmark = pytest.mark.e2e

IP = "10.213.0.20"
BOOTED = "multi-user.target"
PKI = "/etc/kubernetes/pki"
INTENT = "/var/lib/kbootd/cert-renewal.json"
CRICTL = "/usr/local/bin/crictl"
LEAF_FILES = {leaf.name: (f"{PKI}/{leaf.base}.crt" if leaf.base else f"/etc/kubernetes/{leaf.kubeconfig}")
              for leaf in inventory.LEAVES}
KEY_FILES = [f"{PKI}/{leaf.base}.key" for leaf in inventory.LEAVES if leaf.base]
CA_FILES = [f"{PKI}/{ca.base}.{ext}" for ca in inventory.CAS for ext in ("crt", "key")]
STANDINS = (ha.ETCD_UNIT, s.APISERVER_UNIT)


@dataclass
class Node:
    host: Host
    before: dict[str, str] = field(default_factory=dict)        # path -> content, after init's certs
    invocations: dict[str, str] = field(default_factory=dict)   # stand-in unit -> InvocationID before
    statuses: list[str] = field(default_factory=list)


def install_crictl(host: Host) -> None:
    p = host.upper / CRICTL.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text((s.HERE / "e2e_crictl.py").read_text())
    p.chmod(0o755)


def _snapshot(h: Host) -> dict[str, str]:
    return {p: h.read_file(p) for p in (*LEAF_FILES.values(), *KEY_FILES, *CA_FILES)}


@pytest.fixture(scope="module")
def node(e2e_hosts: Hosts) -> Iterator[Node]:
    doc = yaml.safe_load(s.control_plane_document(IP, s.new_token(), None))
    doc["supervise"] = {"renewBefore": "400d", "caWarnBefore": "3700d"}
    h = e2e_hosts.launch("certs-cp", ip=IP, seed=s.seed(yaml.safe_dump(doc, sort_keys=False)),
                         install=[s.install_node, install_crictl])
    h.wait_ready(target=BOOTED)
    n = Node(h)
    statics = ha.StaticPods(api=h)

    def ready() -> bool:
        statics.poll([h])
        u = s.unit(h)
        if u["ActiveState"] == "failed":
            raise AssertionError(f"kbootd failed: {u}\n{s.diagnose(h)}")
        line = s.status_line(u)
        if line and (not n.statuses or n.statuses[-1] != line):
            n.statuses.append(line)
        if not n.before and ha.exists(h, s.APISERVER_MANIFEST):     # init's certs and kubeconfigs written
            n.before = _snapshot(h)
        if len(statics.etcd_from) == 1 and h.name in statics.apiserver and not n.invocations:
            n.invocations = {u: h.show(u, "InvocationID")["InvocationID"] for u in STANDINS}
        return u["ActiveState"] == "active"
    s.wait_for("certs-cp: kbootd active", ready, 180, h, units=("kbootd", *STANDINS), interval=0.3)
    yield n


def _events(h: Host, event: str) -> list[dict[str, Any]]:
    return [e for e in s.kbootd_entries(h) if e.get("KBOOTD_EVENT") == event]


def test_the_first_pass_renews_every_leaf_and_restarts_the_static_pods(node: Node) -> None:
    h = node.host

    def restarted_all() -> list[dict[str, Any]] | None:
        u = s.unit(h)
        line = s.status_line(u)
        if line and node.statuses[-1] != line:
            node.statuses.append(line)
        done = _events(h, "cert-restart")
        return done if len(done) >= len(inventory.RESTART_ORDER) else None
    restarts = s.wait_for("certs-cp: cert-restart records for every static Pod", restarted_all, 120, h,
                          units=("kbootd", *STANDINS))
    print(f"\n[e2e] certs-cp STATUS seen: {node.statuses}")
    renewed = _events(h, "cert-renewed")
    assert sorted(e["KBOOTD_CERT"] for e in renewed) == sorted(LEAF_FILES), [e["MESSAGE"] for e in renewed]
    for e in renewed:
        assert e["MESSAGE_ID"] == MESSAGE_IDS["cert-renewed"] and e["PRIORITY"] == "6", e
        assert e["KBOOTD_PHASE"] == "certs" and e["KBOOTD_ROLE"] == "control-plane", e
        assert re.fullmatch(rf"renewed {re.escape(e['KBOOTD_CERT'])} \(.+\): it was valid until .+, now valid "
                            r"until \d{4}-\d\d-\d\d \d\d:\d\d UTC", e["MESSAGE"]), e["MESSAGE"]
    # One component at a time, etcd first; the two that run were restarted through crictl.
    assert [e["KBOOTD_COMPONENT"] for e in restarts] == list(inventory.RESTART_ORDER), restarts
    for e in restarts:
        assert e["MESSAGE_ID"] == MESSAGE_IDS["cert-restart"], e
    by = {e["KBOOTD_COMPONENT"]: e["MESSAGE"] for e in restarts}
    for comp in ("etcd", "kube-apiserver"):
        assert by[comp].startswith(f"{comp}: restarted (stopped container "), by
    for comp in ("kube-controller-manager", "kube-scheduler"):
        assert by[comp] == f"{comp}: not running; the kubelet starts it with the new files", by
    assert not _events(h, "cert-failed"), [e["MESSAGE"] for e in _events(h, "cert-failed")]
    # The restarts happened: each stand-in runs again, as a new invocation, after the renewal.
    for unit in STANDINS:
        now = h.show(unit, "ActiveState", "InvocationID")
        assert now["ActiveState"] == "active" and now["InvocationID"] != node.invocations[unit], (unit, now)
    assert h.run(["test", "-e", INTENT], check=False).returncode != 0, f"{INTENT} left behind"


def test_cas_are_warned_about_never_renewed(node: Node) -> None:
    h = node.host
    warnings = _events(h, "cert-expiring")
    for ca in ("ca", "etcd-ca", "front-proxy-ca"):
        mine = [e for e in warnings if e["MESSAGE"].startswith(f"the {ca} certificate authority ")]
        assert len(mine) == 1, [e["MESSAGE"] for e in warnings]
        assert mine[0]["MESSAGE_ID"] == MESSAGE_IDS["cert-expiring"] and mine[0]["PRIORITY"] == "4", mine
        assert "kbootd never renews a CA" in mine[0]["MESSAGE"], mine
    for path in CA_FILES:
        assert h.read_file(path) == node.before[path], f"{path} changed"


def test_renewed_files_keep_keys_names_and_issuer(node: Node) -> None:
    h = node.host
    assert node.before, "init's certificates were never seen"
    for path in KEY_FILES:
        assert h.read_file(path) == node.before[path], f"{path}: a key changed"
    for name, path in LEAF_FILES.items():
        old, new = _cert(node.before[path], path), _cert(h.read_file(path), path)
        assert new.serial_number != old.serial_number, f"{name} was not renewed"
        assert new.not_valid_after_utc > old.not_valid_after_utc, name
        assert new.subject == old.subject and new.issuer == old.issuer, name
        assert new.public_key().public_numbers() == old.public_key().public_numbers(), name
        assert _sans(new) == _sans(old), name
        assert h.read_file(path) != node.before[path], f"{path} unchanged on disk"


def test_status_shows_the_nearest_expiry(node: Node) -> None:
    h = node.host
    line = s.status_line(s.unit(h))
    assert re.search(r"; certs: next expiry \S+ in \d+d$", line), line
    assert line.startswith(f"control-plane certs-cp initialised https://{IP}:6443; kubelet active"), line
    # While it worked, STATUS said so (a restart of etcd or the API server takes a second or more).
    assert any(x.startswith("certs: restarting ") for x in node.statuses), node.statuses
    st = s.json_file(h, "/run/kbootd/status.json") or {}
    certs = st.get("certs") or {}
    assert certs.get("nearest") in LEAF_FILES and re.fullmatch(r"\d+d", certs.get("residual", "")), st
    assert sorted(certs.get("warnings") or []) == ["ca:ca", "ca:etcd-ca", "ca:front-proxy-ca"], certs
    r = h.run(["kbootd", "status"], check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"^certificates: nearest expiry \S+ on \d{4}-\d\d-\d\d \d\d:\d\d UTC \(\d+d\)", r.stdout, re.M), \
        r.stdout


def _cert(pem_or_kubeconfig: str, path: str) -> x509.Certificate:
    if path.endswith(".conf"):
        doc = yaml.safe_load(pem_or_kubeconfig)
        data = base64.b64decode(doc["users"][0]["user"]["client-certificate-data"])
        return x509.load_pem_x509_certificate(data)
    return x509.load_pem_x509_certificate(pem_or_kubeconfig.encode())


def _sans(c: x509.Certificate) -> set[str]:
    try:
        ext = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(v) for v in ext}

