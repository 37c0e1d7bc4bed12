"""kubelet-start: config.yaml, kubeadm-flags.env and the drop-in, against kubeadm v1.32's own files."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from kbootd import kubelet as k
from kbootd.config.load import load_file
from kbootd.config.model import ClusterConfig, InitConfig, JoinConfig, Networking, NodeRegistration
from kbootd.context import make_context
from kbootd.errors import ValidationError
from kbootd.report import RecordingReporter
from tests.conftest import tree_snapshot
from tests.shared import INIT_BASIC

FIXTURES = INIT_BASIC
SOCK = "unix:///run/containerd/containerd.sock"


def fixture_cfg() -> InitConfig:
    cfg = load_file(str(FIXTURES / "config.yaml"), "init", print)
    assert isinstance(cfg, InitConfig)
    return cfg


def make(root: Path, cfg: InitConfig | None = None, *, hostname: str = "builder", dry_run: bool = False,
         join: JoinConfig | None = None):
    etc = root / "etc"
    etc.mkdir(exist_ok=True)
    (etc / "hostname").write_text(hostname + "\n")
    return make_context(root=str(root), reporter=RecordingReporter(), dry_run=dry_run,
                        init=cfg if join is None else None, join=join)


def put(root: Path, host_path: str, text: str) -> None:
    p = root / host_path.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def read(root: Path, host_path: str) -> str:
    return (root / host_path.lstrip("/")).read_text()


# --- golden comparison with kubeadm v1.32 ------------------------------------------------

def test_start_writes_kubeadm_v132_files_byte_for_byte(root: Path) -> None:
    ctx = make(root, fixture_cfg())
    k.start(ctx)
    want_cfg = (FIXTURES / "kubelet-config.yaml").read_text()
    got_cfg = read(root, ctx.paths.kubelet_config)
    assert yaml.safe_load(got_cfg) == yaml.safe_load(want_cfg)  # semantic
    assert got_cfg == want_cfg  # and the very bytes
    assert read(root, ctx.paths.kubelet_flags_env) == (FIXTURES / "kubeadm-flags.env").read_text()
    from kbootd.cluster.uploadconfig import kubelet_config_text

    assert kubelet_config_text(ctx) == want_cfg  # what upload-config publishes
    msgs = [m for kind, _, m in ctx.reporter.events if kind == "info"]
    assert 'Writing kubelet environment file with flags to file "/var/lib/kubelet/kubeadm-flags.env"' in msgs
    assert 'Writing kubelet configuration to file "/var/lib/kubelet/config.yaml"' in msgs
    assert "Starting the kubelet" in msgs


@pytest.mark.parametrize("subnet, domain, dns", [
    ("10.96.0.0/12", "cluster.local", "10.96.0.10"),
    ("172.20.0.0/16", "corp.example", "172.20.0.10"),
    ("10.96.0.0/16,fd00:10:96::/112", "cluster.local", "10.96.0.10"),
    ("fd00:10:96::/112", "cluster.local", "fd00:10:96::a"),
])
def test_cluster_dns_is_tenth_service_address(subnet: str, domain: str, dns: str) -> None:
    cfg = InitConfig(cluster=ClusterConfig(networking=Networking(service_subnet=subnet, dns_domain=domain),
                                           certificates_dir="/srv/pki"))
    doc = k.kubelet_configuration(cfg, manifests_dir="/srv/manifests")
    assert doc["clusterDNS"] == [dns]
    assert doc["clusterDomain"] == domain
    assert doc["authentication"]["x509"]["clientCAFile"] == "/srv/pki/ca.crt"
    assert doc["staticPodPath"] == "/srv/manifests"
    assert doc["cgroupDriver"] == "systemd"
    assert doc["authorization"]["mode"] == "Webhook"
    assert doc["authentication"]["anonymous"]["enabled"] is False


# --- overrides ---------------------------------------------------------------------------

OVR = {"apiVersion": k.API, "kind": k.KIND}


@pytest.mark.parametrize("override, path, value, warns", [
    ({"maxPods": 250}, "maxPods", 250, False),
    ({"cgroupDriver": "cgroupfs"}, "cgroupDriver", "cgroupfs", False),
    ({"authentication": {"webhook": {"cacheTTL": "2m0s"}}}, "authentication.webhook.cacheTTL", "2m0s", False),
    ({"authentication": {"webhook": {"cacheTTL": "2m0s"}}}, "authentication.webhook.enabled", True, False),
    ({"clusterDNS": ["169.254.20.10"]}, "clusterDNS", ["169.254.20.10"], True),
    ({"clusterDomain": "other.local"}, "clusterDomain", "other.local", True),
    ({"authorization": {"mode": "AlwaysAllow"}}, "authorization.mode", "AlwaysAllow", True),
    ({"readOnlyPort": 10255}, "readOnlyPort", 10255, True),
    ({"rotateCertificates": False}, "rotateCertificates", True, True),  # kubeadm forces it
])
def test_overrides_merge_on_top(override: dict, path: str, value: object, warns: bool) -> None:
    cfg = InitConfig(kubelet_overrides={**OVR, **override})
    warnings: list[str] = []
    doc = k.kubelet_configuration(cfg, warn=warnings.append)
    cur: object = doc
    for part in path.split("."):
        cur = cur[part]  # type: ignore[index]
    assert cur == value
    assert bool(warnings) == warns
    assert doc["staticPodPath"] == k.DEFAULT_MANIFESTS_DIR  # untouched defaults survive


def test_override_of_another_kind_is_rejected() -> None:
    cfg = InitConfig(kubelet_overrides={"apiVersion": "kubelet.config.k8s.io/v1", "kind": k.KIND})
    with pytest.raises(ValidationError, match="expected kubelet.config.k8s.io/v1beta1/KubeletConfiguration"):
        k.kubelet_configuration(cfg)


def test_overrides_reach_config_yaml(root: Path) -> None:
    cfg = replace(fixture_cfg(), kubelet_overrides={**OVR, "maxPods": 42, "failSwapOn": False})
    ctx = make(root, cfg)
    k.start(ctx)
    doc = yaml.safe_load(read(root, ctx.paths.kubelet_config))
    assert (doc["maxPods"], doc["failSwapOn"], doc["clusterDNS"]) == (42, False, ["10.96.0.10"])


# --- kubeadm-flags.env -------------------------------------------------------------------

BASE = {"cri_socket": SOCK, "node_name": "cp-1", "host_name": "cp-1", "pause_image": "registry.k8s.io/pause:3.10"}


@pytest.mark.parametrize("kw, want", [
    ({}, ["--container-runtime-endpoint=" + SOCK, "--pod-infra-container-image=registry.k8s.io/pause:3.10"]),
    ({"host_name": "builder"}, ["--container-runtime-endpoint=" + SOCK, "--hostname-override=cp-1",
                                "--pod-infra-container-image=registry.k8s.io/pause:3.10"]),
    ({"pause_image": None}, ["--container-runtime-endpoint=" + SOCK]),
    ({"pause_image": None, "node_ip": "10.0.0.10"}, ["--container-runtime-endpoint=" + SOCK, "--node-ip=10.0.0.10"]),
    ({"pause_image": None, "cloud_provider": "external", "cloud_config": "/etc/kubernetes/cloud-config"},
     ["--cloud-config=/etc/kubernetes/cloud-config", "--cloud-provider=external",
      "--container-runtime-endpoint=" + SOCK]),
    # extra args replace same-named defaults and sort in (name, value) order, duplicates kept
    ({"pause_image": None, "extra_args": (("container-runtime-endpoint", "unix:///x.sock"),)},
     ["--container-runtime-endpoint=unix:///x.sock"]),
    ({"pause_image": None, "extra_args": (("node-labels", "b=2"), ("node-labels", "a=1"), ("v", "2"))},
     ["--container-runtime-endpoint=" + SOCK, "--node-labels=a=1", "--node-labels=b=2", "--v=2"]),
    ({"pause_image": None, "extra_args": (("hostname-override", "alias"),), "host_name": "builder"},
     ["--container-runtime-endpoint=" + SOCK, "--hostname-override=alias"]),
])
def test_kubelet_flags(kw: dict, want: list[str]) -> None:
    assert k.kubelet_flags(**{**BASE, **kw}) == want


@pytest.mark.parametrize("kw, match", [
    ({"cloud_provider": "aws"}, "only value accepted today is \"external\""),
    ({"extra_args": (("network-plugin", "cni"),)}, "kubeletExtraArgs\\[network-plugin\\].*removed in v1.24"),
    ({"extra_args": (("container-runtime", "remote"),)}, "removed in v1.27"),
    ({"extra_args": (("node-labels", "a=1 b=2"),)}, "must not contain whitespace"),
    ({"extra_args": (("bad name", "x"),)}, "not a flag name"),
])
def test_kubelet_flags_rejects(kw: dict, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        k.kubelet_flags(**{**BASE, **kw})


@pytest.mark.parametrize("flags, want", [
    (["--a=1", "--b=2"], 'KUBELET_KUBEADM_ARGS="--a=1 --b=2"\n'),
    (['--x=say"hi"'], 'KUBELET_KUBEADM_ARGS="--x=say\\"hi\\""\n'),
    ([], 'KUBELET_KUBEADM_ARGS=""\n'),
])
def test_render_flags_env_quotes_like_go(flags: list[str], want: str) -> None:
    assert k.render_flags_env(flags) == want
    assert k.parse_env_file(want)["KUBELET_KUBEADM_ARGS"] == " ".join(flags)


@pytest.mark.parametrize("cloud_config_present", [True, False])
def test_cloud_config_passed_only_when_present(root: Path, cloud_config_present: bool) -> None:
    cfg = replace(fixture_cfg(), cluster=replace(fixture_cfg().cluster, cloud_provider="external"))
    ctx = make(root, cfg)
    if cloud_config_present:
        put(root, ctx.paths.cloud_config, "[Global]\n")
    k.start(ctx)
    env = read(root, ctx.paths.kubelet_flags_env)
    assert "--cloud-provider=external" in env
    assert ("--cloud-config=/etc/kubernetes/cloud-config" in env) is cloud_config_present


def test_extra_args_from_config_override_defaults(root: Path) -> None:
    cfg = fixture_cfg()
    node = replace(cfg.node, kubelet_extra_args=(("pod-infra-container-image", "mirror.local/pause:3.10"),
                                                  ("node-ip", "10.0.0.10")))
    ctx = make(root, replace(cfg, node=node))
    k.start(ctx)
    args = k.parse_env_file(read(root, ctx.paths.kubelet_flags_env))["KUBELET_KUBEADM_ARGS"].split()
    assert args == ["--container-runtime-endpoint=" + SOCK, "--hostname-override=cp-1", "--node-ip=10.0.0.10",
                    "--pod-infra-container-image=mirror.local/pause:3.10"]


@pytest.mark.parametrize("hostname, override", [("cp-1", False), ("CP-1", False), ("builder", True)])
def test_hostname_override_only_when_name_differs(root: Path, hostname: str, override: bool) -> None:
    ctx = make(root, fixture_cfg(), hostname=hostname)
    k.start(ctx)
    assert ("--hostname-override=cp-1" in read(root, ctx.paths.kubelet_flags_env)) is override


@pytest.mark.parametrize("version, has_flag", [("v1.30.4", True), ("v1.32.0", True), ("v1.34.1", True),
                                               ("v1.35.0", False)])
def test_pod_infra_flag_until_kubelet_removed_it(version: str, has_flag: bool) -> None:
    img = k.pod_infra_image(ClusterConfig(kubernetes_version=version))
    assert (img is not None) is has_flag
    if img:
        assert img.startswith("registry.k8s.io/pause:")


# --- the drop-in and the kubelet's effective command line --------------------------------

def test_dropin_has_todays_form_and_no_removed_flag(root: Path) -> None:
    ctx = make(root)
    text = k.render_dropin(ctx.paths)
    active = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert active[0] == "[Service]"
    assert ('Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf '
            '--kubeconfig=/etc/kubernetes/kubelet.conf"') in active
    assert 'Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"' in active
    assert active[-2:] == ["ExecStart=", "ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS "
                                         "$KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS"]
    for f in ("-/var/lib/kubelet/kubeadm-flags.env", "-/etc/default/kubelet", "-/etc/sysconfig/kubelet"):
        assert f"EnvironmentFile={f}" in active
    assert "--cadvisor-port=0" in text  # the comments say where the spec's flags went


@pytest.mark.parametrize("flag", sorted(k.REMOVED_FLAGS))
def test_dropin_never_sets_a_removed_flag(root: Path, flag: str) -> None:
    active = "\n".join(ln for ln in k.render_dropin(make(root).paths).splitlines() if not ln.startswith("#"))
    assert not re.search(rf"--{flag}(?![\w-])", active)


def test_dropin_uses_the_installed_kubelet_binary(root: Path) -> None:
    ctx = make(root)
    put(root, "/usr/local/bin/kubelet", "")
    k.write_dropin(ctx)
    assert "ExecStart=/usr/local/bin/kubelet $KUBELET_KUBECONFIG_ARGS" in read(root, ctx.paths.kubelet_dropin)


@pytest.mark.parametrize("files, want_extra", [
    ({}, []),
    ({"/etc/default/kubelet": 'KUBELET_EXTRA_ARGS="--max-pods=200 --v=4"\n'}, ["--max-pods=200", "--v=4"]),
    ({"/etc/sysconfig/kubelet": "KUBELET_EXTRA_ARGS=--v=3\n"}, ["--v=3"]),
    ({"/etc/default/kubelet": "# comment\nKUBELET_EXTRA_ARGS='--v=1'\n"}, ["--v=1"]),
    # both exist: the later EnvironmentFile= wins, as in systemd
    ({"/etc/default/kubelet": "KUBELET_EXTRA_ARGS=--v=1\n", "/etc/sysconfig/kubelet": "KUBELET_EXTRA_ARGS=--v=2\n"},
     ["--v=2"]),
])
def test_kubelet_extra_args_file_is_honoured_by_the_dropin(root: Path, files: dict, want_extra: list) -> None:
    ctx = make(root, fixture_cfg())
    for path, text in files.items():
        put(root, path, text)
    k.start(ctx)
    argv = k.effective_kubelet_argv(ctx)
    assert argv[0] == "/usr/bin/kubelet"
    assert argv[1:4] == ["--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
                         "--kubeconfig=/etc/kubernetes/kubelet.conf", "--config=/var/lib/kubelet/config.yaml"]
    assert argv[4:7] == ["--container-runtime-endpoint=" + SOCK, "--hostname-override=cp-1",
                         "--pod-infra-container-image=registry.k8s.io/pause:3.10"]
    assert argv[7:] == want_extra
    for path in files:  # kbootd reads these, never writes them
        assert read(root, path) == files[path]


def test_spec_era_extra_args_and_dropins_are_flagged(root: Path) -> None:
    ctx = make(root, fixture_cfg())
    put(root, "/etc/default/kubelet", "KUBELET_EXTRA_ARGS=--network-plugin=cni\n")
    put(root, "/etc/systemd/system/kubelet.service.d/20-cri.conf",
        '[Service]\nEnvironment="KUBELET_EXTRA_ARGS=--container-runtime=remote '
        '--container-runtime-endpoint=unix:///var/run/crio/crio.sock"\n')
    k.start(ctx)
    warnings = " ".join(m for kind, _, m in ctx.reporter.events if kind == "warn")
    # EnvironmentFile= beats Environment=, so the file's value is the one the kubelet gets
    assert "--network-plugin" in warnings
    assert "--container-runtime:" not in warnings


def test_higher_priority_dropin_masks_same_name(root: Path) -> None:
    ctx = make(root)
    put(root, "/usr/lib/systemd/system/kubelet.service.d/10-kbootd.conf",
        "[Service]\nExecStart=\nExecStart=/opt/old/kubelet --allow-privileged=true\n")
    k.write_dropin(ctx)
    argv = k.effective_kubelet_argv(ctx)
    assert argv[0] == "/usr/bin/kubelet" and not k.removed_flags(argv)


# --- resolvConf, join's downloaded configuration -----------------------------------------

@pytest.mark.parametrize("resolv, real_list, given, want", [
    ("nameserver 127.0.0.53\n", True, None, k.RESOLVED_RESOLV_CONF),
    ("nameserver 127.0.0.53\n", False, None, None),
    ("nameserver 10.0.0.2\n", True, None, None),
    ("nameserver 127.0.0.53\n", True, "/etc/my-resolv.conf", "/etc/my-resolv.conf"),
])
def test_resolv_conf_with_systemd_resolved(root: Path, resolv: str, real_list: bool, given: str | None,
                                           want: str | None) -> None:
    ctx = make(root)
    put(root, "/etc/resolv.conf", resolv)
    if real_list:
        put(root, k.RESOLVED_RESOLV_CONF, "nameserver 10.0.0.2\n")
    doc = {**OVR, "clusterDNS": ["10.96.0.10"], **({"resolvConf": given} if given else {})}
    k.write_kubelet_config(ctx, doc)
    assert yaml.safe_load(read(root, ctx.paths.kubelet_config)).get("resolvConf") == want


@pytest.mark.parametrize("content, match", [
    ("a: [", "invalid YAML"),
    ("- just\n- a list\n", "expected a KubeletConfiguration mapping"),
    ("apiVersion: v1\nkind: ConfigMap\n", "expected kubelet.config.k8s.io/v1beta1/KubeletConfiguration"),
])
def test_downloaded_config_is_checked(root: Path, content: str, match: str) -> None:
    ctx = make(root)
    with pytest.raises(ValidationError, match=match):
        k.write_kubelet_config(ctx, content, source='ConfigMap "kubelet-config"')
    assert not (root / ctx.paths.kubelet_config.lstrip("/")).exists()


def test_join_writes_downloaded_config_and_its_own_flags(root: Path) -> None:
    join = JoinConfig(node=NodeRegistration(name="worker-7", cri_socket="unix:///var/run/crio/crio.sock",
                                            kubelet_extra_args=(("node-labels", "tier=web"),)))
    ctx = make(root, hostname="worker-7", join=join)
    downloaded = (FIXTURES / "kubelet-config.yaml").read_text()
    changed = k.setup_node(ctx, kubelet_config=downloaded, pause_image="registry.k8s.io/pause:3.10")
    assert changed
    assert read(root, ctx.paths.kubelet_config) == downloaded
    assert read(root, ctx.paths.kubelet_flags_env) == (
        'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///var/run/crio/crio.sock '
        '--node-labels=tier=web --pod-infra-container-image=registry.k8s.io/pause:3.10"\n')


# --- the service, idempotency, dry-run ---------------------------------------------------

def runs(ctx) -> list[str]:
    return [a.target for a in ctx.host.actions if a.kind == "run"]


def test_systemctl_recorded_and_second_run_does_not_restart(root: Path) -> None:
    put(root, "/lib/systemd/system/kubelet.service", "[Service]\nExecStart=/usr/bin/kubelet\n")
    ctx = make(root, fixture_cfg())
    k.start(ctx)
    assert runs(ctx) == ["systemctl daemon-reload", "systemctl enable kubelet", "systemctl restart kubelet"]
    assert not any(kind == "warn" for kind, _, _ in ctx.reporter.events)
    before = tree_snapshot(root)
    again = make(root, fixture_cfg())
    k.start(again)
    assert runs(again) == ["systemctl enable kubelet"]
    assert tree_snapshot(root) == before


def test_changed_config_restarts_again(root: Path) -> None:
    k.start(make(root, fixture_cfg()))
    ctx = make(root, replace(fixture_cfg(), kubelet_overrides={**OVR, "maxPods": 10}))
    k.start(ctx)
    assert "systemctl restart kubelet" in runs(ctx)


def test_missing_kubelet_unit_is_a_warning(root: Path) -> None:
    ctx = make(root, fixture_cfg())
    k.start(ctx)
    assert any(kind == "warn" and "Couldn't detect a kubelet service" in m for kind, _, m in ctx.reporter.events)


def test_dry_run_writes_nothing_and_runs_nothing(root: Path) -> None:
    ctx = make(root, fixture_cfg(), dry_run=True)
    before = tree_snapshot(root)
    k.start(ctx)
    assert tree_snapshot(root) == before
    out = ctx.reporter.text()
    assert '[dryrun] Would write file "/var/lib/kubelet/config.yaml"' in out
    assert "[dryrun] Would run: systemctl restart kubelet" in out
    assert "[host] Would run" not in out


def test_divergence_warning_reads_like_kubeadms() -> None:
    warnings: list[str] = []
    k.kubelet_configuration(InitConfig(kubelet_overrides={**OVR, "clusterDNS": ["169.254.20.10"]}),
                            warn=warnings.append)
    assert warnings == ['The recommended value for "clusterDNS" in "KubeletConfiguration" is: [10.96.0.10]; '
                        "the provided value is: [169.254.20.10]"]


def test_unreadable_environment_line_is_skipped(root: Path) -> None:
    ctx = make(root)
    k.write_dropin(ctx)
    put(root, "/etc/systemd/system/kubelet.service.d/30-bad.conf", '[Service]\nEnvironment="KUBELET_EXTRA_ARGS=--v=2\n')
    argv = k.effective_kubelet_argv(ctx)
    assert argv[0] == "/usr/bin/kubelet" and "--v=2" not in argv
