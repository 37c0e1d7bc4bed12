"""The command line: every flag of the spec (and today's names), the --config rule, exit codes."""

import json
import subprocess
import sys

import pytest
import yaml

from kbootd.cli.parser import build
from kbootd.config.load import config_conflicts, init_from_flags, join_from_flags
from kbootd.errors import ValidationError
from tests.shared import FIXTURES

FIX = FIXTURES / "kubeadm"


def parse(*argv):
    return build().parse_args(list(argv))


INIT_FLAGS = [
    (["--apiserver-advertise-address", "10.0.0.10"], "apiserver_advertise_address", "10.0.0.10"),
    (["--apiserver-bind-port", "6444"], "apiserver_bind_port", "6444"),
    (["--apiserver-cert-extra-sans", "a.example.com,10.1.1.1", "--apiserver-cert-extra-sans", "b.example.com"],
     "apiserver_cert_extra_sans", ["a.example.com", "10.1.1.1", "b.example.com"]),
    (["--cert-dir", "/pki"], "cert_dir", "/pki"),
    (["--config", "k.yaml"], "config", "k.yaml"),
    (["--dry-run"], "dry_run", True),
    (["--feature-gates", "EtcdLearnerMode=true,RootlessControlPlane=false"], "feature_gates",
     ["EtcdLearnerMode=true", "RootlessControlPlane=false"]),
    (["--kubernetes-version", "v1.31.2"], "kubernetes_version", "v1.31.2"),
    (["--node-name", "cp-1"], "node_name", "cp-1"),
    (["--pod-network-cidr", "10.244.0.0/16"], "pod_network_cidr", "10.244.0.0/16"),
    (["--service-cidr", "10.97.0.0/16"], "service_cidr", "10.97.0.0/16"),
    (["--service-dns-domain", "corp.local"], "service_dns_domain", "corp.local"),
    (["--skip-preflight-checks"], "skip_preflight_checks", True),
    (["--skip-token-print"], "skip_token_print", True),
    (["--token", "abcdef.0123456789abcdef"], "token", "abcdef.0123456789abcdef"),
    (["--token-ttl", "2h"], "token_ttl", "2h"),
    (["--ignore-preflight-errors", "Swap,NumCPU", "--ignore-preflight-errors=Mem"], "ignore_preflight_errors",
     ["Swap", "NumCPU", "Mem"]),
    (["--cri-socket", "unix:///run/crio/crio.sock"], "cri_socket", "unix:///run/crio/crio.sock"),
    (["--control-plane-endpoint", "lb.example.com:6443"], "control_plane_endpoint", "lb.example.com:6443"),
    (["--image-repository", "registry.example.com/k8s"], "image_repository", "registry.example.com/k8s"),
    (["-v", "5"], "verbosity", 5),
    (["--verbosity=3"], "verbosity", 3),
    (["--skip-phases", "preflight", "--skip-phases", "certs/ca,cri"], "skip_phases", ["preflight", "certs/ca", "cri"]),
    (["--root", "/tmp/r"], "root", "/tmp/r"),
]


@pytest.mark.parametrize("argv,dest,value", INIT_FLAGS)
def test_every_init_flag(argv, dest, value):
    assert getattr(parse("init", *argv), dest) == value


JOIN_FLAGS = [
    (["10.0.0.10:6443", "10.0.0.11:6443"], "endpoints", ["10.0.0.10:6443", "10.0.0.11:6443"]),
    (["--config", "j.yaml"], "config", "j.yaml"),
    (["--discovery-file", "https://example.com/c.conf"], "discovery_file", "https://example.com/c.conf"),
    (["--discovery-token", "abcdef.0123456789abcdef"], "discovery_token", "abcdef.0123456789abcdef"),
    (["--discovery-token-ca-cert-hash", "sha256:aa", "--discovery-token-ca-cert-hash", "sha256:bb,sha256:cc"],
     "discovery_token_ca_cert_hash", ["sha256:aa", "sha256:bb", "sha256:cc"]),
    (["--discovery-token-unsafe-skip-ca-verification"], "discovery_token_unsafe_skip_ca_verification", True),
    (["--discovery-timeout", "30s"], "discovery_timeout", "30s"),
    (["--node-name", "w1"], "node_name", "w1"),
    (["--tls-bootstrap-token", "fedcba.0123456789abcdef"], "tls_bootstrap_token", "fedcba.0123456789abcdef"),
    (["--token", "abcdef.0123456789abcdef"], "token", "abcdef.0123456789abcdef"),
    (["--skip-preflight-checks"], "skip_preflight_checks", True),
    (["--ignore-preflight-errors", "all"], "ignore_preflight_errors", ["all"]),
    (["--cri-socket", "/run/containerd/containerd.sock"], "cri_socket", "/run/containerd/containerd.sock"),
    (["--dry-run"], "dry_run", True),
]


@pytest.mark.parametrize("argv,dest,value", JOIN_FLAGS)
def test_every_join_flag(argv, dest, value):
    assert getattr(parse("join", *argv), dest) == value


def test_init_flags_build_the_model():
    a = parse("init", "--apiserver-advertise-address", "10.0.0.10", "--apiserver-bind-port", "6444",
              "--apiserver-cert-extra-sans", "k.example.com,10.1.1.1", "--cert-dir", "/pki",
              "--kubernetes-version", "1.31.2", "--node-name", "CP-1", "--pod-network-cidr", "10.244.0.0/16",
              "--service-cidr", "10.97.0.0/16", "--service-dns-domain", "corp.local",
              "--token", "abcdef.0123456789abcdef", "--token-ttl", "0", "--cri-socket", "/run/x.sock",
              "--control-plane-endpoint", "lb.example.com", "--image-repository", "r.example.com",
              "--feature-gates", "EtcdLearnerMode=false")
    c = init_from_flags(a, print)
    assert c.advertise_address == "10.0.0.10" and c.bind_port == 6444
    assert c.cluster.api_server_cert_sans == ("k.example.com", "10.1.1.1")
    assert c.cluster.certificates_dir == "/pki" and c.cluster.kubernetes_version == "v1.31.2"
    assert c.node.name == "cp-1" and c.node.cri_socket == "unix:///run/x.sock"
    assert c.cluster.networking.service_subnet == "10.97.0.0/16"
    assert c.cluster.networking.dns_domain == "corp.local"
    assert c.bootstrap_tokens[0].ttl == 0
    assert c.cluster.control_plane_endpoint == "lb.example.com:6444"  # takes the bind port, as kubeadm
    assert c.cluster.image_repository == "r.example.com"
    assert c.cluster.feature_gates == (("EtcdLearnerMode", False),)


def test_join_token_precedence():
    a = parse("join", "10.0.0.10:6443", "--token", "abcdef.0123456789abcdef",
              "--tls-bootstrap-token", "fedcba.0123456789abcdef",
              "--discovery-token-ca-cert-hash", "sha256:" + "a" * 64)
    c = join_from_flags(a, print)
    assert c.discovery_token.id == "abcdef" and c.tls_bootstrap_token.id == "fedcba"


CONFIG_FLAGS = [f for f in INIT_FLAGS if f[1] not in {
    "config", "dry_run", "skip_preflight_checks", "skip_token_print", "ignore_preflight_errors",
    "verbosity", "skip_phases", "root"}]


@pytest.mark.parametrize("argv,dest,value", CONFIG_FLAGS)
def test_config_flag_with_config_is_an_error(argv, dest, value):
    a = parse("init", "--config", "k.yaml", *argv)
    with pytest.raises(ValidationError, match="cannot be mixed with --config") as e:
        config_conflicts(a)
    assert str(e.value).startswith("--" + dest.replace("_", "-"))


@pytest.mark.parametrize("argv", [["--dry-run"], ["--skip-preflight-checks"], ["--skip-token-print"],
                                  ["--ignore-preflight-errors", "all"], ["-v", "3"], ["--skip-phases", "preflight"]])
def test_behaviour_flags_allowed_with_config(argv):
    config_conflicts(parse("init", "--config", "k.yaml", *argv))


def test_join_endpoint_with_config_is_an_error():
    with pytest.raises(ValidationError, match="--endpoints"):
        config_conflicts(parse("join", "--config", "j.yaml", "10.0.0.1:6443"))


@pytest.mark.parametrize("argv,code,pattern", [
    (["init", "--token", "bad"], 3, "--token: the token"),
    (["init", "--pod-network-cidr", "10.96.0.0/16"], 3, "overlaps"),
    (["init", "--apiserver-bind-port", "0"], 3, "not a port"),
    (["init", "--feature-gates", "SelfHosting=true"], 3, "SelfHosting is not supported"),
    (["init", "--config", "/nonexistent/k.yaml"], 3, "no such file"),
    (["init", "--bogus"], 3, "unrecognized arguments: --bogus"),
    (["frobnicate"], 3, "invalid choice"),
    (["join", "10.0.0.1:6443", "--token", "abcdef.0123456789abcdef"], 3, "discovery-token-ca-cert-hash"),
    (["join", "--discovery-file", "http://example.com/c.conf"], 4, "plain-HTTP"),
    (["join", "--token", "abcdef.0123456789abcdef", "--discovery-token-unsafe-skip-ca-verification"], 3,
     "at least one API server endpoint"),
])
def test_user_errors_are_one_line_with_exit_code(run_cli, argv, code, pattern):
    rc, out, err = run_cli(*argv)
    assert rc == code
    assert pattern in err
    assert "Traceback" not in err
    assert err.startswith("error: ")


def test_secret_never_in_error_output(run_cli):
    rc, out, err = run_cli("init", "--token", "abcdef.0123456789abcdef", "--pod-network-cidr", "10.96.0.0/16")
    assert rc == 3
    assert "0123456789abcdef" not in out + err


def test_verbose_5_shows_traceback(run_cli):
    rc, out, err = run_cli("init", "--token", "bad", "-v", "5")
    assert rc == 3 and "Traceback" in err


def test_token_generate(run_cli):
    rc, out, err = run_cli("token", "generate")
    assert rc == 0
    import re

    assert re.fullmatch(r"[a-z0-9]{6}\.[a-z0-9]{16}\n", out)


def test_config_print_init_defaults_matches_kubeadm(run_cli):
    rc, out, _ = run_cli("config", "print", "init-defaults")
    assert rc == 0
    assert out == (FIX / "print-init-defaults.yaml").read_text()


def test_config_print_join_defaults_matches_kubeadm_but_for_the_host_name(run_cli):
    rc, out, _ = run_cli("config", "print", "join-defaults")
    got, want = yaml.safe_load(out), yaml.safe_load((FIX / "print-join-defaults.yaml").read_text())
    # kubeadm puts the machine's host name there ("vm" where it was recorded).
    got["nodeRegistration"].pop("name")
    want["nodeRegistration"].pop("name")
    assert got == want


def test_config_images_list_matches_kubeadm(run_cli):
    rc, out, _ = run_cli("config", "images", "list", "--kubernetes-version", "v1.32.0")
    assert rc == 0 and out == (FIX / "images-list-v1.32.0.txt").read_text()


@pytest.mark.parametrize("fmt", ["json", "yaml", None])
def test_version(run_cli, fmt):
    rc, out, _ = run_cli("version", *(["-o", fmt] if fmt else []))
    assert rc == 0
    if fmt == "json":
        assert json.loads(out)["clientVersion"]["gitVersion"].startswith("v")
    elif fmt == "yaml":
        assert yaml.safe_load(out)["clientVersion"]["defaultKubernetesVersion"] == "v1.32.0"
    else:
        assert out.startswith("kbootd version: &version.Info{GitVersion:")


@pytest.mark.parametrize("shell,marker", [("bash", "complete -o"), ("zsh", "#compdef kbootd")])
def test_completion_generated_by_shtab(run_cli, shell, marker):
    rc, out, _ = run_cli("completion", shell)
    assert rc == 0 and marker in out
    assert "--discovery-token-ca-cert-hash" in out and "--apiserver-cert-extra-sans" in out


def test_help_lists_commands(run_cli):
    rc, out, _ = run_cli("--help")
    assert rc == 0
    for c in ("init", "join", "phase", "token", "config", "completion", "version"):
        assert c in out


def test_join_help_has_spec_flags(run_cli):
    rc, out, _ = run_cli("join", "--help")
    for flag in ("--discovery-file", "--discovery-token", "--discovery-token-ca-cert-hash",
                 "--discovery-token-unsafe-skip-ca-verification", "--tls-bootstrap-token", "--token",
                 "--skip-preflight-checks", "--node-name", "--config"):
        assert flag in out


@pytest.mark.subprocess
@pytest.mark.parametrize("argv", [["version"], ["token", "generate"], ["--help"]])
def test_light_commands_do_not_import_heavy_modules(argv):
    code = (f"import sys; from kbootd.cli.main import main\ntry: main({argv!r})\nexcept SystemExit: pass\n"
            "heavy = [m for m in ('kubernetes', 'requests', 'cryptography', 'yaml', 'urllib3') if m in sys.modules]; "
            "sys.stderr.write('HEAVY=' + ','.join(heavy))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "HEAVY=" in p.stderr
    assert p.stderr.split("HEAVY=")[1].strip() == ""
