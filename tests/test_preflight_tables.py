"""Which checks init and join run, by kubeadm name and severity (kbootd/preflight/tables.py)."""

from __future__ import annotations

import pytest

from kbootd.config.model import ClusterConfig, ExternalEtcd, JoinControlPlane, LocalEtcd, Networking
from kbootd.preflight.runner import ERROR, WARNING
from kbootd.preflight.tables import exec_checks, init_checks, join_checks
from tests.preflight_fakes import context, init_config, join_config

EXTERNAL = ClusterConfig(etcd_local=None, etcd_external=ExternalEtcd(
    endpoints=("https://10.0.0.5:2379",), ca_file="/etc/etcd/ca.crt", cert_file="/etc/etcd/c.crt",
    key_file="/etc/etcd/c.key"))
ETCD_ONLY = {"Port-2379", "Port-2380", "DirAvailable--var-lib-etcd"}
COMMON = {"IsPrivilegedUser", "CRI", "Swap", "SystemVerification", "Hostname", "KubeletVersion",
          "Service-Kubelet", "Port-10250", "FileExisting-mount", "FileExisting-nsenter",
          "FileContent--proc-sys-net-ipv4-ip_forward"}
INIT_ONLY = {"NumCPU", "Mem", "Firewalld", "Port-6443", "Port-10259", "Port-10257",
             "FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml",
             "FileAvailable--etc-kubernetes-manifests-kube-controller-manager.yaml",
             "FileAvailable--etc-kubernetes-manifests-kube-scheduler.yaml",
             "FileAvailable--etc-kubernetes-manifests-etcd.yaml", "HTTPProxyCIDR"}
JOIN_ONLY = {"FileAvailable--etc-kubernetes-kubelet.conf", "FileAvailable--etc-kubernetes-bootstrap-kubelet.conf",
             "FileAvailable--etc-kubernetes-pki-ca.crt"}
# Existing kubeconfig files are the kubeconfig phase's business on init (reused when valid).
NOT_INIT = {"FileAvailable--etc-kubernetes-admin.conf", "FileAvailable--etc-kubernetes-kubelet.conf"}


def names(checks):
    return {ch.name for ch in checks}


def test_init_and_join_sets(root):
    init = names(init_checks(context(root)))
    join = names(join_checks(context(root, join=join_config())))
    assert COMMON | INIT_ONLY | ETCD_ONLY <= init
    assert not JOIN_ONLY & init
    assert COMMON | JOIN_ONLY <= join
    assert not (INIT_ONLY | ETCD_ONLY) & join
    assert not NOT_INIT & init


def test_external_etcd_drops_the_local_etcd_checks_and_checks_its_client_files(root):
    checks = init_checks(context(root, init=init_config(cluster=EXTERNAL)))
    assert not ETCD_ONLY & names(checks)
    assert [ch.severity for ch in checks if ch.name == "ExternalEtcdClientCertificates"] == [ERROR] * 3


@pytest.mark.parametrize(("data_dir", "name"), [
    ("/var/lib/etcd", "DirAvailable--var-lib-etcd"),
    ("/data/etcd", "DirAvailable--data-etcd"),
])
def test_etcd_data_dir_comes_from_config(root, data_dir, name):
    cfg = init_config(cluster=ClusterConfig(etcd_local=LocalEtcd(data_dir=data_dir)))
    assert name in names(init_checks(context(root, init=cfg)))


@pytest.mark.parametrize(("bind_port", "expected"), [(6443, "Port-6443"), (8443, "Port-8443")])
def test_bind_port_comes_from_config(root, bind_port, expected):
    assert expected in names(init_checks(context(root, init=init_config(bind_port=bind_port))))


@pytest.mark.parametrize(("version", "errors", "warnings"), [
    ("v1.30.5", ["crictl", "conntrack", "ip", "iptables", "mount", "nsenter"], ["ethtool", "tc", "touch"]),
    ("v1.31.0", ["conntrack", "ip", "iptables", "mount", "nsenter"], ["crictl", "ethtool", "tc", "touch"]),
    ("v1.32.0", ["ip", "iptables", "mount", "nsenter"], ["crictl", "ethtool", "tc", "touch"]),
    ("v1.33.1", ["mount", "nsenter"], ["crictl", "touch"]),
])
def test_binaries_follow_kubeadms_history(version, errors, warnings):
    rows = exec_checks(version)
    assert [r.name.removeprefix("FileExisting-") for r in rows if r.severity == ERROR] == errors
    assert [r.name.removeprefix("FileExisting-") for r in rows if r.severity == WARNING] == warnings


IPV4 = "FileContent--proc-sys-net-ipv4-ip_forward"
IPV6 = "FileContent--proc-sys-net-ipv6-conf-default-forwarding"


@pytest.mark.parametrize(("service", "pod", "advertise", "expected"), [
    ("10.96.0.0/12", None, "10.0.0.10", {IPV4}),
    ("fd00:10:96::/108", None, "fd00::10", {IPV6}),
    ("10.96.0.0/12,fd00:10:96::/108", "10.244.0.0/16,fd00:10:244::/56", "10.0.0.10", {IPV4, IPV6}),
    ("fd00:10:96::/108", None, "10.0.0.10", {IPV4, IPV6}),
])
def test_init_forwarding_follows_the_address_families(root, service, pod, advertise, expected):
    cfg = init_config(cluster=ClusterConfig(networking=Networking(service_subnet=service, pod_subnet=pod)),
                      advertise_address=advertise)
    assert names(init_checks(context(root, init=cfg))) & {IPV4, IPV6} == expected


@pytest.mark.parametrize(("endpoints", "expected", "proxy_checked"), [
    (("10.0.0.10:6443",), {IPV4}, True),
    (("[fd00::10]:6443",), {IPV6}, True),
    (("cp.example.com:6443",), {IPV4}, True),
    ((), {IPV4}, False),  # file discovery
])
def test_join_forwarding_and_proxy_follow_the_endpoint(root, endpoints, expected, proxy_checked):
    checks = names(join_checks(context(root, join=join_config(api_server_endpoints=endpoints))))
    assert checks & {IPV4, IPV6} == expected
    assert ("HTTPProxy" in checks) is proxy_checked


def test_control_plane_join_does_not_require_ca_crt_absent(root):
    """kubeadm's RunJoinNodeChecks adds FileAvailable for ca.crt only when ControlPlane is nil:
    pre-shared material (`kbootd ca generate --control-plane`) puts ca.crt there before the join."""
    cfg = join_config(control_plane=JoinControlPlane(advertise_address="10.0.0.11"))
    checks = names(join_checks(context(root, join=cfg)))
    assert "FileAvailable--etc-kubernetes-pki-ca.crt" not in checks
    assert {"FileAvailable--etc-kubernetes-kubelet.conf", "FileAvailable--etc-kubernetes-bootstrap-kubelet.conf"} <= checks


def test_join_ca_path_comes_from_config(root):
    cfg = join_config(ca_cert_path="/etc/kubernetes/pki/other-ca.crt")
    assert "FileAvailable--etc-kubernetes-pki-other-ca.crt" in names(join_checks(context(root, join=cfg)))


@pytest.mark.parametrize(("name", "severity"), [
    ("IsPrivilegedUser", ERROR), ("NumCPU", ERROR), ("Mem", ERROR), ("Port-6443", ERROR), ("CRI", ERROR),
    ("FileAvailable--etc-kubernetes-manifests-etcd.yaml", ERROR), ("DirAvailable--var-lib-etcd", ERROR),
    ("KubeletVersion", ERROR), (IPV4, ERROR), ("Swap", WARNING), ("Hostname", WARNING),
    ("Service-Kubelet", WARNING), ("Firewalld", WARNING), ("HTTPProxy", WARNING), ("HTTPProxyCIDR", WARNING),
])
def test_severities_are_kubeadms(root, name, severity):
    assert {ch.severity for ch in init_checks(context(root)) if ch.name == name} == {severity}


def test_system_verification_has_an_error_and_a_warning_row(root):
    rows = [ch.severity for ch in init_checks(context(root)) if ch.name == "SystemVerification"]
    assert rows == [ERROR, WARNING]


def test_the_privilege_check_comes_first(root):
    assert init_checks(context(root))[0].name == "IsPrivilegedUser"
    assert join_checks(context(root, join=join_config()))[0].name == "IsPrivilegedUser"
