"""Static Pod manifests: byte-for-byte against kubeadm v1.32, config knobs, V1Pod round trips, phases.

Golden files: tests/golden/manifests/kubeadm-init-basic/ are real kubeadm v1.32 output (copied
from the shared fixtures, with the config.yaml kubeadm was given). The other folders there are
kbootd's own output for the sample configs below, reviewed once and pinned; regenerate them
with KBOOTD_UPDATE_GOLDEN=1 after an intended change, and review the diff.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
import yaml

from kbootd import redact
from kbootd.config.load import load_file
from kbootd.config.model import Component, ExternalEtcd, InitConfig
from kbootd.context import make_context
from kbootd.errors import KbootdError, ValidationError
from kbootd.manifests import controlplane, etcd, phase, pod
from kbootd.report import RecordingReporter
from kbootd.workflow import run as run_workflow
from tests.conftest import tree_snapshot

GOLDEN = Path(__file__).parent / "golden" / "manifests"
KUBEADM = GOLDEN / "kubeadm-init-basic"
CONTROL_PLANE = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
ALL = ("etcd", *CONTROL_PLANE)
# Where Debian/Ubuntu keep CA bundles; the host kubeadm ran on had exactly these.
DEBIAN_CA_DIRS = ("/etc/ca-certificates", "/usr/share/ca-certificates", "/usr/local/share/ca-certificates")
RHEL_CA_DIRS = ("/etc/pki/ca-trust", "/etc/pki/tls/certs")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Manifests read *_proxy and the spec's KUBE_* variables; the CI runner's must not leak in."""
    for k in list(os.environ):
        if k.lower().endswith("_proxy") or k in ("KUBE_REPO_PREFIX", "KUBE_HYPERKUBE_IMAGE", "KUBE_ETCD_IMAGE"):
            monkeypatch.delenv(k)


# --- sample configurations ------------------------------------------------------------------

V1ALPHA1 = """\
apiVersion: kubeadm.k8s.io/v1alpha1
kind: MasterConfiguration
api:
  advertiseAddress: 192.168.56.10
  bindPort: 8443
etcd:
  dataDir: /data/etcd
  extraArgs:
    heartbeat-interval: "250"
    election-timeout: "2500"
  image: gcr.io/google_containers/etcd-amd64:3.5.16-0
networking:
  dnsDomain: corp.example
  serviceSubnet: 10.112.0.0/12
  podSubnet: 10.32.0.0/12
kubernetesVersion: v1.31.4
nodeName: master-0
authorizationModes:
- Node
- RBAC
- Webhook
token: abcdef.0123456789abcdef
tokenTTL: 12h
apiServerExtraArgs:
  service-node-port-range: 20000-22767
  enable-admission-plugins: NodeRestriction,AlwaysPullImages
controllerManagerExtraArgs:
  node-monitor-grace-period: 50s
  bind-address: 0.0.0.0
schedulerExtraArgs:
  v: "4"
apiServerCertSANs:
- master.corp.example
certificatesDir: /srv/kubernetes/pki
imageRepository: gcr.io/google_containers
unifiedControlPlaneImage: gcr.io/google_containers/hyperkube-amd64:v1.31.4
featureGates:
  EtcdLearnerMode: true
"""

V1BETA4 = """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: fd00:10::10
  bindPort: 6443
nodeRegistration:
  name: cp-v6
timeouts:
  controlPlaneComponentHealthCheck: 5m
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.32.3
clusterName: lab
networking:
  serviceSubnet: fd00:96::/112
  podSubnet: fd00:244::/56
apiServer:
  extraArgs:
  - name: audit-log-path
    value: /var/log/kubernetes/audit/audit.log
  - name: audit-policy-file
    value: /etc/kubernetes/audit-policy.yaml
  - name: enable-admission-plugins
    value: NodeRestriction,EventRateLimit
  - name: runtime-config
    value: api/all=true
  - name: runtime-config
    value: admissionregistration.k8s.io/v1beta1=true
  extraVolumes:
  - name: audit-policy
    hostPath: /etc/kubernetes/audit-policy.yaml
    mountPath: /etc/kubernetes/audit-policy.yaml
    readOnly: true
    pathType: File
  - name: audit-log
    hostPath: /var/log/kubernetes/audit
    mountPath: /var/log/kubernetes/audit
    pathType: DirectoryOrCreate
  extraEnvs:
  - name: GOMAXPROCS
    value: "4"
  - name: HTTPS_PROXY
    value: http://apiserver-proxy.example:3128
controllerManager:
  extraArgs:
  - name: flex-volume-plugin-dir
    value: /opt/libexec/kubernetes/kubelet-plugins/volume/exec
  - name: bind-address
    value: "::"
  extraVolumes:
  - name: ca-certs
    hostPath: /etc/pki/custom-ca
    mountPath: /etc/ssl/certs
    readOnly: true
scheduler:
  extraArgs:
  - name: bind-address
    value: "::1"
  extraEnvs:
  - name: EMPTY
etcd:
  local:
    dataDir: /var/lib/etcd-lab
    extraArgs:
    - name: listen-metrics-urls
      value: http://[::1]:2391,http://[fd00:10::10]:2391
    - name: quota-backend-bytes
      value: "8589934592"
    extraEnvs:
    - name: ETCD_UNSUPPORTED_ARCH
      value: arm64
"""

EXTERNAL_ETCD = """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 10.0.0.20
nodeRegistration:
  name: cp-ext
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.32.0
etcd:
  external:
    endpoints:
    - https://10.0.0.31:2379
    - https://10.0.0.32:2379
    caFile: /etc/etcd/pki/ca.crt
    certFile: /etc/etcd/pki/clients/apiserver.crt
    keyFile: /etc/kubernetes/pki/apiserver-etcd-client.key
"""

CUSTOM_IMAGES = """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 10.1.2.3
nodeRegistration:
  name: cp-img
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.33.2
imageRepository: registry.example.com/k8s
etcd:
  local:
    imageRepository: registry.example.com/etcd-mirror
    imageTag: 3.6.1-0
"""

CLOUD = """\
apiVersion: kubeadm.k8s.io/v1alpha1
kind: MasterConfiguration
api:
  advertiseAddress: 172.16.0.5
nodeName: cloud-cp
kubernetesVersion: v1.32.0
cloudProvider: external
authorizationModes: [Node, RBAC, ABAC]
"""


@dataclass(frozen=True)
class Case:
    config: str
    dirs: tuple[str, ...] = DEBIAN_CA_DIRS
    files: dict[str, str] = field(default_factory=dict)
    environ: dict[str, str] = field(default_factory=dict)
    external_etcd: bool = False


CASES = {
    "kubeadm-init-basic": Case((KUBEADM / "config.yaml").read_text()),
    "v1alpha1": Case(V1ALPHA1, files={"/etc/kubernetes/webhook_authz.conf": "apiVersion: v1\n"}),
    "v1beta4-ipv6": Case(V1BETA4, environ={"HTTPS_PROXY": "http://proxy.example:3128",
                                           "no_proxy": "10.0.0.0/8,.svc"}),
    "external-etcd": Case(EXTERNAL_ETCD, external_etcd=True),
    # A RHEL-like host, and an external CA: ca.crt without ca.key.
    "custom-images": Case(CUSTOM_IMAGES, dirs=RHEL_CA_DIRS,
                          files={"/etc/kubernetes/pki/ca.crt": "-----BEGIN CERTIFICATE-----\n"}),
    "cloud-provider": Case(CLOUD, files={"/etc/kubernetes/cloud-config": "[Global]\n",
                                         "/etc/kubernetes/abac_policy.json": "{}\n"}),
}


def load(tmp_path: Path, text: str) -> InitConfig:
    p = tmp_path / "kubeadm.yaml"
    p.write_text(text)
    cfg = load_file(str(p), "init", lambda _msg: None)
    assert isinstance(cfg, InitConfig)
    return cfg


def host(root: Path, dirs=(), files: dict[str, str] | None = None) -> None:
    for d in dirs:
        (root / d.lstrip("/")).mkdir(parents=True, exist_ok=True)
    for f, text in (files or {}).items():
        (root / f.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (root / f.lstrip("/")).write_text(text)


def context(root: Path, cfg: InitConfig, dry_run: bool = False):
    return make_context(root=str(root), reporter=RecordingReporter(), init=cfg, dry_run=dry_run)


def case_context(name: str, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    case = CASES[name]
    for k, val in case.environ.items():
        monkeypatch.setenv(k, val)
    host(root, case.dirs, case.files)
    return context(root, load(tmp_path, case.config))


def run_phases(ctx) -> None:
    """kubeadm's init order: etcd, then the control plane."""
    if not phase.skip_if_external_etcd(ctx):
        phase.etcd_local(ctx)
    phase.control_plane(ctx)
    phase.apiserver(ctx)
    phase.controller_manager(ctx)
    phase.scheduler(ctx)


def written(root: Path, component: str) -> str:
    return (root / "etc/kubernetes/manifests" / f"{component}.yaml").read_text()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    """Every sample case rendered once (module scope keeps the suite fast)."""
    out: dict[str, dict[str, str]] = {}
    with pytest.MonkeyPatch.context() as mp:
        for name in CASES:
            base = tmp_path_factory.mktemp(name)
            root = base / "root"
            root.mkdir()
            for k in list(os.environ):
                if k.lower().endswith("_proxy"):
                    mp.delenv(k)
            ctx = case_context(name, root, base, mp)
            run_phases(ctx)
            out[name] = {c: written(root, c) for c in ALL
                         if (root / "etc/kubernetes/manifests" / f"{c}.yaml").exists()}
            for k in CASES[name].environ:
                mp.delenv(k)
    return out


GOLDEN_PAIRS = [(n, c) for n, case in CASES.items() for c in ALL if not (case.external_etcd and c == "etcd")]


# --- golden files ------------------------------------------------------------------------------

@pytest.mark.parametrize("component", ALL)
def test_matches_kubeadm_byte_for_byte(built, component: str) -> None:
    # No differences to explain: same flags and order, probes, volumes, quoting, key order.
    assert built["kubeadm-init-basic"][component] == (KUBEADM / f"{component}.yaml").read_text()


@pytest.mark.parametrize(("name", "component"), [p for p in GOLDEN_PAIRS if p[0] != "kubeadm-init-basic"])
def test_sample_golden(built, name: str, component: str) -> None:
    path = GOLDEN / name / f"{component}.yaml"
    if os.environ.get("KBOOTD_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(built[name][component])
    assert built[name][component] == path.read_text()


def test_external_etcd_writes_no_etcd_manifest(built) -> None:
    assert "etcd" not in built["external-etcd"]
    assert set(built["v1alpha1"]) == set(ALL)


@pytest.fixture(scope="module")
def api_client():
    from kubernetes.client import ApiClient

    return ApiClient()


@pytest.mark.parametrize(("name", "component"), GOLDEN_PAIRS)
def test_round_trips_through_v1pod(built, api_client, name: str, component: str) -> None:
    data = yaml.safe_load(built[name][component])
    obj = api_client._ApiClient__deserialize(data, "V1Pod")
    assert type(obj).__name__ == "V1Pod"
    back = api_client.sanitize_for_serialization(obj)
    # Go's zero-value output that the Python client drops as None/empty.
    assert data["metadata"].pop("creationTimestamp") is None
    assert data.pop("status") == {}
    back.pop("status", None)
    assert back == data


# --- what each configuration knob does ------------------------------------------------------------

def command_of(text: str) -> list[str]:
    return yaml.safe_load(text)["spec"]["containers"][0]["command"]


def container_of(text: str) -> dict:
    return yaml.safe_load(text)["spec"]["containers"][0]


def volumes_of(text: str) -> dict[str, dict]:
    return {v["name"]: v["hostPath"] for v in yaml.safe_load(text)["spec"].get("volumes", [])}


@pytest.mark.parametrize(("name", "component", "present", "absent"), [
    # v1alpha1: extra args maps override defaults; Webhook wired to the spec's file.
    ("v1alpha1", "kube-apiserver",
     ["--advertise-address=192.168.56.10", "--secure-port=8443", "--service-node-port-range=20000-22767",
      "--enable-admission-plugins=NodeRestriction,AlwaysPullImages", "--authorization-mode=Node,RBAC,Webhook",
      "--authorization-webhook-config-file=/etc/kubernetes/webhook_authz.conf",
      "--client-ca-file=/srv/kubernetes/pki/ca.crt",
      "--service-account-issuer=https://kubernetes.default.svc.corp.example",
      "--etcd-servers=https://127.0.0.1:2379", "--service-cluster-ip-range=10.112.0.0/12"],
     ["--enable-admission-plugins=NodeRestriction", "--authorization-policy-file=/etc/kubernetes/abac_policy.json"]),
    ("v1alpha1", "kube-controller-manager",
     ["--bind-address=0.0.0.0", "--node-monitor-grace-period=50s", "--cluster-cidr=10.32.0.0/12",
      "--allocate-node-cidrs=true", "--root-ca-file=/srv/kubernetes/pki/ca.crt",
      "--cluster-signing-key-file=/srv/kubernetes/pki/ca.key", "--controllers=*,bootstrapsigner,tokencleaner"],
     ["--bind-address=127.0.0.1", "--cloud-provider=external"]),
    ("v1alpha1", "kube-scheduler", ["--v=4", "--bind-address=127.0.0.1"], []),
    ("v1alpha1", "etcd",
     ["--data-dir=/data/etcd", "--heartbeat-interval=250", "--election-timeout=2500", "--name=master-0",
      "--experimental-initial-corrupt-check=true", "--trusted-ca-file=/srv/kubernetes/pki/etcd/ca.crt"], []),
    # v1beta4: structured args, duplicates kept (sorted by value as kubeadm sorts), IPv6 loopbacks.
    ("v1beta4-ipv6", "kube-apiserver",
     ["--runtime-config=admissionregistration.k8s.io/v1beta1=true", "--runtime-config=api/all=true",
      "--enable-admission-plugins=NodeRestriction,EventRateLimit", "--etcd-servers=https://[::1]:2379",
      "--advertise-address=fd00:10::10", "--service-cluster-ip-range=fd00:96::/112"], []),
    ("v1beta4-ipv6", "kube-controller-manager",
     ["--bind-address=::", "--cluster-name=lab", "--cluster-cidr=fd00:244::/56",
      "--flex-volume-plugin-dir=/opt/libexec/kubernetes/kubelet-plugins/volume/exec"], []),
    ("v1beta4-ipv6", "etcd",
     ["--listen-client-urls=https://[::1]:2379,https://[fd00:10::10]:2379", "--name=cp-v6",
      "--listen-metrics-urls=http://[::1]:2391,http://[fd00:10::10]:2391",
      "--initial-cluster=cp-v6=https://[fd00:10::10]:2380", "--quota-backend-bytes=8589934592"],
     ["--listen-metrics-urls=http://[::1]:2381"]),
    # External etcd: the given servers and files instead of the local member's.
    ("external-etcd", "kube-apiserver",
     ["--etcd-servers=https://10.0.0.31:2379,https://10.0.0.32:2379", "--etcd-cafile=/etc/etcd/pki/ca.crt",
      "--etcd-certfile=/etc/etcd/pki/clients/apiserver.crt",
      "--etcd-keyfile=/etc/kubernetes/pki/apiserver-etcd-client.key"],
     ["--etcd-cafile=/etc/kubernetes/pki/etcd/ca.crt"]),
    # No pod subnet: no node CIDR allocation, and (as kubeadm) no service range on the controller-manager.
    ("external-etcd", "kube-controller-manager", ["--cluster-name=kubernetes"],
     ["--allocate-node-cidrs=true", "--service-cluster-ip-range=10.96.0.0/12"]),
    # etcd 3.6 renamed the flags kubeadm sets; external CA empties the signer flags.
    ("custom-images", "etcd",
     ["--feature-gates=InitialCorruptCheck=true", "--watch-progress-notify-interval=5s"],
     ["--experimental-initial-corrupt-check=true", "--experimental-watch-progress-notify-interval=5s"]),
    ("custom-images", "kube-controller-manager",
     ["--cluster-signing-cert-file=", "--cluster-signing-key-file="],
     ["--cluster-signing-key-file=/etc/kubernetes/pki/ca.key"]),
    # cloudProvider external: the controller-manager only; ABAC wired to the spec's file.
    ("cloud-provider", "kube-controller-manager",
     ["--cloud-provider=external", "--cloud-config=/etc/kubernetes/cloud-config"], []),
    ("cloud-provider", "kube-apiserver",
     ["--authorization-mode=Node,RBAC,ABAC", "--authorization-policy-file=/etc/kubernetes/abac_policy.json"],
     ["--cloud-provider=external"]),
])
def test_flags(built, name: str, component: str, present: list[str], absent: list[str]) -> None:
    cmd = command_of(built[name][component])
    assert cmd[0] == component
    assert cmd[1:] == sorted(cmd[1:], key=lambda a: tuple(a[2:].split("=", 1)))
    for flag in present:
        assert flag in cmd
    for flag in absent:
        assert flag not in cmd
    names = [a.split("=", 1)[0] for a in cmd[1:]]
    # Only repeated extra args may repeat.
    assert len(names) - len(set(names)) == (1 if (name, component) == ("v1beta4-ipv6", "kube-apiserver") else 0)


@pytest.mark.parametrize(("name", "component", "image"), [
    ("kubeadm-init-basic", "etcd", "registry.k8s.io/etcd:3.5.16-0"),
    ("v1alpha1", "kube-apiserver", "gcr.io/google_containers/hyperkube-amd64:v1.31.4"),
    ("v1alpha1", "kube-scheduler", "gcr.io/google_containers/hyperkube-amd64:v1.31.4"),
    ("v1alpha1", "etcd", "gcr.io/google_containers/etcd-amd64:3.5.16-0"),
    ("custom-images", "kube-controller-manager", "registry.example.com/k8s/kube-controller-manager:v1.33.2"),
    ("custom-images", "etcd", "registry.example.com/etcd-mirror/etcd:3.6.1-0"),
])
def test_images(built, name: str, component: str, image: str) -> None:
    assert container_of(built[name][component])["image"] == image


@pytest.mark.parametrize(("name", "component", "volume", "expected"), [
    ("v1alpha1", "kube-apiserver", "authorization-webhook-config",
     {"path": "/etc/kubernetes/webhook_authz.conf", "type": "File"}),
    ("v1alpha1", "kube-apiserver", "k8s-certs", {"path": "/srv/kubernetes/pki", "type": "DirectoryOrCreate"}),
    ("v1alpha1", "etcd", "etcd-data", {"path": "/data/etcd", "type": "DirectoryOrCreate"}),
    ("v1beta4-ipv6", "kube-apiserver", "audit-policy", {"path": "/etc/kubernetes/audit-policy.yaml", "type": "File"}),
    # A user's volume replaces kubeadm's of the same name; no pathType gives `type: ""` as in kubeadm.
    ("v1beta4-ipv6", "kube-controller-manager", "ca-certs", {"path": "/etc/pki/custom-ca", "type": ""}),
    ("v1beta4-ipv6", "kube-controller-manager", "flexvolume-dir",
     {"path": "/opt/libexec/kubernetes/kubelet-plugins/volume/exec", "type": "DirectoryOrCreate"}),
    ("external-etcd", "kube-apiserver", "etcd-certs-0", {"path": "/etc/etcd/pki", "type": "DirectoryOrCreate"}),
    ("custom-images", "kube-apiserver", "etc-pki-ca-trust", {"path": "/etc/pki/ca-trust", "type": "DirectoryOrCreate"}),
    ("custom-images", "kube-controller-manager", "etc-pki-tls-certs",
     {"path": "/etc/pki/tls/certs", "type": "DirectoryOrCreate"}),
    ("cloud-provider", "kube-controller-manager", "cloud-config",
     {"path": "/etc/kubernetes/cloud-config", "type": "FileOrCreate"}),
    ("cloud-provider", "kube-apiserver", "authorization-policy",
     {"path": "/etc/kubernetes/abac_policy.json", "type": "File"}),
])
def test_volumes(built, name: str, component: str, volume: str, expected: dict) -> None:
    text = built[name][component]
    assert volumes_of(text)[volume] == expected
    mounts = {m["name"]: m for m in container_of(text)["volumeMounts"]}
    assert volume in mounts
    if component != "etcd":
        names = [v["name"] for v in yaml.safe_load(text)["spec"]["volumes"]]
        assert names == sorted(names) == sorted(mounts)


@pytest.mark.parametrize(("name", "component", "volume"), [
    ("custom-images", "kube-apiserver", "etc-ca-certificates"),  # a Debian path, absent on this host
    ("external-etcd", "kube-controller-manager", "cloud-config"),
    ("external-etcd", "kube-apiserver", "etcd-certs-1"),  # the subdirectory of a mounted one
])
def test_volume_absent(built, name: str, component: str, volume: str) -> None:
    assert volume not in volumes_of(built[name][component])


@pytest.mark.parametrize(("name", "component", "env"), [
    # Proxy variables from the environment, overridden by extraEnvs, sorted by name.
    ("v1beta4-ipv6", "kube-apiserver", [{"name": "GOMAXPROCS", "value": "4"},
                                         {"name": "HTTPS_PROXY", "value": "http://apiserver-proxy.example:3128"},
                                         {"name": "no_proxy", "value": "10.0.0.0/8,.svc"}]),
    ("v1beta4-ipv6", "kube-scheduler", [{"name": "EMPTY"},
                                         {"name": "HTTPS_PROXY", "value": "http://proxy.example:3128"},
                                         {"name": "no_proxy", "value": "10.0.0.0/8,.svc"}]),
    ("v1beta4-ipv6", "etcd", [{"name": "ETCD_UNSUPPORTED_ARCH", "value": "arm64"}]),  # no proxies for etcd
    ("kubeadm-init-basic", "kube-apiserver", None),
])
def test_env(built, name: str, component: str, env) -> None:
    assert container_of(built[name][component]).get("env") == env


@pytest.mark.parametrize(("name", "component", "probe", "expected"), [
    # Unspecified bind address: no host, the kubelet probes the Pod IP.
    ("v1beta4-ipv6", "kube-controller-manager", "livenessProbe",
     {"path": "/healthz", "port": 10257, "scheme": "HTTPS"}),
    ("v1beta4-ipv6", "kube-scheduler", "readinessProbe",
     {"host": "::1", "path": "/readyz", "port": 10259, "scheme": "HTTPS"}),
    ("v1beta4-ipv6", "etcd", "startupProbe", {"host": "::1", "path": "/readyz", "port": 2391, "scheme": "HTTP"}),
    ("v1alpha1", "kube-apiserver", "startupProbe",
     {"host": "192.168.56.10", "path": "/livez", "port": 8443, "scheme": "HTTPS"}),
])
def test_probes(built, name: str, component: str, probe: str, expected: dict) -> None:
    assert container_of(built[name][component])[probe]["httpGet"] == expected


@pytest.mark.parametrize(("name", "failures"), [("kubeadm-init-basic", 24), ("v1beta4-ipv6", 30)])
def test_startup_probe_covers_the_health_check_timeout(built, name: str, failures: int) -> None:
    for component in ALL:
        assert container_of(built[name][component])["startupProbe"]["failureThreshold"] == failures


def test_annotations(built) -> None:
    api = yaml.safe_load(built["v1beta4-ipv6"]["kube-apiserver"])["metadata"]["annotations"]
    assert api == {"kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint": "[fd00:10::10]:6443"}
    e = yaml.safe_load(built["v1beta4-ipv6"]["etcd"])["metadata"]["annotations"]
    assert e == {"kubeadm.kubernetes.io/etcd.advertise-client-urls": "https://[fd00:10::10]:2379"}


# --- errors ----------------------------------------------------------------------------------------

FIXTURE_CFG = (KUBEADM / "config.yaml").read_text()


def with_cluster(cfg: InitConfig, **kw) -> InitConfig:
    return replace(cfg, cluster=replace(cfg.cluster, **kw))


@pytest.mark.parametrize(("change", "builder", "needles"), [
    ({"authorization_modes": ("Node", "RBAC", "ABAC")}, controlplane.apiserver_pod,
     ["authorizationModes", "ABAC", "/etc/kubernetes/abac_policy.json", "does not exist"]),
    ({"authorization_modes": ("Webhook", "Node")}, controlplane.apiserver_pod,
     ["authorizationModes", "Webhook", "/etc/kubernetes/webhook_authz.conf"]),
    ({"api_server": Component(extra_args=(("authorization-mode", "Node,ABAC"),))}, controlplane.apiserver_pod,
     ["apiServer.extraArgs authorization-mode", "abac_policy.json"]),
    ({"cloud_provider": "aws"}, controlplane.controller_manager_pod,
     ["cloudProvider", "'aws'", "in-tree", "external"]),
    ({"cloud_provider": "gce"}, controlplane.scheduler_pod, ["cloudProvider", "'gce'"]),
    ({"feature_gates": (("RootlessControlPlane", True),)}, etcd.etcd_pod,
     ["featureGates.RootlessControlPlane", "not supported"]),
])
def test_bad_input_is_a_clear_validation_error(root, tmp_path, change, builder, needles) -> None:
    ctx = context(root, with_cluster(load(tmp_path, FIXTURE_CFG), **change))
    with pytest.raises(ValidationError) as e:
        builder(ctx)
    for n in needles:
        assert n in str(e.value)


def test_authorization_config_replaces_the_mode_flag(root, tmp_path) -> None:
    args = (("authorization-config", "/etc/kubernetes/authz.yaml"),)
    ctx = context(root, with_cluster(load(tmp_path, FIXTURE_CFG), api_server=Component(extra_args=args),
                                     authorization_modes=("Node", "RBAC", "ABAC")))
    cmd = controlplane.apiserver_pod(ctx)["spec"]["containers"][0]["command"]
    assert "--authorization-config=/etc/kubernetes/authz.yaml" in cmd
    assert not [a for a in cmd if a.startswith(("--authorization-mode", "--authorization-policy-file"))]


def test_unknown_modes_in_extra_args_warn(root, tmp_path) -> None:
    args = (("authorization-mode", "Node,Bogus,RBAC"),)
    ctx = context(root, with_cluster(load(tmp_path, FIXTURE_CFG), api_server=Component(extra_args=args)))
    cmd = controlplane.apiserver_pod(ctx)["spec"]["containers"][0]["command"]
    assert "--authorization-mode=Node,Bogus,RBAC" in cmd  # the user's flag is passed as given
    assert "'Bogus'" in ctx.reporter.text()


@pytest.mark.parametrize(("files", "external"), [
    ({}, False),
    ({"ca.crt": "x", "ca.key": "y"}, False),
    ({"ca.crt": "x"}, True),
    ({"ca.key": "y"}, False),
])
def test_external_ca_detection(root, tmp_path, files, external) -> None:
    host(root, files={f"/etc/kubernetes/pki/{n}": t for n, t in files.items()})
    ctx = context(root, load(tmp_path, FIXTURE_CFG))
    assert controlplane.using_external_ca(ctx) is external
    cmd = controlplane.controller_manager_pod(ctx)["spec"]["containers"][0]["command"]
    assert ("--cluster-signing-key-file=" in cmd) is external
    assert ("--cluster-signing-key-file=/etc/kubernetes/pki/ca.key" in cmd) is not external


def test_cloud_config_is_only_used_when_present(root, tmp_path) -> None:
    ctx = context(root, with_cluster(load(tmp_path, FIXTURE_CFG), cloud_provider="external"))
    kcm = controlplane.controller_manager_pod(ctx)
    cmd = kcm["spec"]["containers"][0]["command"]
    assert "--cloud-provider=external" in cmd
    assert not [a for a in cmd if a.startswith("--cloud-config")]
    assert "cloud-config" not in {v["name"] for v in kcm["spec"]["volumes"]}


@pytest.mark.parametrize(("ca", "cert", "key", "dirs"), [
    ("/etc/etcd/ca.crt", "/etc/etcd/sub/c.crt", "/etc/etcd/sub/c.key", ["/etc/etcd"]),
    ("/etc/etcd/sub/ca.crt", "/etc/etcd/c.crt", "/opt/etcd/c.key", ["/etc/etcd", "/opt/etcd"]),
    ("/etc/ssl/certs/ca.crt", "/etc/kubernetes/pki/c.crt", "/etc/pki/tls/certs/c.key", []),
    ("", "", "", []),
])
def test_external_etcd_cert_dirs(ca, cert, key, dirs) -> None:
    from kbootd.config.model import ClusterConfig

    c = ClusterConfig(etcd_local=None, etcd_external=ExternalEtcd(("https://e:2379",), ca, cert, key))
    mounts = controlplane._etcd_cert_mounts(c)
    assert [m.host_path for m in mounts] == dirs
    assert [m.name for m in mounts] == [f"etcd-certs-{i}" for i in range(len(dirs))]
    assert all(m.read_only for m in mounts)


# --- shared pieces ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("defaults", "overrides", "expected"), [
    ([("b", "1"), ("a", "2")], (), ["x", "--a=2", "--b=1"]),
    ([("a", "1")], (("a", "9"),), ["x", "--a=9"]),
    # Every default of an overridden name goes; every override stays, sorted by value.
    ([("a", "1"), ("a", "2"), ("c", "3")], (("a", "z"), ("a", "m")), ["x", "--a=m", "--a=z", "--c=3"]),
    ([("k", "")], (), ["x", "--k="]),
])
def test_command(defaults, overrides, expected) -> None:
    assert pod.command("x", defaults, overrides) == expected


@pytest.mark.parametrize(("args", "name", "value"), [
    ([("a", "1"), ("a", "2")], "a", "2"),
    ([("a", "1")], "b", None),
    ([], "a", None),
])
def test_arg_value(args, name, value) -> None:
    assert pod.arg_value(args, name) == value


@pytest.mark.parametrize(("args", "expected"), [
    ([("a", "1"), ("b", "2"), ("a", "3")], [("a", "1"), ("b", "2"), ("a", "new")]),
    ([("b", "2")], [("b", "2"), ("a", "new")]),
])
def test_set_arg(args, expected) -> None:
    pod.set_arg(args, "a", "new")
    assert args == expected


@pytest.mark.parametrize(("environ", "expected"), [
    ({"HTTP_PROXY": "http://p:1", "PATH": "/bin", "no_proxy": "a", "FTP_PROXY": ""},
     [("HTTP_PROXY", "http://p:1"), ("no_proxy", "a")]),
    ({"proxy": "x", "MY_PROXY": "y"}, [("MY_PROXY", "y")]),
    ({}, []),
])
def test_proxy_envs(environ, expected) -> None:
    assert sorted(pod.proxy_envs(environ)) == sorted(expected)


def test_proxy_credentials_are_redacted() -> None:
    pod.proxy_envs({"HTTPS_PROXY": "http://alice:s3cr3t-pw@proxy:3128"})
    assert "s3cr3t-pw" not in redact.redact("proxy http://alice:s3cr3t-pw@proxy:3128")


@pytest.mark.parametrize(("lists", "expected"), [
    ([[("B", "1"), ("A", "2")], [("B", "3")]], [{"name": "A", "value": "2"}, {"name": "B", "value": "3"}]),
    ([[("E", "")]], [{"name": "E"}]),
    ([], []),
])
def test_merge_envs(lists, expected) -> None:
    assert pod.merge_envs(*lists) == expected


@pytest.mark.parametrize(("timeout", "failures"), [(240, 24), (241, 25), (10, 1), (300, 30)])
def test_startup_failure_threshold(timeout, failures) -> None:
    assert pod.startup_probe("h", "/livez", 1, "HTTPS", timeout)["failureThreshold"] == failures


@pytest.mark.parametrize(("args", "ipv6", "expected"), [
    ((), False, ("127.0.0.1", 2381, "HTTP")),
    ((), True, ("::1", 2381, "HTTP")),
    ((("listen-metrics-urls", "https://10.0.0.1:9000,http://127.0.0.1:2381"),), False, ("10.0.0.1", 9000, "HTTPS")),
    ((("listen-metrics-urls", "http://[::1]:2391"),), True, ("::1", 2391, "HTTP")),
    ((("listen-metrics-urls", "http://:2399"),), False, ("127.0.0.1", 2399, "HTTP")),
    ((("listen-metrics-urls", "http://h:notaport"),), False, ("127.0.0.1", 2381, "HTTP")),
])
def test_etcd_probe_endpoint(args, ipv6, expected) -> None:
    assert etcd.probe_endpoint(args, ipv6) == expected


@pytest.mark.parametrize(("image", "new"), [
    ("registry.k8s.io/etcd:3.5.16-0", False),
    ("registry.k8s.io/etcd:3.6.4-0", True),
    ("registry.k8s.io/etcd:3.6.0", True),
    ("registry.k8s.io/etcd:3.6.0-0", False),  # a pre-release of 3.6.0
    ("quay.io/coreos/etcd:v3.7.1", True),
    ("localhost:5000/etcd", False),
    ("etcd:latest", False),
])
def test_etcd_flag_generation(image, new) -> None:
    assert etcd.image_tag_at_least_3_6(image) is new


@pytest.mark.parametrize(("data", "text"), [
    ({"a": "true", "b": "", "c": "plain"}, 'a: "true"\nb: ""\nc: plain\n'),
    ({"z": None, "y": {}, "x": ["--f=1"]}, "x:\n- --f=1\ny: {}\nz: null\n"),
    ({"long": "--x=" + " ".join(["a"] * 100)}, "long: --x=" + " ".join(["a"] * 100) + "\n"),
])
def test_yaml_is_shaped_like_go(data, text) -> None:
    assert pod.to_yaml(data) == text


# --- phases ------------------------------------------------------------------------------------------

def fixture_ctx(root: Path, tmp_path: Path, dry_run: bool = False):
    host(root, DEBIAN_CA_DIRS)
    return context(root, load(tmp_path, FIXTURE_CFG), dry_run=dry_run)


def test_phase_messages_modes_and_data_dir(root, tmp_path) -> None:
    ctx = fixture_ctx(root, tmp_path)
    run_phases(ctx)
    assert ctx.reporter.text().splitlines() == [
        '[etcd] Creating static Pod manifest for local etcd in "/etc/kubernetes/manifests"',
        '[control-plane] Using manifest folder "/etc/kubernetes/manifests"',
        '[control-plane] Creating static Pod manifest for "kube-apiserver"',
        '[control-plane] Creating static Pod manifest for "kube-controller-manager"',
        '[control-plane] Creating static Pod manifest for "kube-scheduler"',
    ]
    for c in ALL:
        assert (root / "etc/kubernetes/manifests" / f"{c}.yaml").stat().st_mode & 0o777 == 0o600
    assert (root / "var/lib/etcd").stat().st_mode & 0o777 == 0o700
    assert (root / "etc/kubernetes/manifests").stat().st_mode & 0o777 == 0o700


def test_rerun_writes_nothing(root, tmp_path) -> None:
    ctx = fixture_ctx(root, tmp_path)
    run_phases(ctx)
    before = tree_snapshot(root)
    again = fixture_ctx(root, tmp_path)
    run_phases(again)
    assert again.host.actions == []
    assert tree_snapshot(root) == before


def test_changed_config_rewrites_only_what_changed(root, tmp_path) -> None:
    run_phases(fixture_ctx(root, tmp_path))
    cfg = with_cluster(load(tmp_path, FIXTURE_CFG), scheduler=Component(extra_args=(("v", "2"),)))
    ctx = context(root, cfg)
    run_phases(ctx)
    assert [a.target for a in ctx.host.actions if a.kind == "write"] == ["/etc/kubernetes/manifests/kube-scheduler.yaml"]


def test_dry_run_changes_nothing(root, tmp_path) -> None:
    ctx = fixture_ctx(root, tmp_path, dry_run=True)
    before = tree_snapshot(root)
    run_phases(ctx)
    assert tree_snapshot(root) == before
    out = ctx.reporter.text()
    assert '[dryrun] Would ensure that "/var/lib/etcd" directory is present' in out
    for c in ALL:
        assert f'[dryrun] Would write file "/etc/kubernetes/manifests/{c}.yaml" (mode 0600)' in out
    assert "--advertise-address=10.0.0.10" in out


@pytest.mark.parametrize(("external", "reason"), [(True, "external etcd"), (False, None)])
def test_etcd_run_if(root, tmp_path, external, reason) -> None:
    cfg = load(tmp_path, EXTERNAL_ETCD if external else FIXTURE_CFG)
    assert phase.skip_if_external_etcd(context(root, cfg)) == reason


def test_etcd_local_writes_nothing_for_external_etcd(root, tmp_path) -> None:
    ctx = context(root, load(tmp_path, EXTERNAL_ETCD))
    phase.etcd_local(ctx)
    assert ctx.host.actions == []
    with pytest.raises(KbootdError):
        etcd.etcd_pod(ctx)


def test_manifest_phases_of_the_init_workflow(root, tmp_path) -> None:
    from kbootd.phases import INIT

    ctx = fixture_ctx(root, tmp_path)
    for name in ("etcd", "control-plane"):
        run_workflow(INIT, ctx, only=name)
    assert ctx.completed == ["etcd/local", "etcd", "control-plane/apiserver", "control-plane/controller-manager",
                             "control-plane/scheduler", "control-plane"]
    for c in ALL:
        assert written(root, c) == (KUBEADM / f"{c}.yaml").read_text()
    ext = context(root, load(tmp_path, EXTERNAL_ETCD))
    run_workflow(INIT, ext, only="etcd")
    assert ("skipped", "etcd", "external etcd") in ext.reporter.events


def test_local_etcd_advertise_client_urls_reach_the_api_server(root, tmp_path) -> None:
    from kbootd.config.model import LocalEtcd

    local = LocalEtcd(extra_args=(("advertise-client-urls", "https://etcd.internal:2379"),))
    ctx = context(root, with_cluster(load(tmp_path, FIXTURE_CFG), etcd_local=local))
    api = controlplane.apiserver_pod(ctx)["spec"]["containers"][0]["command"]
    assert "--etcd-servers=https://etcd.internal:2379" in api
    member = etcd.etcd_pod(ctx)["spec"]["containers"][0]["command"]
    assert "--advertise-client-urls=https://etcd.internal:2379" in member
    assert "--advertise-client-urls=https://10.0.0.10:2379" not in member
