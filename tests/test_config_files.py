"""The spec's v1alpha1 samples and today's v1beta4 load into the same model; errors name file:line."""

from dataclasses import replace
from pathlib import Path

import pytest

from kbootd.config.load import load_file
from kbootd.config.model import ExternalEtcd, InitConfig, JoinConfig
from kbootd.errors import SecurityError, ValidationError
from tests.shared import INIT_BASIC

DATA = Path(__file__).parent / "data"
FIXTURE = INIT_BASIC / "config.yaml"

warnings: list[str] = []


def load(name: str, role: str = "init"):
    return load_file(str(DATA / name), role, warnings.append)


def test_every_field_of_the_spec_master_sample():
    c = load("master-v1alpha1.yaml")
    assert isinstance(c, InitConfig)
    assert c.advertise_address == "10.0.0.10" and c.bind_port == 6444
    assert c.cluster.etcd_external == ExternalEtcd(
        ("https://10.0.0.20:2379", "https://10.0.0.21:2379"),
        "/etc/etcd/ca.crt", "/etc/etcd/client.crt", "/etc/etcd/client.key")
    assert c.cluster.etcd_local is None
    n = c.cluster.networking
    assert (n.dns_domain, n.service_subnet, n.pod_subnet) == ("cluster.example", "10.100.0.0/16", "10.244.0.0/16")
    assert c.cluster.kubernetes_version == "v1.32.0"
    assert c.cluster.cloud_provider == "external"
    assert c.node.name == "cp-1"
    assert c.cluster.authorization_modes == ("Node", "RBAC")
    assert c.bootstrap_tokens[0].token.full == "abcdef.0123456789abcdef"
    assert c.bootstrap_tokens[0].ttl == 7200
    assert c.cluster.api_server.extra_args == (("audit-log-maxage", "30"), ("profiling", "false"))
    assert c.cluster.controller_manager.extra_args == (("node-monitor-grace-period", "50s"),)
    assert c.cluster.scheduler.extra_args == (("bind-address", "0.0.0.0"),)
    assert c.cluster.api_server_cert_sans == ("kubernetes.example.com", "10.100.245.1")
    assert c.cluster.certificates_dir == "/etc/kubernetes/pki"
    assert c.cluster.image_repository == "gcr.io/google_containers"
    assert c.cluster.unified_control_plane_image == "gcr.io/google_containers/hyperkube:v1.32.0"
    assert c.cluster.feature_gates == (("EtcdLearnerMode", True),)


def test_master_sample_local_etcd_fields():
    text = (DATA / "master-v1alpha1.yaml").read_text()
    text = text.replace("  endpoints:\n  - https://10.0.0.20:2379\n  - https://10.0.0.21:2379\n", "")
    text = text.replace("  caFile: /etc/etcd/ca.crt\n  certFile: /etc/etcd/client.crt\n  keyFile: /etc/etcd/client.key\n", "")
    c = load_file("local.yaml", "init", warnings.append, text=text)
    assert c.cluster.etcd_external is None
    assert c.cluster.etcd_local.data_dir == "/var/lib/etcd-data"
    assert c.cluster.etcd_local.extra_args == (("quota-backend-bytes", "8589934592"),)
    assert c.cluster.etcd_local.image == "quay.io/coreos/etcd:v3.5.16"


def test_v1alpha1_and_v1beta4_give_the_same_model():
    a, b = load("master-v1alpha1.yaml"), load("init-v1beta4.yaml")
    # Fields v1beta4 has no place for (the spec's cloudProvider and unified image) aside:
    a = replace(a, source="", cluster=replace(a.cluster, cloud_provider=None, unified_control_plane_image=None))
    assert replace(b, source="") == a


def test_every_field_of_the_spec_node_sample():
    c = load("node-v1alpha1.yaml", "join")
    assert isinstance(c, JoinConfig)
    assert c.ca_cert_path == "/etc/kubernetes/pki/ca.crt"
    assert c.discovery_token.full == "abcdef.0123456789abcdef"
    assert c.api_server_endpoints == ("10.0.0.10:6443", "10.0.0.11:6443")
    assert c.node.name == "worker-1"
    assert c.tls_bootstrap_token.full == "fedcba.0123456789abcdef"
    assert c.ca_cert_hashes[1] == "sha256:345959acb2c3b2feb87d281961c893f62a314207ef02599f1cc4a5fb255480b3"
    assert c.unsafe_skip_ca_verification is False


def test_v1beta4_join():
    c = load("join-v1beta4.yaml", "join")
    assert c.api_server_endpoints == ("10.0.0.10:6443",)
    assert c.tls_bootstrap_token.id == "fedcba"
    assert c.timeouts.discovery == 600


def test_fixture_config_of_real_kubeadm():
    c = load_file(str(FIXTURE), "init", warnings.append)
    assert c.node.name == "cp-1" and c.node.cri_socket == "unix:///run/containerd/containerd.sock"
    assert c.cluster.networking.pod_subnet == "10.244.0.0/16"
    assert c.cluster.api_server_cert_sans == ("kubernetes.example.com", "10.100.245.1")


def test_role_mismatch():
    with pytest.raises(ValidationError, match="JoinConfiguration"):
        load("master-v1alpha1.yaml", "join")
    with pytest.raises(ValidationError, match="needs a JoinConfiguration"):
        load("init-v1beta4.yaml", "join")


INIT_HEAD = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n"
CLUSTER_HEAD = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"


@pytest.mark.parametrize("text,line,pattern", [
    (INIT_HEAD + "bogus: 1\n", 3, r"InitConfiguration\.bogus: unknown field 'bogus'"),
    (INIT_HEAD + "localAPIEndpoint:\n  bindPort: 70000\n", 4, r"localAPIEndpoint\.bindPort: 70000 is not a port"),
    (INIT_HEAD + "localAPIEndpoint:\n  bindPort: six\n", 4, r"bindPort: expected an integer"),
    (INIT_HEAD + "localAPIEndpoint:\n  advertiseAddress: 10.0.0.300\n", 4, r"is not an IP address"),
    (INIT_HEAD + "bootstrapTokens:\n- token: nope\n", 4, r"bootstrapTokens\[0\]\.token: the token"),
    (INIT_HEAD + "bootstrapTokens:\n- token: abcdef.0123456789abcdef\n  usages: [fly]\n", 5, r"unknown usage 'fly'"),
    (INIT_HEAD + "bootstrapTokens:\n- token: abcdef.0123456789abcdef\n  ttl: forever\n", 5, r"ttl: 'forever' is not a duration"),
    (INIT_HEAD + "bootstrapTokens:\n- token: abcdef.0123456789abcdef\n  groups: [system:nodes]\n", 5, r"must match"),
    (INIT_HEAD + "nodeRegistration:\n  name: Bad_Name\n", 4, r"not a valid node name"),
    (INIT_HEAD + "nodeRegistration:\n  criSocket: containerd\n", 4, r"not a CRI socket"),
    (INIT_HEAD + "nodeRegistration:\n  taints:\n  - key: a\n    effect: Sometimes\n", 6, r"not one of NoSchedule"),
    (CLUSTER_HEAD + "networking:\n  serviceSubnet: 10.96.0.0/33\n", 4, r"serviceSubnet: '10.96.0.0/33' is not a valid CIDR"),
    (CLUSTER_HEAD + "networking:\n  podSubnet: 10.96.0.0/16\n", 4, r"overlaps pod network CIDR"),
    (CLUSTER_HEAD + "featureGates:\n  Bogus: true\n", 3, r"unknown feature gate 'Bogus'"),
    (CLUSTER_HEAD + "featureGates:\n  SelfHosting: true\n", 3, r"SelfHosting is not supported"),
    (CLUSTER_HEAD + "featureGates:\n  EtcdLearnerMode: yes-please\n", 3, r"expected true or false"),
    (CLUSTER_HEAD + "kubernetesVersion: v1.8.0\n", 3, r"v1.8.0 is not supported"),
    (CLUSTER_HEAD + "kubernetesVersion: banana\n", 3, r"not a Kubernetes version"),
    (CLUSTER_HEAD + "encryptionAlgorithm: DSA\n", 3, r"expected one of RSA-2048"),
    (CLUSTER_HEAD + "etcd:\n  external:\n    endpoints: []\n", 5, r"at least one external etcd endpoint"),
    (CLUSTER_HEAD + "apiServer:\n  extraArgs:\n    profiling: false\n", 4, r"extraArgs: expected a list"),
    ("apiVersion: v1\nkind: Pod\n", 2, r"unknown document kind v1/Pod"),
    ("kind: InitConfiguration\n", 1, r"no apiVersion or kind"),
    (INIT_HEAD + "localAPIEndpoint: [\n", 4, r"invalid YAML"),
])
def test_validation_errors_name_file_line_field(text, line, pattern):
    with pytest.raises(ValidationError, match=pattern) as e:
        load_file("kubeadm.yaml", "init", warnings.append, text=text)
    assert str(e.value).startswith(f"kubeadm.yaml:{line}:"), str(e.value)


@pytest.mark.parametrize("text,pattern", [
    ("apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\n", r"discovery: required"),
    ("apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  file:\n"
     "    kubeConfigPath: http://example.com/c.conf\n", r"refusing plain-HTTP discovery URL"),
    ("apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n"
     "    token: abcdef.0123456789abcdef\n    apiServerEndpoint: 10.0.0.1:6443\n", r"needs --discovery-token-ca-cert-hash"),
    ("apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n"
     "    token: abcdef.0123456789abcdef\n    apiServerEndpoint: 10.0.0.1:6443\n    caCertHashes: [sha256:abc]\n",
     r"not a CA public-key pin"),
])
def test_join_validation(text, pattern):
    # A plain-HTTP URL is a SecurityError (exit 4); the rest are ValidationErrors (exit 3).
    with pytest.raises((ValidationError, SecurityError), match=pattern) as e:
        load_file("join.yaml", "join", warnings.append, text=text)
    assert e.value.exit_code == (4 if "plain-HTTP" in pattern else 3)


def test_latest_falls_back_with_a_warning():
    got: list[str] = []
    c = load_file("k.yaml", "init", got.append, text=CLUSTER_HEAD + "kubernetesVersion: stable\n")
    assert c.cluster.kubernetes_version == "v1.32.0"
    assert any("falling back" in w for w in got)


def test_extra_documents_are_kept():
    text = (CLUSTER_HEAD + "---\napiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
            "maxPods: 50\n")
    c = load_file("k.yaml", "init", warnings.append, text=text)
    assert c.kubelet_overrides["maxPods"] == 50
