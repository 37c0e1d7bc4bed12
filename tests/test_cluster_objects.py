"""init's cluster objects against a real kubeadm v1.32 dry-run, field for field.

/work/shared/fixtures/kubeadm/init-basic/dryrun-stdout.txt is what `kubeadm init --dry-run`
printed for config.yaml there. We run our phases in dry-run on the same configuration,
parse the objects we print the same way, and compare. The only differences allowed are
listed in `normalize` and EXPLAINED below, each with its reason.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from kbootd import kyaml
from kbootd.cluster import addons, bootstraptoken, markcp, uploadconfig, waitcp
from kbootd.config.load import load_file
from kbootd.config.model import Networking, Taint
from kbootd.context import Seams, make_context
from kbootd.report import RecordingReporter
from kbootd.token import BootstrapToken
from tests.shared import INIT_BASIC

FIXTURES = INIT_BASIC
SECRET = "0123456789abcdef"  # the fixture's token secret (test data)
NOW = datetime(2026, 11, 24, 19, 1, 36, tzinfo=timezone.utc)  # 24h before the fixture's expiration

pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason="shared kubeadm fixtures not present")

EXPLAINED = {
    "creationTimestamp": "Go prints the zero metav1.Time as null; it is server-set, we never send it",
    "status": "server-owned; kubeadm's typed objects print their zero status, we never send one",
    "kube-dns resourceVersion": 'kubeadm\'s Service template carries resourceVersion "0"; a create must not '
                                "carry a version and updates use the live one",
    "cluster-admins": "kubeadm creates kubeadm:cluster-admins only outside dry-run "
                      "(EnsureAdminClusterRoleBinding); we show every object we would create",
    "nodes": "kubeadm prints its stand-in Node on GET and PATCH; we print the patch we would send",
    "token-secret": "never printed: the dry-run shows the Secret's token-secret redacted",
}


def attached_objects(text: str) -> list[dict]:
    """Every object printed after "[dryrun] Attached object:" (kubeadm's and ours)."""
    lines, out, i = text.split("\n"), [], 0
    while i < len(lines):
        if lines[i] == "[dryrun] Attached object:":
            j = i + 1
            while j < len(lines) and lines[j] and not lines[j].startswith("["):
                j += 1
            out.append(yaml.safe_load("\n".join(lines[i + 1:j])))
            i = j
        else:
            i += 1
    return out


def normalize(obj: dict) -> dict:
    o = copy.deepcopy(obj)
    o.get("metadata", {}).pop("creationTimestamp", None)
    o.pop("status", None)
    for tpl in [o.get("spec", {}).get("template", {})]:
        tpl.get("metadata", {}).pop("creationTimestamp", None)
    if o["kind"] == "Service":
        o["metadata"].pop("resourceVersion", None)
    return o


def key(o: dict) -> tuple[str, str, str]:
    return o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]


@pytest.fixture(scope="module")
def kubeadm_objects() -> list[dict]:
    objs = attached_objects((FIXTURES / "dryrun-stdout.txt").read_text())
    return [normalize(o) for o in objs if o["kind"] != "Node"]


@pytest.fixture(scope="module")
def cfg():
    return load_file(str(FIXTURES / "config.yaml"), "init", lambda m: None)


def seeded_root(root: Path, kubeadm_objects: list[dict]) -> None:
    """The files earlier phases would have written: the CA (from kubeadm's cluster-info) and config.yaml."""
    ci = next(o for o in kubeadm_objects if o["metadata"]["name"] == "cluster-info")
    ca = yaml.safe_load(ci["data"]["kubeconfig"])["clusters"][0]["cluster"]["certificate-authority-data"]
    (root / "etc/kubernetes/pki").mkdir(parents=True)
    (root / "etc/kubernetes/pki/ca.crt").write_bytes(base64.b64decode(ca))
    kubelet = next(o for o in kubeadm_objects if o["metadata"]["name"] == "kubelet-config")
    (root / "var/lib/kubelet").mkdir(parents=True)
    (root / "var/lib/kubelet/config.yaml").write_text(kubelet["data"]["kubelet"])


PHASES = (waitcp.wait_control_plane, uploadconfig.upload_all, markcp.mark_control_plane,
          bootstraptoken.bootstrap_token, addons.coredns, addons.kube_proxy)


def dry_run(root: Path, cfg) -> tuple[str, RecordingReporter]:
    rep = RecordingReporter()
    ctx = make_context(root=str(root), reporter=rep, init=cfg, dry_run=True, seams=Seams(now=lambda: NOW))
    for phase in PHASES:
        phase(ctx)
    return rep.text(), rep


@pytest.fixture(scope="module")
def ours(tmp_path_factory, kubeadm_objects, cfg) -> tuple[list[dict], str]:
    root = tmp_path_factory.mktemp("root")
    seeded_root(root, kubeadm_objects)
    text, _ = dry_run(root, cfg)
    objs = [normalize(o) for o in attached_objects(text)]
    return [o for o in objs if o["metadata"]["name"] != "kubeadm:cluster-admins"], text


def test_same_objects_in_kubeadms_order(ours, kubeadm_objects):
    assert [key(o) for o in ours[0]] == [key(o) for o in kubeadm_objects]


def _ids(objs: list[dict]) -> list[str]:
    return ["/".join(x for x in key(o) if x) for o in objs]


@pytest.mark.parametrize("index", range(27))
def test_object_matches_kubeadm_field_for_field(ours, kubeadm_objects, index):
    assert len(kubeadm_objects) == 27
    theirs = kubeadm_objects[index]
    mine = next(o for o in ours[0] if key(o) == key(theirs))
    if theirs["kind"] == "Secret":
        assert mine["data"].pop("token-secret") == "<redacted>"
        assert base64.b64decode(theirs["data"].pop("token-secret")).decode() == SECRET
    assert mine == theirs


def test_secret_as_sent_holds_the_token(cfg):
    (spec,) = cfg.bootstrap_tokens
    secret = bootstraptoken.spec_secret(spec, spec.token, NOW)
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data == {"token-id": "abcdef", "token-secret": SECRET, "expiration": "2026-11-25T19:01:36Z",
                    "usage-bootstrap-signing": "true", "usage-bootstrap-authentication": "true",
                    "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token"}
    assert secret["type"] == "bootstrap.kubernetes.io/token"


def test_console_lines_as_kubeadm(ours):
    fixture = (FIXTURES / "dryrun-stdout.txt").read_text().splitlines()
    text = ours[1]
    wanted = [line for line in fixture if line.startswith(
        ("[upload-config]", "[kubelet] Creating", "[mark-control-plane]", "[bootstrap-token]", "[addons]",
         "[wait-control-plane]"))]
    assert len(wanted) == 14
    for line in wanted:
        if "Using token" in line:
            line = line.replace(SECRET, "<redacted>")
        if "[wait-control-plane]" in line:
            line = line.replace("/etc/kubernetes/tmp/kubeadm-init-dryrun", "/etc/kubernetes/manifests")
        assert line in text.splitlines()


def test_dry_run_never_shows_the_token_secret(ours):
    text = ours[1]
    assert SECRET not in text
    assert base64.b64encode(SECRET.encode()).decode() not in text
    assert "abcdef.<redacted>" in text


def test_dry_run_writes_nothing(tmp_path, kubeadm_objects, cfg):
    from tests.conftest import tree_snapshot

    seeded_root(tmp_path, kubeadm_objects)
    before = tree_snapshot(tmp_path)
    dry_run(tmp_path, cfg)
    assert tree_snapshot(tmp_path) == before


def test_explained_differences_are_real(ours, kubeadm_objects):
    """Every allowance in normalize() is needed: the raw fixture differs from ours exactly there."""
    raw = attached_objects((FIXTURES / "dryrun-stdout.txt").read_text())
    assert all(o["metadata"].get("creationTimestamp", "absent") is None for o in raw)
    svc = next(o for o in raw if o["kind"] == "Service")
    assert svc["metadata"]["resourceVersion"] == "0"
    assert {o["kind"] for o in raw if "status" in o} == {"Deployment", "Service", "DaemonSet", "Node"}
    assert "kubeadm:cluster-admins" in ours[1] and "kubeadm:cluster-admins" not in str(raw)
    assert set(EXPLAINED)


# --- builders under other configurations -------------------------------------------------------

def _with(cfg, **cluster):
    return dataclasses.replace(cfg, cluster=dataclasses.replace(cfg.cluster, **cluster))


@pytest.mark.parametrize("domain,service,dns_ip", [
    ("cluster.local", "10.96.0.0/12", "10.96.0.10"),
    ("corp.example", "10.100.0.0/16", "10.100.0.10"),
    ("k8s.internal", "fd00:10:96::/112", "fd00:10:96::a"),
])
def test_coredns_follows_domain_and_service_cidr(cfg, domain, service, dns_ip):
    c = _with(cfg, networking=Networking(service_subnet=service, pod_subnet=None, dns_domain=domain))
    objs = {o["kind"]: o for o in addons.coredns_objects(c)}
    corefile = objs["ConfigMap"]["data"]["Corefile"]
    assert f"kubernetes {domain} in-addr.arpa ip6.arpa {{" in corefile
    assert f"disable success {domain}" in corefile and f"disable denial {domain}" in corefile
    assert objs["Service"]["spec"]["clusterIP"] == dns_ip


@pytest.mark.parametrize("overrides,field,value", [
    ({}, "mode", ""),
    ({"mode": "ipvs"}, "mode", "ipvs"),
    ({"clusterCIDR": "10.1.0.0/16"}, "clusterCIDR", "10.1.0.0/16"),
    ({"conntrack": {"maxPerCore": 0}}, "conntrack", {"maxPerCore": 0, "min": None, "tcpBeLiberal": False,
                                                    "tcpCloseWaitTimeout": None, "tcpEstablishedTimeout": None,
                                                    "udpStreamTimeout": "0s", "udpTimeout": "0s"}),
])
def test_kube_proxy_overrides_merge_and_resign(cfg, overrides, field, value):
    c = dataclasses.replace(cfg, kube_proxy_overrides=overrides)
    cm = addons.kube_proxy_objects(c, "https://10.0.0.10:6443")[0]
    conf = yaml.safe_load(cm["data"]["config.conf"])
    assert conf[field] == value
    assert conf["clientConnection"]["kubeconfig"] == "/var/lib/kube-proxy/kubeconfig.conf"
    assert cm["metadata"]["annotations"][uploadconfig.HASH_ANNOTATION] == uploadconfig.checksum(cm["data"])
    default = addons.kube_proxy_objects(cfg, "https://10.0.0.10:6443")[0]
    assert (cm == default) == (overrides == {})


@pytest.mark.parametrize("flag,predicate", [
    ("dns_disabled", addons.dns_skip_reason), ("proxy_disabled", addons.proxy_skip_reason)])
def test_addons_skip_when_disabled(tmp_path, cfg, flag, predicate):
    on = make_context(root=str(tmp_path), reporter=RecordingReporter(), init=cfg)
    off = make_context(root=str(tmp_path), reporter=RecordingReporter(), init=_with(cfg, **{flag: True}))
    assert not predicate(on)
    assert "disabled" in predicate(off)


@pytest.mark.parametrize("taints,existing,expect", [
    (None, [], [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]),
    (None, [{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}],
     [{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"},
      {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]),
    (None, [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
     [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]),
    ((), [{"key": "a", "effect": "NoExecute"}], [{"key": "a", "effect": "NoExecute"}]),
    ((Taint("dedicated", "NoSchedule", "infra"),), [],
     [{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}]),
])
def test_mark_appends_missing_taints_to_the_existing_list(cfg, taints, existing, expect):
    c = dataclasses.replace(cfg, node=dataclasses.replace(cfg.node, taints=taints))
    node = {"metadata": {"name": "cp-1", "labels": {"kubernetes.io/hostname": "cp-1"}},
            "spec": {"taints": list(existing)} if existing else {}}
    markcp.mark(node, markcp.taints_for(c))
    assert node["metadata"]["labels"] == {"kubernetes.io/hostname": "cp-1",
                                          "node-role.kubernetes.io/control-plane": "",
                                          "node.kubernetes.io/exclude-from-external-load-balancers": ""}
    assert node["spec"].get("taints", []) == expect


@pytest.mark.parametrize("ttl,expires,description,want_exp", [
    (86400.0, None, "", "2026-11-25T19:01:36Z"),
    (0, None, "", None),
    (3600.0, None, "for CI", "2026-11-24T20:01:36Z"),
    (None, "2030-01-01T00:00:00Z", "", "2030-01-01T00:00:00Z"),
])
def test_token_secret_fields(cfg, ttl, expires, description, want_exp):
    spec = dataclasses.replace(cfg.bootstrap_tokens[0], ttl=ttl, expires=expires, description=description)
    data = bootstraptoken.decode_secret(bootstraptoken.spec_secret(spec, BootstrapToken.parse("abcdef." + SECRET), NOW))
    assert data.get("expiration") == want_exp
    assert data.get("description") == (description or None)


def test_cluster_info_kubeconfig_is_kubeadms_bytes(kubeadm_objects):
    ci = next(o for o in kubeadm_objects if o["metadata"]["name"] == "cluster-info")
    entry = yaml.safe_load(ci["data"]["kubeconfig"])["clusters"][0]["cluster"]
    assert bootstraptoken.cluster_info_kubeconfig(entry) == ci["data"]["kubeconfig"]


def test_go_style_yaml_quotes_like_go():
    assert kyaml.dump({"a": "", "b": "0", "c": "true", "d": "x\ny\n", "e": None, "f": []}) == \
        'a: ""\nb: "0"\nc: "true"\nd: |\n  x\n  y\ne: null\nf: []\n'
