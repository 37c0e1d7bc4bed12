"""Bad input is exit 3 naming its source (issue 11 #8, #10): each case here was a traceback
(exit 1, which the unit restarts forever) or an error naming no source, found by hand or by the
fuzz suite (tests/fuzzing.py), and is kept as a table so it fails if the fix goes.
"""

from __future__ import annotations

import pytest

from kbootd.config.load import load_file, parse_file
from kbootd.duration import parse_duration
from kbootd.errors import ValidationError

B4 = "apiVersion: kubeadm.k8s.io/v1beta4\n"
B3 = "apiVersion: kubeadm.k8s.io/v1beta3\n"
A1 = "apiVersion: kubeadm.k8s.io/v1alpha1\n"
PATH = "/cfg/kubeadm.yaml"


def warn(_msg: str) -> None:
    pass


@pytest.mark.parametrize("value", [
    ".inf", "1e20", "99999999999h", "9" * 400, 10**400, float("inf"), float("nan"), 1e20, 2**64,
    "9" * 40 + "s", "1" + "0" * 30 + "h5m", [1], {"a": 1}, None,
])
def test_durations_out_of_range_or_of_the_wrong_type(value):
    with pytest.raises(ValidationError) as e:
        parse_duration(value, what="--token-ttl")
    assert "--token-ttl" in str(e.value)


def test_the_longest_go_duration_is_accepted():
    assert parse_duration("2562047h") == 2562047 * 3600


def fails(text: str, *needles: str, role: str = "init") -> str:
    with pytest.raises(ValidationError) as e:
        load_file(PATH, role, warn, text=text)
    msg = str(e.value)
    assert e.value.exit_code == 3
    for n in (PATH, *needles):
        assert n in msg, msg
    return msg


@pytest.mark.parametrize("text,needles", [
    (B4 + "kind: {a: 1}\n", ("kind", "expected a string")),
    ("apiVersion: [a]\nkind: InitConfiguration\n", ("apiVersion", "expected a string")),
    (B3 + "kind: [InitConfiguration]\n", ("kind",)),
    (B4 + "kind: InitConfiguration\nbootstrapTokens:\n- token: abcdef.0123456789abcdef\n  ttl: .inf\n", ("ttl",)),
    (B4 + "kind: InitConfiguration\nbootstrapTokens:\n- token: abcdef.0123456789abcdef\n  ttl: 1e20\n", ("ttl",)),
    (B4 + "kind: InitConfiguration\nbootstrapTokens:\n- token: abcdef.0123456789abcdef\n  ttl: 99999999999h\n",
     ("ttl",)),
    (B4 + "kind: ClusterConfiguration\ncertificateValidityPeriod: 99999999999h\n", ("certificateValidityPeriod",)),
    (B4 + "kind: ClusterConfiguration\ncaCertificateValidityPeriod: .inf\n", ("caCertificateValidityPeriod",)),
    (B4 + "kind: ClusterConfiguration\nkubernetesVersion: v1.99999999999999999999999.0\n", ("kubernetesVersion",)),
    (B4 + "kind: ClusterConfiguration\nkubernetesVersion: v" + "9" * 5000 + ".0.0\n", ("kubernetesVersion",)),
    (B4 + "kind: ClusterConfiguration\ncertificatesDir: pki\n", ("certificatesDir",)),
    (B4 + "kind: ClusterConfiguration\netcd:\n  local:\n    dataDir: etcd\n", ("dataDir",)),
    (B4 + "kind: ClusterConfiguration\netcd:\n  external:\n    endpoints: [https://10.0.0.2:2379]\n"
          "    caFile: ca.crt\n    certFile: /a.crt\n    keyFile: /a.key\n", ("caFile",)),
    (A1 + "kind: MasterConfiguration\ncertificatesDir: pki\n", ("certificatesDir",)),
    (A1 + "kind: MasterConfiguration\ntokenTTL: 99999999999h\n", ("tokenTTL",)),
    (B3 + "kind: ClusterConfiguration\napiServer:\n  timeoutForControlPlane: .inf\n", ("timeoutForControlPlane",)),
])
def test_bad_values_in_a_config_are_exit_3_naming_file_and_field(text, needles):
    fails(text, *needles)


@pytest.mark.parametrize("text,needles", [
    (B4 + "kind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n    token: abcdef.0123456789abcdef\n"
          "    apiServerEndpoint: 10.0.0.1:6443\n    unsafeSkipCAVerification: true\n"
          "timeouts:\n  discovery: 1e20\n", ("discovery",)),
    (B4 + "kind: JoinConfiguration\ndiscovery: [a]\n", ("discovery",)),
    (B4 + "kind: JoinConfiguration\nnodeRegistration: x\n", ("nodeRegistration",)),
])
def test_bad_join_configs(text, needles):
    fails(text, *needles, role="join")


def test_parse_file_reports_kind_first():
    with pytest.raises(ValidationError, match="kind: expected a string"):
        parse_file(PATH, warn, text=B4 + "kind: {a: 1}\n")


# --- the daemon's inputs -------------------------------------------------------------------------------

TOKEN = "abcdef.0123456789abcdef"
PIN = "sha256:" + "0b5c07da32772eb431ea1ba6f4614eab673b8c42a313c767bd3f31f49da01d2d"


def _daemon(root, files: dict[str, str]):
    import os

    from kbootd.daemon import document
    from kbootd.hostio import Host
    from kbootd.paths import Paths

    for path, text in files.items():
        real = root / path.lstrip("/")
        real.parent.mkdir(parents=True, exist_ok=True)
        real.write_text(text)
        os.chmod(real, 0o600)
    host = Host(Paths.rooted(root))
    doc, _ = document.load(host)
    return document.build(doc, host, warn)


WORKER = (f"apiVersion: kbootd.io/v1alpha1\nkind: KbootdConfiguration\nrole: worker\ntoken: {TOKEN}\n"
          f"endpoint: 10.0.0.10:6443\ncaCertHash: {PIN}\nnodeName: w-1\n")


@pytest.mark.parametrize("embedded,field", [
    ("discovery: [a, b]", "discovery"), ("discovery: x", "discovery"),
    ("nodeRegistration: [a]", "nodeRegistration"), ("nodeRegistration: 5", "nodeRegistration"),
    ("discovery:\n    bootstrapToken: [a]", "bootstrapToken"),
])
def test_a_non_mapping_section_of_an_embedded_join_configuration(root, embedded, field):
    text = WORKER + ("kubeadm:\n  apiVersion: kubeadm.k8s.io/v1beta4\n  kind: JoinConfiguration\n  "
                     + embedded + "\n")
    with pytest.raises(ValidationError) as e:
        _daemon(root, {"/etc/kbootd/kbootd.yaml": text})
    assert "/etc/kbootd/kbootd.yaml" in str(e.value) and field in str(e.value)


def test_deeply_nested_instance_data_is_exit_3_naming_the_file(root):
    nested = "[" * 100_000 + "]" * 100_000
    with pytest.raises(ValidationError) as e:
        _daemon(root, {"/etc/kbootd/kbootd.yaml": WORKER,
                       "/run/cloud-init/instance-data-sensitive.json": '{"ds": ' + nested + "}"})
    assert "/run/cloud-init/instance-data-sensitive.json" in str(e.value)


def test_deeply_nested_combined_cloud_config_is_exit_3_naming_the_file(root):
    with pytest.raises(ValidationError) as e:
        _daemon(root, {"/run/cloud-init/combined-cloud-config.json": '{"kbootd": ' + "[" * 100_000 + "}"})
    assert "/run/cloud-init/combined-cloud-config.json" in str(e.value)


def test_deep_but_valid_instance_data_is_exit_3_not_a_recursion_error(root):
    deep = '{"a": ' * 5000 + "1" + "}" * 5000
    with pytest.raises(ValidationError) as e:
        _daemon(root, {"/etc/kbootd/kbootd.yaml": WORKER.replace("role: worker\n", ""),
                       "/run/cloud-init/instance-data-sensitive.json": '{"ds": {"meta_data": ' + deep + "}}"})
    assert "/run/cloud-init/instance-data-sensitive.json" in str(e.value)


# --- errors name their source (issue 11 #10) -----------------------------------------------------------

def test_service_ip_names_where_the_cidr_came_from():
    from kbootd.config.validate import service_ip

    with pytest.raises(ValidationError, match=r"^--service-cidr: service CIDR 10.96.0.0/29 is too small"):
        service_ip("10.96.0.0/29", 10, "--service-cidr")


@pytest.mark.parametrize("argv,flag", [
    (["--service-cidr", "10.96.0.0/30"], "--service-cidr"),
    (["--pod-network-cidr", "10.244.0.0/30"], "--pod-network-cidr"),
    (["--service-cidr", "10.96.0.0/12", "--pod-network-cidr", "10.96.0.0/16"], "--pod-network-cidr"),
    (["--cert-dir", "pki"], "--cert-dir"),
])
def test_a_whole_config_rule_broken_by_flags_names_the_flag(run_cli, root, argv, flag):
    code, _out, err = run_cli("init", "--dry-run", "--root", str(root), *argv)
    assert code == 3
    assert f"error: {flag}: " in err, err


@pytest.mark.parametrize("text,role,field", [
    (B4 + "kind: InitConfiguration\nskipPhases: [addon/kube-proxy, bogus]\n", "init", "InitConfiguration.skipPhases[1]"),
    (B3 + "kind: InitConfiguration\nskipPhases: [bogus]\n", "init", "InitConfiguration.skipPhases[0]"),
    (B4 + "kind: JoinConfiguration\nskipPhases: [certs]\ndiscovery:\n  bootstrapToken:\n"
          "    token: abcdef.0123456789abcdef\n    apiServerEndpoint: 10.0.0.1:6443\n"
          "    unsafeSkipCAVerification: true\n", "join", "JoinConfiguration.skipPhases[0]"),
])
def test_skip_phases_in_a_config_is_checked_at_load_and_named_as_the_field(text, role, field):
    msg = fails(text, field, "no phase named", role=role)
    assert "--skip-phases" not in msg
    assert f"{PATH}:3: " in msg  # the line of skipPhases


def test_config_validate_reports_a_bogus_skip_phase(run_cli, tmp_path):
    cfg = tmp_path / "k.yaml"
    cfg.write_text(B4 + "kind: InitConfiguration\nskipPhases: [bogus]\n")
    code, out, err = run_cli("config", "validate", "--config", str(cfg))
    assert code == 3 and "ok" not in out
    assert f"{cfg}:3: InitConfiguration.skipPhases[0]: no phase named 'bogus'" in err


@pytest.mark.parametrize("argv,flag", [
    (["ca", "generate", "--validity", "99999999999h"], "--validity"),
    (["ca", "generate", "--validity", ".inf"], "--validity"),
    (["token", "create", TOKEN, "--ttl", "1" + "0" * 30 + "h", "--kubeconfig", "/nonexistent"], "--ttl"),
    (["init", "--dry-run", "--token-ttl", "99999999999h"], "--token-ttl"),
    (["init", "--dry-run", "--kubernetes-version", "v1." + "9" * 30 + ".0"], "--kubernetes-version"),
])
def test_out_of_range_flags_are_exit_3_naming_the_flag(run_cli, root, argv, flag):
    if argv[0] == "init":
        argv = [*argv, "--root", str(root)]
    code, _out, err = run_cli(*argv)
    assert code == 3, err
    assert flag in err and "internal error" not in err
