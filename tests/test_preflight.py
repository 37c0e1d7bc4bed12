"""The preflight phases end to end: `init phase preflight` and join's (kbootd/preflight/__init__.py)."""

from __future__ import annotations

import pytest

from kbootd.config.model import ClusterConfig, ExternalEtcd
from kbootd.errors import PreflightError
from kbootd.preflight import facts_for, run_init, run_join
from kbootd.preflight.facts import HostFacts, Lookup
from tests.conftest import tree_snapshot
from tests.preflight_fakes import FakeFacts, context, healthy_root, init_config, join_config, write

EXTERNAL = ClusterConfig(etcd_local=None, etcd_external=ExternalEtcd(endpoints=("https://10.0.0.5:2379",)))


def run(phase, root, facts, files=None, **kw):
    """Run a phase on a healthy root with files added (host path -> content)."""
    healthy_root(root)
    for path, content in (files or {}).items():
        write(root, path, content)
    ctx = context(root, facts, **kw)
    try:
        phase(ctx)
    except PreflightError as e:
        return ctx, e
    return ctx, None


@pytest.mark.parametrize(("phase", "kw"), [(run_init, {}), (run_join, {"join": join_config()})])
def test_a_healthy_node_passes_quietly(root, phase, kw):
    ctx, err = run(phase, root, FakeFacts(), **kw)
    assert err is None
    assert ctx.reporter.text() == "[preflight] Running pre-flight checks\n"


# One broken fact each: (facts, files to add, the check that must fail, whether it is fatal).
BROKEN = [
    (FakeFacts(uid=1000), {}, "IsPrivilegedUser", True),
    (FakeFacts(cpus=1), {}, "NumCPU", True),
    (FakeFacts(mem_mb=1000), {}, "Mem", True),
    (FakeFacts(busy_ports={6443}), {}, "Port-6443", True),
    (FakeFacts(busy_ports={10259}), {}, "Port-10259", True),
    (FakeFacts(busy_ports={10257}), {}, "Port-10257", True),
    (FakeFacts(busy_ports={10250}), {}, "Port-10250", True),
    (FakeFacts(busy_ports={2379}), {}, "Port-2379", True),
    (FakeFacts(busy_ports={2380}), {}, "Port-2380", True),
    (FakeFacts(), {"/etc/kubernetes/manifests/kube-apiserver.yaml": "x"},
     "FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml", True),
    (FakeFacts(), {"/var/lib/etcd/member/wal": "x"}, "DirAvailable--var-lib-etcd", True),
    (FakeFacts(), {"/proc/sys/net/ipv4/ip_forward": "0\n"}, "FileContent--proc-sys-net-ipv4-ip_forward", True),
    (FakeFacts(cri="connection refused"), {}, "CRI", True),
    (FakeFacts(missing_binaries={"nsenter"}), {}, "FileExisting-nsenter", True),
    (FakeFacts(kubelet="Kubernetes v1.34.0"), {}, "KubeletVersion", True),
    (FakeFacts(), {"/sys/fs/cgroup/cgroup.controllers": "cpu cpuset memory\n"}, "SystemVerification", True),
    (FakeFacts(), {"/proc/swaps": "Filename Type\n/swap.img file 1 0 -2\n"}, "Swap", False),
    (FakeFacts(missing_binaries={"touch"}), {}, "FileExisting-touch", False),
    (FakeFacts(units={"kubelet": "disabled"}), {}, "Service-Kubelet", False),
    (FakeFacts(lookup=Lookup((), "lookup cp-1: no such host")), {}, "Hostname", False),
    (FakeFacts(firewalld_active=True), {}, "Firewalld", False),
    (FakeFacts(proxy="http://proxy:3128"), {}, "HTTPProxy", False),
]


@pytest.mark.parametrize(("facts", "files", "name", "fatal"), BROKEN, ids=[b[2] for b in BROKEN])
def test_init_reports_each_broken_fact_under_its_kubeadm_name(root, facts, files, name, fatal):
    ctx, err = run(run_init, root, facts, files)
    if fatal:
        assert err is not None and f"\t[ERROR {name}]: " in str(err)
        assert str(err).count("[ERROR ") == 1
    else:
        assert err is None
        assert f"\t[WARNING {name}]: " in ctx.reporter.text()


@pytest.mark.parametrize(("facts", "files", "name", "fatal"), [b for b in BROKEN if b[3]],
                         ids=[b[2] for b in BROKEN if b[3]])
@pytest.mark.parametrize("spelling", [str, str.lower, str.upper])
def test_ignoring_a_check_by_name_turns_it_into_a_warning(root, facts, files, name, fatal, spelling):
    ctx, err = run(run_init, root, facts, files, ignore=(spelling(name),))
    assert err is None
    assert f"\t[WARNING {name}]: " in ctx.reporter.text()


def test_every_failure_is_reported_at_once_and_all_ignores_them(root):
    files = {"/etc/kubernetes/manifests/etcd.yaml": "x"}
    broken = FakeFacts(uid=1000, busy_ports={6443, 2379}, cri="no such file or directory", cpus=1,
                       units={"kubelet": "disabled"})
    _, err = run(run_init, root, broken, files)
    assert err is not None and err.exit_code == 2
    failed = [ln.split("]")[0].removeprefix("\t[ERROR ") for ln in str(err).splitlines()[1:]]
    assert failed == ["IsPrivilegedUser", "NumCPU", "Port-6443", "FileAvailable--etc-kubernetes-manifests-etcd.yaml",
                      "CRI", "Port-2379"]
    assert "Service-Kubelet" not in str(err)  # a warning is printed, never fatal
    ctx, err = run(run_init, root, broken, files, ignore=("all",))
    assert err is None
    assert ctx.reporter.text().count("[WARNING ") == 7


def test_external_etcd_skips_the_local_etcd_checks(root):
    _, err = run(run_init, root, FakeFacts(busy_ports={2379, 2380}), {"/var/lib/etcd/member/wal": "x"},
                 init=init_config(cluster=EXTERNAL))
    assert err is None


@pytest.mark.parametrize(("files", "facts", "name"), [
    ({"/etc/kubernetes/bootstrap-kubelet.conf": "x"}, FakeFacts(),
     "FileAvailable--etc-kubernetes-bootstrap-kubelet.conf"),
    ({"/etc/kubernetes/kubelet.conf": "x"}, FakeFacts(), "FileAvailable--etc-kubernetes-kubelet.conf"),
    ({"/etc/kubernetes/pki/ca.crt": "x"}, FakeFacts(), "FileAvailable--etc-kubernetes-pki-ca.crt"),
    ({}, FakeFacts(busy_ports={10250}), "Port-10250"),
    ({}, FakeFacts(cri="connection refused"), "CRI"),
    ({}, FakeFacts(kubelet="Kubernetes v1.20.0"), "KubeletVersion"),
    ({"/proc/sys/net/ipv4/ip_forward": "0"}, FakeFacts(), "FileContent--proc-sys-net-ipv4-ip_forward"),
    ({}, FakeFacts(missing_binaries={"mount"}), "FileExisting-mount"),
])
def test_join_fails_on_its_own_checks(root, files, facts, name):
    _, err = run(run_join, root, facts, files, join=join_config())
    assert err is not None and f"\t[ERROR {name}]: " in str(err)


def test_join_ignores_control_plane_state(root):
    files = {"/etc/kubernetes/manifests/kube-apiserver.yaml": "x", "/var/lib/etcd/member/wal": "x"}
    _, err = run(run_join, root, FakeFacts(busy_ports={6443, 2379, 10259}, cpus=1, mem_mb=512), files,
                 join=join_config())
    assert err is None


def test_under_a_test_root_host_facts_are_not_probed_and_nothing_changes(root):
    """The real HostFacts under a --root: no subprocess, no DNS, no port (the autouse fixture fails them)."""
    healthy_root(root)
    write(root, "/proc/meminfo", "MemTotal:        8048576 kB\n")
    for b in ("crictl", "ip", "iptables", "mount", "nsenter", "ethtool", "tc", "touch"):
        write(root, f"/usr/bin/{b}")
    write(root, "/lib/systemd/system/kubelet.service", "[Service]\n")
    write(root, "/etc/systemd/system/multi-user.target.wants/kubelet.service", "")
    ctx = context(root)
    before = tree_snapshot(root)
    with pytest.raises(PreflightError) as e:  # no runtime socket under the root
        run_init(ctx)
    assert str(e.value).count("[ERROR ") == 1 and "[ERROR CRI]" in str(e.value)
    assert isinstance(ctx.data.preflight_facts, HostFacts)
    out = ctx.reporter.text()
    assert "[WARNING KubeletVersion]: couldn't get kubelet version" in out
    assert f"Not checked (--root is {root}, not this machine): IsPrivilegedUser, NumCPU, Firewalld, Port-6443" in out
    assert "Mem" not in out.split("Not checked")[1]  # /proc/meminfo is read from the root
    assert tree_snapshot(root) == before


def test_facts_come_from_the_store_when_given(root):
    ctx = context(root, FakeFacts(cpus=64))
    assert facts_for(ctx).cpu_count() == 64
    plain = context(root)
    assert isinstance(facts_for(plain), HostFacts) and facts_for(plain) is facts_for(plain)
