"""Each preflight check against a passing and a failing fact (kbootd/preflight/checks.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from kbootd.preflight import checks as c
from kbootd.preflight.facts import Lookup
from kbootd.preflight.runner import NotChecked
from tests.preflight_fakes import SOCKET, FakeFacts, context, healthy_root, init_config, write


def outcome(fn, root, facts, **ctx_kw):
    ctx = context(root, facts, **ctx_kw)
    try:
        return fn(ctx, facts)
    except NotChecked as e:
        return ("not checked", e.warn)


@pytest.mark.parametrize(("fn", "facts", "expected"), [
    (c.privileged_user, FakeFacts(uid=0), []),
    (c.privileged_user, FakeFacts(uid=1000), ["user is not running as root"]),
    (c.privileged_user, FakeFacts(uid=None, on_host=False), ("not checked", False)),
    (c.num_cpu(), FakeFacts(cpus=2), []),
    (c.num_cpu(), FakeFacts(cpus=1), ["the number of available CPUs 1 is less than the required 2"]),
    (c.num_cpu(), FakeFacts(cpus=None, on_host=False), ("not checked", False)),
    (c.memory(), FakeFacts(mem_mb=1700), []),
    (c.memory(), FakeFacts(mem_mb=1024), ["the system RAM (1024 MB) is less than the minimum 1700 MB"]),
    (c.memory(), FakeFacts(mem_mb=None, on_host=False), ("not checked", False)),
    (c.memory(), FakeFacts(mem_mb=None), ["cannot read MemTotal from /proc/meminfo"]),
    (c.port_free(6443), FakeFacts(busy_ports={10250}), []),
    (c.port_free(6443), FakeFacts(busy_ports={6443}), ["Port 6443 is in use"]),
    (c.port_free(6443), FakeFacts(ports_known=False, on_host=False), ("not checked", False)),
    (c.firewalld((6443, 10250)), FakeFacts(firewalld_active=False), []),
    (c.firewalld((6443, 10250)), FakeFacts(firewalld_active=True),
     ["firewalld is active, please ensure ports [6443 10250] are open or your cluster may not function correctly"]),
    (c.firewalld((6443,)), FakeFacts(firewalld_active=None, on_host=False), ("not checked", False)),
], ids=lambda v: getattr(v, "__qualname__", None))
def test_machine_checks(root, fn, facts, expected):
    assert outcome(fn, root, facts) == expected


ETCD = "/var/lib/etcd"
KUBELET_CONF = "/etc/kubernetes/kubelet.conf"
FWD = "/proc/sys/net/ipv4/ip_forward"


@pytest.mark.parametrize(("fn", "files", "dirs", "expected"), [
    (c.dir_available(ETCD), {}, [], []),
    (c.dir_available(ETCD), {}, [ETCD], []),
    (c.dir_available(ETCD), {f"{ETCD}/member/snap": "x"}, [], [f"{ETCD} is not empty"]),
    (c.dir_available(ETCD), {ETCD: "a file"}, [], [f"{ETCD} is not a directory"]),
    (c.file_available(KUBELET_CONF), {}, [], []),
    (c.file_available(KUBELET_CONF), {KUBELET_CONF: "old"}, [], [f"{KUBELET_CONF} already exists"]),
    (c.file_existing("/etc/etcd/ca.crt"), {"/etc/etcd/ca.crt": "pem"}, [], []),
    (c.file_existing("/etc/etcd/ca.crt"), {}, [], ["/etc/etcd/ca.crt doesn't exist"]),
    (c.file_content(FWD), {FWD: "1\n"}, [], []),
    (c.file_content(FWD), {FWD: "0\n"}, [], [f"{FWD} contents are not set to 1"]),
    (c.file_content(FWD), {}, [], [f"{FWD} does not exist"]),
    (c.swap, {}, [], []),
    (c.swap, {"/proc/swaps": "Filename\tType\tSize\tUsed\tPriority\n"}, [], []),
    (c.swap, {"/proc/swaps": "Filename\tType\tSize\n/swap.img file 4194300 0 -2\n"}, [],
     ["swap is supported for cgroup v2 only. The kubelet must be properly configured to use swap. Please refer "
      "to https://kubernetes.io/docs/concepts/architecture/nodes/#swap-memory, or disable swap on the node"]),
])
def test_file_checks(root, fn, files, dirs, expected):
    for d in dirs:
        (root / d.lstrip("/")).mkdir(parents=True)
    for path, content in files.items():
        write(root, path, content)
    assert outcome(fn, root, FakeFacts()) == expected


@pytest.mark.parametrize(("fn", "facts", "expected"), [
    (c.in_path("mount"), FakeFacts(), []),
    (c.in_path("mount"), FakeFacts(missing_binaries={"mount"}), ["mount not found in system path"]),
    (c.in_path("crictl", "install cri-tools"), FakeFacts(missing_binaries={"crictl"}),
     ["crictl not found in system path\nSuggestion: install cri-tools"]),
    (c.service_enabled("kubelet"), FakeFacts(units={"kubelet": "enabled"}), []),
    (c.service_enabled("kubelet"), FakeFacts(units={"kubelet": "static"}), []),
    (c.service_enabled("kubelet"), FakeFacts(units={"kubelet": "disabled"}),
     ["kubelet service is not enabled, please run 'systemctl enable kubelet.service'"]),
    (c.service_enabled("kubelet"), FakeFacts(units={}), ["kubelet service does not exist"]),
    (c.service_enabled("kubelet"), FakeFacts(units={"kubelet": None}),
     ["no supported init system detected, skipping checking for services"]),
])
def test_program_checks(root, fn, facts, expected):
    assert outcome(fn, root, facts) == expected


LOWER = 'Kubelet version "{}" is lower than kubeadm can support. Please upgrade kubelet (the oldest supported here is v1.29)'
HIGHER = ('the kubelet version is higher than the control plane version. This is not a supported version skew and '
          'may lead to a malfunctional cluster. Kubelet version: "{}" Control plane version: "v1.32.0"')


@pytest.mark.parametrize(("control_plane", "facts", "expected"), [
    ("v1.32.0", FakeFacts(kubelet="Kubernetes v1.32.0"), []),
    ("v1.32.0", FakeFacts(kubelet="Kubernetes v1.29.3"), []),
    ("v1.32.0", FakeFacts(kubelet="Kubernetes v1.32.9"), []),
    ("v1.32.0", FakeFacts(kubelet="Kubernetes v1.28.15"), [LOWER.format("v1.28.15")]),
    ("v1.32.0", FakeFacts(kubelet="Kubernetes v1.33.0"), [HIGHER.format("v1.33.0")]),
    (None, FakeFacts(kubelet="Kubernetes v1.33.0"), []),  # join: the cluster's version is not known yet
    (None, FakeFacts(kubelet="Kubernetes v1.28.0"), [LOWER.format("v1.28.0")]),
    ("v1.32.0", FakeFacts(kubelet="something else"),
     ["couldn't get kubelet version: cannot parse 'something else' from 'kubelet --version'"]),
    ("v1.32.0", FakeFacts(kubelet=None, missing_binaries={"kubelet"}),
     ["couldn't get kubelet version: cannot execute 'kubelet --version': executable file not found in $PATH"]),
    ("v1.32.0", FakeFacts(kubelet=None), ["couldn't get kubelet version: cannot execute 'kubelet --version'"]),
    ("v1.32.0", FakeFacts(kubelet=None, on_host=False), ("not checked", True)),
])
def test_kubelet_version(root, control_plane, facts, expected):
    assert outcome(c.kubelet_version(control_plane, 29), root, facts) == expected


@pytest.mark.parametrize(("error", "expected"), [
    (None, []),
    ("connection refused", [f'container runtime is not running: cannot connect to "{SOCKET}": connection refused; '
                            "start the runtime (e.g. systemctl start containerd) or point --cri-socket at the "
                            "right socket"]),
])
def test_container_runtime_connects_to_the_configured_socket(root, error, expected):
    facts = FakeFacts(cri=error)
    assert outcome(c.container_runtime, root, facts) == expected
    assert facts.cri_asked == [SOCKET]


V2_ALL = "cpuset cpu io memory hugetlb pids\n"
V1_HEADER = "#subsys_name\thierarchy\tnum_cgroups\tenabled\n"
V1_ALL = V1_HEADER + "".join(f"{n}\t1\t1\t1\n" for n in
                             ("cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids", "hugetlb"))
V1_WARNING = "cgroups v1 support is in maintenance mode, please migrate to cgroups v2"


@pytest.mark.parametrize(("files", "required", "advice"), [
    ({"/sys/fs/cgroup/cgroup.controllers": V2_ALL}, [], []),
    ({"/sys/fs/cgroup/cgroup.controllers": V2_ALL, "/sys/fs/cgroup/init.scope/cgroup.procs": "1"},
     ["missing required cgroups: freezer"], []),
    ({"/sys/fs/cgroup/cgroup.controllers": V2_ALL, "/sys/fs/cgroup/init.scope/cgroup.freeze": "0"}, [], []),
    ({"/sys/fs/cgroup/cgroup.controllers": "cpuset cpu io memory hugetlb\n"}, ["missing required cgroups: pids"], []),
    ({"/sys/fs/cgroup/cgroup.controllers": "cpuset cpu memory pids\n"}, [], ["missing optional cgroups: hugetlb"]),
    ({"/proc/cgroups": V1_ALL}, [], [V1_WARNING]),
    ({"/proc/cgroups": V1_ALL.replace("memory\t1\t1\t1", "memory\t0\t1\t0")},
     ["missing required cgroups: memory"], [V1_WARNING]),
])
def test_cgroups(root, files, required, advice):
    for path, content in files.items():
        write(root, path, content)
    assert outcome(c.cgroups_required, root, FakeFacts()) == required
    assert outcome(c.cgroups_advice, root, FakeFacts()) == advice


@pytest.mark.parametrize(("facts", "expected"), [
    (FakeFacts(on_host=False), ("not checked", False)),
    (FakeFacts(), ["cannot find the cgroup controllers: neither /sys/fs/cgroup/cgroup.controllers nor "
                   "/proc/cgroups can be read"]),
])
def test_cgroups_unreadable(root, facts, expected):
    assert outcome(c.cgroups_required, root, facts) == expected
    assert outcome(c.cgroups_advice, root, facts) == []


@pytest.mark.parametrize(("lookup", "expected"), [
    (Lookup(("10.0.0.10",)), []),
    (Lookup((), "lookup cp-1: Name or service not known"),
     ['hostname "cp-1" could not be reached', 'hostname "cp-1": lookup cp-1: Name or service not known']),
    (None, ("not checked", False)),
])
def test_hostname(root, lookup, expected):
    assert outcome(c.hostname, root, FakeFacts(lookup=lookup)) == expected


PROXY_MSG = 'Connection to "{}" uses proxy "http://proxy:3128". If that is not intended, adjust your proxy settings'


@pytest.mark.parametrize(("fn", "advertise", "proxy", "expected"), [
    (c.http_proxy("10.0.0.10"), "10.0.0.10", None, []),
    (c.http_proxy("10.0.0.10"), "10.0.0.10", "http://proxy:3128", [PROXY_MSG.format("https://10.0.0.10")]),
    (c.http_proxy("fd00::1"), "fd00::1", "http://proxy:3128", [PROXY_MSG.format("https://[fd00::1]:1234")]),
    (c.http_proxy(None), "10.0.0.11", "http://proxy:3128", [PROXY_MSG.format("https://10.0.0.11")]),
    (c.http_proxy(None), None, "http://proxy:3128", ("not checked", False)),  # no address under --root
    (c.http_proxy_cidr("10.96.0.0/12"), "10.0.0.10", None, []),
    (c.http_proxy_cidr("10.96.0.0/12"), "10.0.0.10", "http://proxy:3128",
     ['connection to "10.96.0.0/12" uses proxy "http://proxy:3128". This may lead to malfunctional cluster setup. '
      "Make sure that Pod and Services IP ranges specified correctly as exceptions in proxy configuration"]),
])
def test_proxies(root, fn, advertise, proxy, expected):
    cfg = replace(init_config(), advertise_address=advertise)
    assert outcome(fn, root, FakeFacts(proxy=proxy), init=cfg) == expected


@pytest.mark.parametrize(("kind", "path", "name"), [
    ("DirAvailable", "/var/lib/etcd", "DirAvailable--var-lib-etcd"),
    ("FileAvailable", "/etc/kubernetes/manifests/kube-apiserver.yaml",
     "FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml"),
    ("FileContent", "/proc/sys/net/ipv4/ip_forward", "FileContent--proc-sys-net-ipv4-ip_forward"),
])
def test_path_label_is_kubeadms(kind, path, name):
    assert c.path_label(kind, path) == name


def test_healthy_root_passes_every_file_check(root):
    healthy_root(root)
    for fn in (c.cgroups_required, c.cgroups_advice, c.swap, c.file_content(FWD)):
        assert outcome(fn, root, FakeFacts()) == []
