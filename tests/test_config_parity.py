"""Issue #14: a kubeadm user's configuration means the same to kbootd.

Table cases per group; each names the kubeadm rule (cmd/kubeadm/app/apis/kubeadm/validation/
validation.go, the v1beta3 conversions, util/version.go) it mirrors.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml

from kbootd.cli.main import main
from kbootd.config.load import load_file
from kbootd.config.migrate import migrate, validate
from kbootd.config.model import JoinConfig
from kbootd.errors import SecurityError, ValidationError
from kbootd.images import images_for
from tests.shared import FIXTURES

KUBEADM = FIXTURES / "kubeadm"
B4 = "apiVersion: kubeadm.k8s.io/v1beta4\n"
B3 = "apiVersion: kubeadm.k8s.io/v1beta3\n"
INIT4 = B4 + "kind: InitConfiguration\n"
CLUSTER4 = B4 + "kind: ClusterConfiguration\n"
INIT3 = B3 + "kind: InitConfiguration\n"
CLUSTER3 = B3 + "kind: ClusterConfiguration\n"
JOIN_TOKEN = ("discovery:\n  bootstrapToken:\n    token: abcdef.0123456789abcdef\n"
              "    apiServerEndpoint: 10.0.0.10:6443\n    unsafeSkipCAVerification: true\n")
JOIN4 = B4 + "kind: JoinConfiguration\n"
JOIN3 = B3 + "kind: JoinConfiguration\n"


def load(text: str, role: str = "init", warnings: list[str] | None = None):
    return load_file("k.yaml", role, (warnings if warnings is not None else []).append, text=text)


def write(tmp_path: Path, text: str, name: str = "k.yaml") -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


# --- group 1: kubeadm.k8s.io/v1beta3 with kubeadm's conversions --------------------------

def test_v1beta3_cluster_converts_like_kubeadm():
    """Convert_v1beta3_ControlPlaneComponent/LocalEtcd/NodeRegistrationOptions (convertToArgs: maps
    become lists sorted by name) and SetConversionTimeoutControlPlane."""
    w: list[str] = []
    c = load(INIT3 + "nodeRegistration:\n  kubeletExtraArgs:\n    v: 4\n    node-ip: 10.0.0.10\n---\n"
             + CLUSTER3 + "apiServer:\n  timeoutForControlPlane: 10m\n  extraArgs:\n    profiling: 'false'\n"
             "    audit-log-maxage: '30'\n  certSANs: [k.example.com]\n"
             "controllerManager:\n  extraArgs:\n    node-cidr-mask-size: '24'\n"
             "etcd:\n  local:\n    dataDir: /var/lib/etcd2\n    extraArgs:\n      quota-backend-bytes: '8589934592'\n"
             "dns:\n  imageRepository: r.example.com/dns\n", warnings=w)
    assert c.node.kubelet_extra_args == (("node-ip", "10.0.0.10"), ("v", "4"))
    assert c.cluster.api_server.extra_args == (("audit-log-maxage", "30"), ("profiling", "false"))
    assert c.cluster.controller_manager.extra_args == (("node-cidr-mask-size", "24"),)
    assert c.cluster.etcd_local.extra_args == (("quota-backend-bytes", "8589934592"),)
    assert c.cluster.etcd_local.data_dir == "/var/lib/etcd2"
    assert c.timeouts.control_plane_component_health_check == 600
    assert c.cluster.encryption_algorithm == "RSA-2048"  # v1beta3 has none: kubeadm's default
    assert c.cluster.api_server_cert_sans == ("k.example.com",)
    # validateSupportedVersion: a deprecation warning per document, naming the migrate command
    dep = [m for m in w if "deprecated API spec" in m]
    assert len(dep) == 2 and all("kbootd config migrate --old-config" in m for m in dep)


V1BETA3_CASES = [
    # (document, role, expected model values or error, the kubeadm rule)
    (JOIN3 + JOIN_TOKEN.replace("discovery:\n", "discovery:\n  timeout: 2m\n"), "join",
     lambda c: c.timeouts.discovery == 120, "Convert_v1beta3_JoinConfiguration: discovery.timeout -> timeouts.discovery"),
    (JOIN3 + JOIN_TOKEN, "join", lambda c: c.timeouts.discovery == 300, "SetDefaultTimeouts for a JoinConfiguration"),
    (CLUSTER3 + "apiServer:\n  timeoutForControlPlane: 0s\n", "init",
     lambda c: c.timeouts.control_plane_component_health_check == 240,
     "Convert_v1beta3_ClusterConfiguration: a zero timeoutForControlPlane keeps the default"),
    (INIT3 + "timeouts:\n  discovery: 1m\n", "init", "unknown field 'timeouts'",
     "strict decoding: timeouts is v1beta4's"),
    (CLUSTER3 + "encryptionAlgorithm: ECDSA-P256\n", "init", "unknown field 'encryptionAlgorithm'",
     "strict decoding: encryptionAlgorithm is v1beta4's"),
    (CLUSTER3 + "apiServer:\n  extraEnvs: []\n", "init", "unknown field 'extraEnvs'",
     "Convert_v1beta3_ControlPlaneComponent: extraEnvs is v1beta4's"),
    (INIT3 + "nodeRegistration:\n  imagePullSerial: false\n", "init", "unknown field 'imagePullSerial'",
     "Convert_v1beta3_NodeRegistrationOptions: imagePullSerial is v1beta4's"),
    (CLUSTER3 + "apiServer:\n  extraArgs:\n  - name: a\n    value: b\n", "init", "expected a mapping of flag names",
     "v1beta3 extraArgs is map[string]string"),
    (INIT3 + "skipPhases: [addon/kube-proxy]\n", "init", lambda c: c.skip_phases == ("addon/kube-proxy",),
     "autoConvert_v1beta3_InitConfiguration: skipPhases"),
]


@pytest.mark.parametrize("text,role,expect,rule", V1BETA3_CASES, ids=[c[3] for c in V1BETA3_CASES])
def test_v1beta3_table(text, role, expect, rule):
    if isinstance(expect, str):
        with pytest.raises(ValidationError, match=expect):
            load(text, role)
    else:
        assert expect(load(text, role)), rule


def test_v1beta3_and_v1beta4_give_the_same_model():
    b3 = load(INIT3 + "localAPIEndpoint:\n  advertiseAddress: 10.0.0.10\n  bindPort: 6443\n"
              "nodeRegistration:\n  name: cp-1\n  kubeletExtraArgs:\n    v: '2'\n---\n"
              + CLUSTER3 + "networking:\n  podSubnet: 10.244.0.0/16\n"
              "scheduler:\n  extraArgs:\n    bind-address: 0.0.0.0\n")
    b4 = load(INIT4 + "localAPIEndpoint:\n  advertiseAddress: 10.0.0.10\n  bindPort: 6443\n"
              "nodeRegistration:\n  name: cp-1\n  kubeletExtraArgs:\n  - name: v\n    value: '2'\n---\n"
              + CLUSTER4 + "networking:\n  podSubnet: 10.244.0.0/16\n"
              "scheduler:\n  extraArgs:\n  - name: bind-address\n    value: 0.0.0.0\n")
    assert b3.cluster == b4.cluster and b3.node == b4.node and b3.timeouts == b4.timeouts
    j3 = load(JOIN3 + JOIN_TOKEN, "join")
    j4 = load(JOIN4 + JOIN_TOKEN, "join")
    assert j3 == j4


def _as_v1beta3(v1beta4_text: str) -> str:
    """kubeadm's recorded v1beta4 defaults written as a v1beta3 user would (without v1beta4's fields)."""
    out = []
    for d in yaml.safe_load_all(v1beta4_text):
        d["apiVersion"] = "kubeadm.k8s.io/v1beta3"
        d.pop("timeouts", None)
        for k in ("caCertificateValidityPeriod", "certificateValidityPeriod", "encryptionAlgorithm", "proxy"):
            d.pop(k, None)
        if "nodeRegistration" in d:
            d["nodeRegistration"].pop("imagePullSerial")
        out.append(yaml.safe_dump(d))
    return "---\n".join(out)


def test_config_migrate_v1beta3_gives_kubeadms_recorded_init_defaults(tmp_path, capsys):
    """kubeadm config migrate: read, default, convert, validate, write v1beta4. Compared with
    kubeadm v1.32's recorded `config print init-defaults`, but for kubeadm's dynamic defaults:
    the version is normalized (v1.32.0) and an init node gets the control-plane taint."""
    recorded = (KUBEADM / "print-init-defaults.yaml").read_text()
    old = write(tmp_path, _as_v1beta3(recorded))
    assert main(["config", "migrate", "--old-config", old]) == 0
    got = list(yaml.safe_load_all(capsys.readouterr().out))
    want = list(yaml.safe_load_all(recorded))
    want[0]["nodeRegistration"]["taints"] = [{"effect": "NoSchedule", "key": "node-role.kubernetes.io/control-plane"}]
    want[1]["kubernetesVersion"] = "v1.32.0"
    assert got == want


def test_config_migrate_v1beta3_join_gives_kubeadms_recorded_join_defaults(tmp_path):
    recorded = (KUBEADM / "print-join-defaults.yaml").read_text()
    old = write(tmp_path, _as_v1beta3(recorded))
    new = tmp_path / "new.yaml"
    assert main(["config", "migrate", "--old-config", old, "--new-config", str(new)]) == 0
    assert list(yaml.safe_load_all(new.read_text())) == list(yaml.safe_load_all(recorded))
    assert stat.S_IMODE(new.stat().st_mode) == 0o600  # the file holds the token, as the old one did


def test_config_migrate_output_reads_back_to_the_same_model(tmp_path):
    text = (INIT3 + "bootstrapTokens:\n- token: abcdef.0123456789abcdef\n  ttl: 2h\n  description: x\n"
            "nodeRegistration:\n  taints: []\n  criSocket: unix:///run/crio/crio.sock\n  kubeletExtraArgs:\n    v: '2'\n---\n"
            + CLUSTER3 + "controlPlaneEndpoint: lb.example.com\nnetworking:\n  podSubnet: 10.244.0.0/16\n"
            "apiServer:\n  timeoutForControlPlane: 7m\n  extraArgs:\n    b: '1'\n    a: '2'\n")
    before = load(text)
    after = load(migrate("k.yaml", lambda m: None, text=text))
    assert after.cluster == before.cluster and after.timeouts == before.timeouts
    assert after.node == before.node and after.bootstrap_tokens == before.bootstrap_tokens


def test_config_migrate_v1alpha1_moves_the_specs_fields(tmp_path):
    warned: list[str] = []
    text = ("apiVersion: kubeadm.k8s.io/v1alpha1\nkind: MasterConfiguration\n"
            "authorizationModes: [Node, RBAC, Webhook]\ncloudProvider: external\n"
            "unifiedControlPlaneImage: gcr.io/google_containers/hyperkube:v1.32.0\n")
    docs = list(yaml.safe_load_all(migrate("m.yaml", warned.append, text=text)))
    api = {a["name"]: a["value"] for a in docs[1]["apiServer"]["extraArgs"]}
    assert api == {"authorization-mode": "Node,RBAC,Webhook", "cloud-provider": "external"}
    assert docs[1]["controllerManager"]["extraArgs"] == [{"name": "cloud-provider", "value": "external"}]
    assert any("unifiedControlPlaneImage" in m for m in warned)


def test_config_migrate_refuses_what_init_refuses(tmp_path, capsys):
    old = write(tmp_path, CLUSTER3 + "certificatesDir: relative/pki\n")
    assert main(["config", "migrate", "--old-config", old]) == 3
    assert "certificatesDir" in capsys.readouterr().err
    assert main(["config", "migrate", "--old-config", str(tmp_path / "missing.yaml")]) == 3
    assert "--old-config" in capsys.readouterr().err


def test_config_validate_prints_ok_and_fails_with_exit_3(tmp_path, capsys):
    """kubeadm config validate: "ok"; any problem (strict decoding included) is an error."""
    good = write(tmp_path, (KUBEADM / "init-basic" / "config.yaml").read_text())
    assert main(["config", "validate", "--config", good]) == 0
    assert capsys.readouterr().out == "ok\n"
    join = write(tmp_path, (KUBEADM / "print-join-defaults.yaml").read_text(), "j.yaml")
    assert main(["config", "validate", "--config", join]) == 0
    bad = write(tmp_path, CLUSTER4 + "networking:\n  serviceSubnet: 10.0.0.0/8\n", "bad.yaml")
    assert main(["config", "validate", "--config", bad]) == 3
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "serviceSubnet" in err and "too large" in err


# --- group 2: kubeadm's rules that kbootd lacked --------------------------------------------

CM = "controllerManager:\n  extraArgs:\n"
REFUSED = [
    # (document(s), role, error pattern, kubeadm rule)
    (CLUSTER4 + "networking:\n  podSubnet: 10.244.0.0/25\n", "init", "smaller than a node subnet",
     "ValidatePodSubnetNodeMask: mask 25 > default node mask 24"),
    (CLUSTER4 + "networking:\n  podSubnet: 10.244.0.0/16\n" + CM + "  - name: node-cidr-mask-size-ipv4\n    value: '15'\n",
     "init", "smaller than a node subnet", "ValidatePodSubnetNodeMask: node-cidr-mask-size-ipv4"),
    (CLUSTER4 + "networking:\n  podSubnet: 172.16.0.0/12\n" + CM + "  - name: node-cidr-mask-size-ipv4\n    value: '29'\n",
     "init", "differ by more than 16", "ValidatePodSubnetNodeMask: PodSubnetNodeMaskMaxDiff"),
    (CLUSTER4 + "networking:\n  podSubnet: 10.244.0.0/16\n" + CM + "  - name: node-cidr-mask-size-ipv4\n    value: big\n",
     "init", "node-cidr-mask-size-ipv4: 'big' is not an integer", "getClusterNodeMask: integer values"),
    (CLUSTER4 + "networking:\n  podSubnet: 10.244.0.0/16,fd00:1::/120\n", "init", r"fd00:1::/120 \(mask 120\)",
     "ValidatePodSubnetNodeMask: per family in dual-stack (IPv6 default 64)"),
    (CLUSTER4 + "networking:\n  podSubnet: 10.244.0.0/16,fd00:1::/56\n" + CM
     + "  - name: node-cidr-mask-size-ipv6\n    value: '80'\n", "init", "differ by more than 16",
     "ValidatePodSubnetNodeMask: node-cidr-mask-size-ipv6"),
    (CLUSTER4 + "networking:\n  podSubnet: 10.244.0.0/29\n", "init", "too small; the minimum is 14",
     "ValidateIPNetFromString: MinimumAddressesInPodSubnet"),
    (CLUSTER4 + "networking:\n  serviceSubnet: 10.0.0.0/8\n", "init", "too large",
     "ValidateServiceSubnetSize: MaximumBitsForServiceSubnet (IPv4)"),
    (CLUSTER4 + "networking:\n  serviceSubnet: fd00::/100\n", "init", "too large",
     "ValidateServiceSubnetSize: MaximumBitsForServiceSubnet (IPv6)"),
    (CLUSTER4 + "apiServer:\n  certSANs: ['**.example.com']\n", "init", "one leading wildcard",
     "ValidateCertSANs: IsWildcardDNS1123Subdomain"),
    (CLUSTER4 + "apiServer:\n  certSANs: ['*.*.example.com']\n", "init", "one leading wildcard",
     "ValidateCertSANs: one wildcard label"),
    (CLUSTER4 + "etcd:\n  local:\n    serverCertSANs: ['a.*.example.com']\n", "init", "one leading wildcard",
     "ValidateEtcd: ValidateCertSANs(serverCertSANs)"),
    (INIT4 + "nodeRegistration:\n  ignorePreflightErrors: [all, Swap]\n", "init", "'all' is used",
     "ValidateIgnorePreflightErrors"),
    (JOIN4 + "nodeRegistration:\n  ignorePreflightErrors: [Swap, ALL]\n" + JOIN_TOKEN, "join", "'all' is used",
     "ValidateIgnorePreflightErrors: case-insensitive"),
    (JOIN4 + JOIN_TOKEN + "  file:\n    kubeConfigPath: /etc/kubernetes/discovery.conf\n", "join",
     "either discovery.bootstrapToken or discovery.file", "ValidateDiscovery: bootstrapToken and file cannot both be set"),
    (CLUSTER4 + "etcd:\n  external:\n    endpoints: [10.0.0.20:2379]\n", "init", "not a URL with a scheme",
     "ValidateURLs: the URL without scheme is not allowed"),
    (CLUSTER4 + "etcd:\n  external:\n    endpoints: [http://10.0.0.20:2379]\n    caFile: /etc/etcd/ca.crt\n",
     "init", "must use https://", "ValidateURLs: requireHTTPS with TLS files"),
    (CLUSTER4 + "etcd:\n  external:\n    endpoints: ['https://10.0.0.20:99999']\n", "init", "not a URL",
     "ValidateURLs: URL parse error"),
    (CLUSTER4 + "etcd:\n  external:\n    endpoints: [https://e:2379]\n    certFile: /c.crt\n    caFile: /ca.crt\n",
     "init", "both certFile and keyFile", "ValidateEtcd: both or none of certFile/keyFile"),
    (CLUSTER4 + "etcd:\n  external:\n    endpoints: [https://e:2379]\n    certFile: /c.crt\n    keyFile: /c.key\n",
     "init", "need caFile", "ValidateEtcd: cert and key require the CA"),
    (CLUSTER4 + "imageRepository: a.b c\n", "init", "not a valid image repository", "ValidateImageRepository: space"),
    (CLUSTER4 + "imageRepository: https://a.b.c:5000\n", "init", "not a valid image repository",
     "ValidateImageRepository: scheme"),
    (CLUSTER4 + "imageRepository: a//b/c\n", "init", "not a valid image repository",
     "ValidateImageRepository: empty path component"),
    (CLUSTER4 + "imageRepository: registry.example.com/UPPER\n", "init", "not a valid image repository",
     "ValidateImageRepository: path components are lower case"),
    (CLUSTER4 + "dns:\n  imageRepository: a//b\n", "init", "dns.imageRepository", "ValidateDNS: ValidateImageRepository"),
    (CLUSTER4 + "etcd:\n  local:\n    imageRepository: 'x y'\n", "init", "not a valid image repository",
     "ValidateEtcd: local.imageRepository"),
    (CLUSTER4 + "kubernetesVersion: ci/foo\n", "init", "is not a Kubernetes version", "KubernetesReleaseVersion: ci/ label"),
    (CLUSTER4 + "kubernetesVersion: release/v1.32.0!\n", "init", "is not a Kubernetes version",
     "KubernetesReleaseVersion: kubeBucketPrefixes"),
    (CLUSTER4 + "kubernetesVersion: latest-0\n", "init", "is not a Kubernetes version",
     "KubernetesReleaseVersion: kubeReleaseLabelRegex (latest-[1-9])"),
    (CLUSTER4 + "kubernetesVersion: stable-1.0\n", "init", "is not a Kubernetes version",
     "KubernetesReleaseVersion: kubeReleaseLabelRegex (stable-1.[1-9])"),
    (CLUSTER4 + "kubernetesVersion: ci/\n", "init", "is not a Kubernetes version",
     "KubernetesReleaseVersion: empty label"),
    (CLUSTER4 + "networking:\n  podSubnet: 10.0.1.15\n", "init", "is an address, not a CIDR",
     "ValidateIPNetFromString: ParseCIDRs refuses an address (TestValidateInitConfiguration)"),
    (CLUSTER4 + "networking:\n  serviceSubnet: 10.0.0.16/12,10.0.0.16/12\n", "init", "one IPv4 and one IPv6",
     "ValidateIPNetFromString: IsDualStackCIDRs"),
    (CLUSTER4 + "networking:\n  serviceSubnet: 2001:db8::/125\n", "init", "too small; the minimum is 10",
     "ValidateIPNetFromString: MinimumAddressesInServiceSubnet (IPv6)"),
    (CLUSTER4 + "apiServer:\n  certSANs: ['*']\n", "init", "one leading wildcard", "ValidateCertSANs: a bare '*'"),
    (CLUSTER4 + "apiServer:\n  certSANs: ['???&?.garbage']\n", "init", "one leading wildcard",
     "ValidateCertSANs: not a DNS name or IP"),
    (CLUSTER4 + "imageRepository: a.b.c/d//e\n", "init", "not a valid image repository",
     "ValidateImageRepository: empty component after the domain"),
    (CLUSTER4 + "imageRepository: a..b\n", "init", "not a valid image repository",
     "ValidateImageRepository: empty domain component"),
    (INIT4 + "bootstrapTokens:\n- token: abcdef.0123456789abcdef\n  usages: [signing]\n  groups:\n"
     "  - system:bootstrappers:x\n", "init", "need the 'authentication' usage", "ValidateTokenGroups"),
    (INIT4 + "bootstrapTokens:\n- token: abcdef.0123456789abcdef\n  usages: [signing]\n", "init",
     "need the 'authentication' usage", "ValidateTokenGroups after SetDefaults_BootstrapToken's groups"),
]


# kubeadm's rules kbootd already applied before this issue: guards, so the new rules did not loosen them.
GUARDS = [
    (CLUSTER4 + "networking:\n  serviceSubnet: 10.0.0.16/12,2001:db8::/98,2001:db9::/98\n", "init", "not a CIDR",
     "ValidateIPNetFromString: at most two CIDRs"),
    (CLUSTER4 + "controlPlaneEndpoint: cp.k8s.io:-1\n", "init", "not a port", "ValidateHostPort: bad port"),
    (CLUSTER4 + "controlPlaneEndpoint: cp_k8s.io\n", "init", "not host:port", "ValidateHostPort: bad host"),
    (INIT4 + "localAPIEndpoint:\n  advertiseAddress: 1.2.34\n", "init", "not an IP address",
     "ValidateAPIEndpoint: ValidateIPFromString"),
    (INIT4 + "localAPIEndpoint:\n  advertiseAddress: 2001:db7:1\n", "init", "not an IP address",
     "ValidateAPIEndpoint: ValidateIPFromString (IPv6)"),
    (INIT4 + "localAPIEndpoint:\n  bindPort: 65536\n", "init", "not a port", "ValidateAPIEndpoint: ValidatePort"),
    (INIT4 + "nodeRegistration:\n  imagePullPolicy: Sometimes\n", "init", "not one of", "ValidateImagePullPolicy"),
    (CLUSTER4 + "apiServer:\n  extraArgs:\n  - value: x\n", "init", "name.*required", "ValidateExtraArgs: no name"),
    (CLUSTER4 + "encryptionAlgorithm: foo\n", "init", "not supported", "ValidateEncryptionAlgorithm"),
    (CLUSTER4 + "featureGates:\n  NotAGate: true\n", "init", "unknown feature gate", "ValidateFeatureGates"),
    (CLUSTER4 + "networking:\n  dnsDomain: Not_A_Domain\n", "init", "not a DNS domain",
     "ValidateNetworking: IsDNS1123Subdomain(dnsDomain)"),
    (JOIN4 + "discovery:\n  bootstrapToken:\n    token: abcdef.0123456789abcdef\n    apiServerEndpoint: 10.0.0.10:6443\n",
     "join", "pin the cluster CA", "ValidateDiscoveryBootstrapToken: caCertHashes or unsafeSkipCAVerification"),
    (JOIN4 + "discovery:\n  bootstrapToken:\n    token: abcdef.0123456789abcdef\n    unsafeSkipCAVerification: true\n",
     "join", "at least one API server endpoint", "ValidateDiscoveryBootstrapToken: APIServerEndpoint is not set"),
    (JOIN4 + "discovery:\n  bootstrapToken:\n    token: abcdef.1234567890123456@foobar\n", "join",
     "token", "ValidateToken"),
    (JOIN4 + "discovery: {}\n", "join", "join needs discovery", "ValidateDiscovery: bootstrapToken or file must be set"),
]


@pytest.mark.parametrize("text,role,pattern,rule", GUARDS, ids=[c[3] for c in GUARDS])
def test_kubeadm_rules_kbootd_already_had(text, role, pattern, rule):
    with pytest.raises(ValidationError, match=pattern):
        load(text, role)


@pytest.mark.parametrize("text,role,pattern,rule", REFUSED, ids=[c[3] for c in REFUSED])
def test_kubeadm_refuses_so_does_kbootd(text, role, pattern, rule):
    with pytest.raises(ValidationError, match=pattern) as e:
        load(text, role)
    assert "k.yaml" in str(e.value)


# kubeadm accepts these: guards that the new rules refuse no more than kubeadm does (they passed before too).
ACCEPTED_RULES = [
    (CLUSTER4 + "networking:\n  podSubnet: 10.244.0.0/25\n" + CM + "  - name: allocate-node-cidrs\n    value: 'false'\n",
     lambda c: c.cluster.networking.pod_subnet == "10.244.0.0/25", "ValidateNetworking: allocate-node-cidrs=false"),
    (CLUSTER4 + "networking:\n  podSubnet: 10.244.0.0/25\n" + CM + "  - name: node-cidr-mask-size-ipv4\n    value: '24'\n"
     "  - name: node-cidr-mask-size-ipv4\n    value: '26'\n", lambda c: True, "GetArgValue(-1): the last occurrence"),
    (CLUSTER4 + "apiServer:\n  certSANs: ['*.example.com', 10.0.0.1, 'fd00::1']\n",
     lambda c: c.cluster.api_server_cert_sans == ("*.example.com", "10.0.0.1", "fd00::1"), "ValidateCertSANs"),
    (CLUSTER4 + "etcd:\n  external:\n    endpoints: [http://10.0.0.20:2379]\n",
     lambda c: c.cluster.etcd_external.endpoints == ("http://10.0.0.20:2379",), "ValidateURLs: http without TLS files"),
    (CLUSTER4 + "imageRepository: registry.example.com:5000/k8s\n",
     lambda c: c.cluster.image_repository == "registry.example.com:5000/k8s", "ValidateImageRepository: host:port/path"),
    (CLUSTER4 + "kubernetesVersion: release/v1.32.1\n", lambda c: c.cluster.kubernetes_version == "v1.32.1",
     "KubernetesReleaseVersion: an exact build under a bucket"),
    (CLUSTER4 + "kubernetesVersion: ci/latest-1.32\n", lambda c: c.cluster.kubernetes_version == "v1.32.0",
     "KubernetesReleaseVersion: a ci/ label (pinned without network)"),
    (INIT4 + "nodeRegistration:\n  ignorePreflightErrors: [ALL]\n",
     lambda c: c.node.ignore_preflight_errors == ("ALL",), "ValidateIgnorePreflightErrors: all alone"),
]


@pytest.mark.parametrize("text,check,rule", ACCEPTED_RULES, ids=[c[2] for c in ACCEPTED_RULES])
def test_kubeadm_accepts_so_does_kbootd(text, check, rule):
    assert check(load(text))


def test_image_repository_flag_and_ignore_preflight_flag_with_the_file(tmp_path, capsys):
    assert main(["init", "--image-repository", "https://r.example.com", "--dry-run", "--root", str(tmp_path)]) == 3
    assert "--image-repository" in capsys.readouterr().err
    cfg = write(tmp_path, INIT4 + "nodeRegistration:\n  ignorePreflightErrors: [Swap]\n")
    assert main(["init", "--config", cfg, "--ignore-preflight-errors", "all", "--dry-run",
                 "--root", str(tmp_path / "r")]) == 3
    assert "'all' is used" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


# --- group 3: what kubeadm accepts and kbootd refused ----------------------------------------

ACCEPTED = [
    (CLUSTER4 + "networking:\n  serviceSubnet: 10.96.0.1/12\n",
     lambda c: c.cluster.networking.service_subnet == "10.96.0.0/12", "ValidateIPNetFromString: ParseCIDRs keeps host bits"),
    (CLUSTER4 + "networking:\n  podSubnet: 10.0.0.16/12\n",
     lambda c: c.cluster.networking.pod_subnet == "10.0.0.0/12", "ValidateIPNetFromString: pod subnet host bits"),
    (INIT4 + "nodeRegistration:\n  name: ''\n", lambda c: c.node.name is None, "SetDefaults: name '' is the host name"),
    (INIT4 + "nodeRegistration:\n  criSocket: ''\n", lambda c: c.node.cri_socket is None,
     "SetNodeRegistrationDynamicDefaults: criSocket '' is detected"),
    (INIT4 + "localAPIEndpoint:\n  advertiseAddress: ''\n", lambda c: c.advertise_address is None,
     "SetAPIEndpointDynamicDefaults: advertiseAddress '' is detected"),
    (CLUSTER4 + "networking:\n  podSubnet: ''\n", lambda c: c.cluster.networking.pod_subnet is None,
     "ValidateNetworking: an empty podSubnet is unset"),
    (INIT4 + "nodeRegistration:\n  imagePullPolicy: ''\n", lambda c: c.node.image_pull_policy == "IfNotPresent",
     "ValidateImagePullPolicy: '' is allowed (defaulted)"),
    (INIT4 + "localAPIEndpoint:\n  bindPort: 0\n", lambda c: c.bind_port == 6443,
     "SetDefaults_APIEndpoint: bindPort 0 is 6443"),
    (CLUSTER4 + "imageRepository: ''\n", lambda c: c.cluster.image_repository == "registry.k8s.io",
     "SetDefaults_ClusterConfiguration: imageRepository ''"),
    (CLUSTER4 + "kubernetesVersion: 1.32.0_coreos.0\n",
     lambda c: c.cluster.kubernetes_version == "v1.32.0_coreos.0", "kubeReleaseRegex: '_' in the suffix"),
    (CLUSTER4 + "kubernetesVersion: v1.32.0+abc\n",
     lambda c: images_for(c.cluster).kube_apiserver.endswith(":v1.32.0_abc"), "KubernetesVersionToImageTag"),
    (CLUSTER4 + "etcd:\n  external:\n    endpoints: [https://10.0.0.20:2379]\n    caFile: /etc/etcd/ca.crt\n",
     lambda c: c.cluster.etcd_external.ca_file == "/etc/etcd/ca.crt", "ValidateEtcd: a CA without a client pair"),
    (INIT4 + "bootstrapTokens:\n- ttl: 1h\n", lambda c: c.bootstrap_tokens[0].token is None
     and c.bootstrap_tokens[0].ttl == 3600, "SetBootstrapTokensDynamicDefaults: no token means a generated one"),
]


@pytest.mark.parametrize("text,check,rule", ACCEPTED, ids=[c[2] for c in ACCEPTED])
def test_kubeadm_accepts_what_kbootd_refused(text, check, rule):
    assert check(load(text))


def test_host_bits_are_normalized_with_a_warning():
    w: list[str] = []
    load(CLUSTER4 + "networking:\n  serviceSubnet: 10.96.0.1/12\n", warnings=w)
    assert any("host bits set; using the network 10.96.0.0/12" in m for m in w)


# --- group 4: paths checked with the configuration, before any phase ------------------------

PATHS = [
    (CLUSTER4 + "certificatesDir: ./tmp\n", "init", "certificatesDir: './tmp' is not an absolute path",
     "ValidateClusterConfiguration: ValidateAbsolutePath(certificatesDir)"),
    (JOIN4 + "caCertPath: relative\n" + JOIN_TOKEN, "join", "caCertPath: 'relative'",
     "ValidateJoinConfiguration: caCertPath absolute"),
    (JOIN4 + "caCertPath: /etc/kubernetes/pki/ca.pem\n" + JOIN_TOKEN, "join", "end in .crt",
     "ValidateJoinConfiguration: caCertPath ends in .crt"),
    (CLUSTER4 + "etcd:\n  local:\n    dataDir: var/lib/etcd\n", "init", "dataDir: 'var/lib/etcd' is not an absolute",
     "ValidateEtcd: ValidateAbsolutePath(local.dataDir)"),
    (CLUSTER4 + "etcd:\n  external:\n    endpoints: [https://e:2379]\n    caFile: ca.crt\n", "init",
     "caFile: 'ca.crt' is not an absolute", "ValidateEtcd: ValidateAbsolutePath(external.caFile)"),
    ("apiVersion: kubeadm.k8s.io/v1alpha1\nkind: MasterConfiguration\ncertificatesDir: pki\n", "init",
     "is not an absolute path", "ValidateAbsolutePath (the spec's v1alpha1)"),
    ("apiVersion: kubeadm.k8s.io/v1alpha1\nkind: NodeConfiguration\ncaCertPath: ca.crt\ndiscoveryFile: /d.conf\n",
     "join", "must be absolute", "caCertPath (the spec's v1alpha1)"),
]


@pytest.mark.parametrize("text,role,pattern,rule", PATHS, ids=[c[3] for c in PATHS])
def test_relative_paths_are_input_errors(text, role, pattern, rule):
    with pytest.raises(ValidationError, match=pattern) as e:
        load(text, role)
    assert "k.yaml:" in str(e.value)


def test_relative_discovery_file_is_read_against_the_working_directory(tmp_path, monkeypatch):
    """ValidateDiscoveryKubeConfigPath: a path without a scheme is a file (relative to the CWD)."""
    monkeypatch.chdir(tmp_path)
    c = load(JOIN4 + "discovery:\n  file:\n    kubeConfigPath: disc.conf\n", "join")
    assert isinstance(c, JoinConfig) and c.discovery_file == str(tmp_path / "disc.conf")


@pytest.mark.parametrize("argv,needle", [
    (["init", "--cert-dir", "rel/pki"], "--cert-dir: 'rel/pki' is not an absolute path"),
    (["init", "--config", "{cfg}"], "certificatesDir"),
])
def test_relative_paths_exit_3_before_any_phase(tmp_path, capsys, argv, needle):
    cfg = write(tmp_path, CLUSTER4 + "certificatesDir: ./tmp\n")
    root = tmp_path / "root"
    rc = main([a.replace("{cfg}", cfg) for a in argv] + ["--root", str(root)])
    out = capsys.readouterr()
    assert rc == 3 and needle in out.err and "internal error" not in out.err
    assert not root.exists() and "[preflight]" not in out.out  # no phase ran


# --- group 5: behaviour ----------------------------------------------------------------------

ENDPOINTS = [
    (INIT4 + "localAPIEndpoint:\n  bindPort: 4567\n---\n" + CLUSTER4 + "controlPlaneEndpoint: cp.k8s.io\n",
     "cp.k8s.io:4567", "GetControlPlaneEndpoint: no port takes bindPort"),
    (INIT4 + "localAPIEndpoint:\n  bindPort: 4567\n---\n" + CLUSTER4 + "controlPlaneEndpoint: cp.k8s.io:443\n",
     "cp.k8s.io:443", "GetControlPlaneEndpoint: an explicit port stays"),
    (INIT4 + "localAPIEndpoint:\n  bindPort: 4567\n---\n" + CLUSTER4 + "controlPlaneEndpoint: '[fd00::1]'\n",
     "[fd00::1]:4567", "GetControlPlaneEndpoint: IPv6 without a port"),
    (CLUSTER4 + "controlPlaneEndpoint: cp.k8s.io\n", "cp.k8s.io:6443", "GetControlPlaneEndpoint: default bindPort"),
    (CLUSTER3 + "controlPlaneEndpoint: cp.k8s.io\n---\n" + INIT3 + "localAPIEndpoint:\n  bindPort: 8443\n",
     "cp.k8s.io:8443", "GetControlPlaneEndpoint (v1beta3)"),
]


@pytest.mark.parametrize("text,want,rule", ENDPOINTS, ids=[c[2] for c in ENDPOINTS])
def test_control_plane_endpoint_takes_the_bind_port(text, want, rule):
    assert load(text).cluster.control_plane_endpoint == want


DISCOVERY_URLS = [
    ("https://u r l/file.conf", ValidationError, "bad host"),
    ("https://host.example.com:99999/c.conf", ValidationError, "not a valid HTTPS URL"),
    ("https://[::1/c.conf", ValidationError, "not a valid HTTPS URL"),
    ("ftp://host.example.com/c.conf", ValidationError, "scheme must be https"),
    ("http://host.example.com/c.conf", SecurityError, "plain-HTTP"),
]


@pytest.mark.parametrize("url,exc,pattern", DISCOVERY_URLS, ids=[c[0] for c in DISCOVERY_URLS])
def test_malformed_discovery_url_is_an_input_error_not_a_retry(url, exc, pattern):
    """ValidateDiscoveryKubeConfigPath: checked with the configuration (exit 3), never retried."""
    with pytest.raises(exc, match=pattern):
        load(JOIN4 + f"discovery:\n  file:\n    kubeConfigPath: '{url}'\n", "join")


def test_discovery_url_flag_exits_3(tmp_path, capsys):
    assert main(["join", "--discovery-file", "https://u r l/file.conf", "--root", str(tmp_path / "r")]) == 3
    assert "--discovery-file" in capsys.readouterr().err


def test_good_discovery_url_is_kept():
    c = load(JOIN4 + "discovery:\n  file:\n    kubeConfigPath: https://10.0.0.10:8443/cluster-info.yaml\n", "join")
    assert c.discovery_file == "https://10.0.0.10:8443/cluster-info.yaml"


KUBELET = "---\napiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
PROXY = "---\napiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"
STRICT = [
    (KUBELET + "cgroupDriver: systemd\ncgroupDriver: cgroupfs\n", "duplicate key 'cgroupDriver'",
     "VerifyUnmarshalStrict: duplicate field (KubeletConfiguration)"),
    (KUBELET + "cgroupDrvier: systemd\n", "KubeletConfiguration: unknown field 'cgroupDrvier'",
     "VerifyUnmarshalStrict: unknown field (KubeletConfiguration)"),
    (PROXY + "mode: ipvs\nmode: iptables\n", "duplicate key 'mode'",
     "VerifyUnmarshalStrict: duplicate field (KubeProxyConfiguration)"),
    (PROXY + "modes: ipvs\n", "KubeProxyConfiguration: unknown field 'modes'",
     "VerifyUnmarshalStrict: unknown field (KubeProxyConfiguration)"),
    (KUBELET + "evictionHard:\n  memory.available: 1%\n  memory.available: 2%\n",
     "duplicate key 'evictionHard.memory.available'", "VerifyUnmarshalStrict: nested duplicate"),
]


@pytest.mark.parametrize("extra,pattern,rule", STRICT, ids=[c[2] for c in STRICT])
def test_component_config_strictness_warns_on_init_and_fails_validate(tmp_path, extra, pattern, rule):
    text = INIT4 + "---\n" + CLUSTER4 + extra
    w: list[str] = []
    cfg = load(text, warnings=w)  # init/join: a warning, as kubeadm prints it
    assert cfg is not None and any(pattern in m for m in w), w
    with pytest.raises(ValidationError, match=pattern):
        validate(write(tmp_path, text), lambda m: None)


def test_clean_component_configs_have_no_findings(tmp_path):
    text = INIT4 + "---\n" + CLUSTER4 + KUBELET + "cgroupDriver: systemd\n" + PROXY + "mode: ipvs\n"
    w: list[str] = []
    load(text, warnings=w)
    assert w == []
    validate(write(tmp_path, text), lambda m: None)


def test_token_delete_dry_run_changes_nothing(tmp_path, capsys):
    assert main(["token", "delete", "abcdef", "--dry-run", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert '[dryrun] Would perform action DELETE on resource "secrets"' in out
    assert 'bootstrap token "abcdef" deleted' in out
    assert not any(tmp_path.iterdir())


VALIDITY = [
    ("certificateValidityPeriod: 9000h\n", "more than the recommended default for certificate expiration",
     "ValidateCertValidity: certificateValidityPeriod"),
    ("caCertificateValidityPeriod: 100000h\n", "more than the recommended default for CA certificate",
     "ValidateCertValidity: caCertificateValidityPeriod"),
    ("caCertificateValidityPeriod: 1000h\n", "cannot outlive their CA", "a leaf longer than its CA"),
]


@pytest.mark.parametrize("field_,pattern,rule", VALIDITY, ids=[c[2] for c in VALIDITY])
def test_validity_period_warnings(field_, pattern, rule):
    w: list[str] = []
    load(CLUSTER4 + field_, warnings=w)
    assert any(pattern in m for m in w), w


def test_default_validity_has_no_warning():
    w: list[str] = []
    load(CLUSTER4, warnings=w)
    assert w == []


def test_migrate_new_config_unwritable_is_exit_3(tmp_path, capsys):
    old = write(tmp_path, CLUSTER4)
    assert main(["config", "migrate", "--old-config", old, "--new-config", str(tmp_path / "no" / "x.yaml")]) == 3
    assert "--new-config" in capsys.readouterr().err
    assert os.path.exists(old)


@pytest.mark.parametrize("given", ["foo.conf", "/nowhere/foo.conf"])
def test_missing_discovery_file_exits_3_before_any_phase(tmp_path, monkeypatch, capsys, given):
    """ValidateDiscoveryKubeConfigPath: "not a valid HTTPS URL or a file on disk" (relative to the CWD)."""
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "root"
    rc = main(["join", "--discovery-file", given, "--root", str(root), "--ignore-preflight-errors", "all"])
    out = capsys.readouterr()
    assert rc == 3 and "--discovery-file" in out.err and "no such file" in out.err
    assert not root.exists() and "[preflight]" not in out.out


@pytest.mark.parametrize("text,where", [
    (CLUSTER4 + "networking:\n  serviceSubnet: 10.0.0.0/8\n", "k.yaml:4: ClusterConfiguration.networking.serviceSubnet"),
    (CLUSTER4 + "networking:\n  dnsDomain: cluster.local\n  podSubnet: 10.244.0.0/25\n",
     "k.yaml:5: ClusterConfiguration.networking.podSubnet"),
    (CLUSTER4 + "networking:\n  podSubnet: 10.244.0.0/16\n" + CM + "  - name: node-cidr-mask-size-ipv4\n    value: big\n",
     "k.yaml:5: ClusterConfiguration.controllerManager.extraArgs.node-cidr-mask-size-ipv4"),
    (CLUSTER4 + "etcd:\n  external:\n    endpoints: [e:2379]\n", "k.yaml:5: ClusterConfiguration.etcd.external.endpoints"),
])
def test_new_rules_name_file_line_and_field(text, where):
    with pytest.raises(ValidationError) as e:
        load(text)
    assert str(e.value).startswith(where + ":"), str(e.value)


def test_daemon_document_embeds_v1beta3_and_injects_its_discovery(tmp_path):
    """The daemon's kbootd document may embed a v1beta3 JoinConfiguration; its own token,
    endpoint and pin still go into it (as for v1beta4)."""
    from kbootd.daemon import document
    from kbootd.daemon.inputs import Gathered, Source
    from kbootd.hostio import Host
    from kbootd.paths import Paths

    embedded = (JOIN3 + "nodeRegistration:\n  name: worker-1\n  kubeletExtraArgs:\n    v: '2'\n"
                "discovery:\n  timeout: 1m\n  bootstrapToken:\n    apiServerEndpoint: 10.0.0.10:6443\n")
    data = {"role": "worker", "token": "zzzzzz.0123456789abcdef", "unsafeSkipCAVerification": "true",
            "kubeadm": embedded}
    name = "/etc/kbootd/kbootd.yaml"
    src = Source(name, name, data, {k: f"{name}: {k}" for k in data}, header=False)
    host = Host(Paths.rooted(tmp_path))
    warned: list[str] = []
    cfg = document.build(document.merge(Gathered([src], ["(test)"]), host), host, warned.append)
    assert cfg.discovery_token.id == "zzzzzz" and cfg.api_server_endpoints == ("10.0.0.10:6443",)
    assert cfg.node.kubelet_extra_args == (("v", "2"),)
    assert any("deprecated API spec" in m for m in warned)
