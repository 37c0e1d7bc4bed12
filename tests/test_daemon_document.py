import json
import math
import os
from pathlib import Path

import pytest

from kbootd.config.model import InitConfig, JoinConfig
from kbootd.daemon import document
from kbootd.daemon.inputs import Gathered, Source
from kbootd.errors import ValidationError
from kbootd.hostio import Host
from kbootd.paths import Paths
from kbootd.redact import redact

TOKEN = "abcdef.0123456789abcdef"
SECRET = "0123456789abcdef"
PIN = "sha256:" + "0b5c07da32772eb431ea1ba6f4614eab673b8c42a313c767bd3f31f49da01d2d"
DOC = "apiVersion: kbootd.io/v1alpha1\nkind: KbootdConfiguration\n"
DATA = Path(__file__).parent / "data"


@pytest.fixture
def host(root):
    return Host(Paths.rooted(root))


def put(host, path, text, mode=0o600):
    real = host.paths.at(path)
    real.parent.mkdir(parents=True, exist_ok=True)
    real.write_text(text)
    os.chmod(real, mode)


def src(data, name="/etc/kbootd/kbootd.yaml", header=False, **kw):
    return Source(name, name, data, {k: f"{name}: {k}" for k in data}, header=header, **kw)


def merged(host, *sources):
    return document.merge(Gathered(list(sources), ["(test)"]), host)


def test_later_sources_win_field_by_field_and_remember_where(host):
    d = merged(host,
               src({"role": "worker", "nodeName": "a", "endpoint": "10.0.0.1:6443"}, "/etc/kbootd/kbootd.yaml"),
               src({"nodeName": "b"}, "/etc/kbootd/kbootd.d/10.yaml"),
               src({"endpoint": "https://10.0.0.10:6443/"}, "user-data"),
               src({"role": "master"}, "metadata"))
    assert (d.role, d.node_name, d.endpoints) == ("control-plane", "b", ("10.0.0.10:6443",))
    assert d.origin["role"] == "metadata: role"
    assert d.origin["nodeName"] == "/etc/kbootd/kbootd.d/10.yaml: nodeName"
    assert d.supervise_interval == 30.0
    assert d.origin["superviseInterval"].startswith("built-in defaults")


def test_embedded_kubeadm_choice_is_replaced_whole(host):
    d = merged(host, src({"kubeadm": "x: 1\n"}), src({"kubeadmConfigFile": "/etc/kbootd/k.yaml"}, "b"))
    assert (d.kubeadm, d.kubeadm_file) == (None, "/etc/kbootd/k.yaml")
    d = merged(host, src({"kubeadmConfigFile": "/k.yaml"}), src({"kubeadm": {"apiVersion": "a", "kind": "b"}}, "b"))
    assert d.kubeadm_file is None and "apiVersion: a" in d.kubeadm


@pytest.mark.parametrize("given,expect", [
    ("control-plane", "control-plane"), ("MASTER", "control-plane"), ("worker", "worker"), (" node ", "worker")])
def test_role_aliases(host, given, expect):
    assert merged(host, src({"role": given})).role == expect


@pytest.mark.parametrize("data,msg", [
    ({"role": "mastr"}, "'mastr' is not a role; expected control-plane (alias master) or worker (alias node)"),
    ({"role": ["worker"]}, "role: expected a string"),
    ({"token": "abcdef.short"}, "is not of the form"),
    ({"endpoint": "http://10.0.0.10:6443"}, "HTTPS only"),
    ({"endpoint": "10.0.0.10:99999"}, "not a port"),
    ({"endpoint": "a:1", "endpoints": ["b:2"]}, "endpoint or endpoints, not both"),
    ({"endpoints": []}, "at least one"),
    ({"caCertHash": "sha256:abc"}, "not a CA public-key pin"),
    ({"caCertHash": PIN, "caCertHashes": [PIN]}, "not both"),
    ({"unsafeSkipCAVerification": "yes"}, "expected true or false"),
    ({"nodeName": "Node_3"}, "not a valid node name"),
    ({"kubeadm": 3}, "expected a kubeadm configuration"),
    ({"kubeadm": "a", "kubeadmConfigFile": "/b"}, "not both"),
    ({"kubeadmConfigFile": "rel.yaml"}, "absolute path"),
    ({"supervise": {"interval": "0.5s"}}, "at least 1s"),
    ({"supervise": {"interval": "soon"}}, "not a duration"),
    ({"supervise": {"every": "1m"}}, "expected a mapping with interval"),
    ({"supervise": {"renewBefore": "10m"}}, "supervise.renewBefore: must be at least 1h"),
    ({"supervise": {"caWarnBefore": "soon"}}, "not a duration"),
    ({"tokn": TOKEN}, "unknown field 'tokn'"),
    ({"apiVersion": "kbootd.io/v2", "kind": "KbootdConfiguration"}, "expected apiVersion: kbootd.io/v1alpha1"),
])
def test_bad_values_name_their_source(host, data, msg):
    with pytest.raises(ValidationError) as e:
        merged(host, src(data, "/etc/kbootd/kbootd.d/50-x.yaml"))
    assert msg in str(e.value)
    assert "/etc/kbootd/kbootd.d/50-x.yaml" in str(e.value)
    assert SECRET not in str(e.value)


def test_files_need_the_header(host):
    with pytest.raises(ValidationError, match="expected apiVersion: kbootd.io/v1alpha1 and kind: KbootdConfiguration"):
        merged(host, src({"role": "worker"}, header=True))


@pytest.mark.parametrize("mode,uid_ok,secure", [(0o600, True, True), (0o640, True, False), (0o644, True, False),
                                                (0o400, True, True)])
def test_token_only_from_root_only_files(host, mode, uid_ok, secure):
    s = src({"token": TOKEN}, holds_secret=True, mode=mode, uid=0)
    if secure:
        assert merged(host, s).token.id == "abcdef"
    else:
        with pytest.raises(ValidationError, match=r"readable by others than root .*chmod|mode 0600") as e:
            merged(host, s)
        # Bad input the operator fixes here (exit 3, as the README says), not a failed
        # verification of the cluster (4).
        assert e.value.exit_code == 3 and SECRET not in str(e.value)


def test_file_without_token_may_be_world_readable(host):
    assert merged(host, src({"role": "worker"}, mode=0o644, uid=0)).role == "worker"


def test_missing_role_names_every_place(host):
    d = document.merge(Gathered([], ["/etc/kbootd/kbootd.yaml (absent)", "metadata in X (none)"]), host)
    with pytest.raises(ValidationError) as e:
        document.build(d, host, print)
    msg = str(e.value)
    assert "no role for this node" in msg and "/etc/kbootd/kbootd.yaml (absent)" in msg
    assert "metadata kbootd-role" in msg and "control-plane (alias master) or worker" in msg


@pytest.mark.parametrize("data,msg", [
    ({"role": "worker"}, "no bootstrap token for this worker"),
    ({"role": "worker", "token": TOKEN}, "no API server endpoint for this worker"),
    ({"role": "worker", "token": TOKEN, "endpoint": "10.0.0.10"}, "no CA pin for this worker"),
])
def test_worker_needs_token_endpoint_and_pin(host, data, msg):
    with pytest.raises(ValidationError) as e:
        document.build(merged(host, src(data)), host, print)
    assert msg in str(e.value) and "looked for" in str(e.value)


def test_worker_config_waits_forever(host):
    cfg = document.build(merged(host, src({"role": "worker", "token": TOKEN, "endpoints": "10.0.0.10,10.0.0.11:7443",
                                           "caCertHash": PIN, "nodeName": "node-3"})), host, print)
    assert isinstance(cfg, JoinConfig)
    assert cfg.timeouts.discovery == math.inf
    assert cfg.api_server_endpoints == ("10.0.0.10:6443", "10.0.0.11:7443")
    assert cfg.discovery_token.id == cfg.tls_bootstrap_token.id == "abcdef"
    assert cfg.ca_cert_hashes == (PIN,) and cfg.node.name == "node-3"


def test_unsafe_worker_without_pin(host):
    cfg = document.build(merged(host, src({"role": "worker", "token": TOKEN, "endpoint": "h:6443",
                                           "unsafeSkipCAVerification": "true"})), host, print)
    assert cfg.unsafe_skip_ca_verification and not cfg.ca_cert_hashes


@pytest.mark.parametrize("fixture", ["join-v1beta4.yaml", "node-v1alpha1.yaml"])
def test_worker_document_fields_override_embedded_kubeadm(host, fixture):
    text = (DATA / fixture).read_text()
    cfg = document.build(merged(host, src({"role": "worker", "token": "zzzzzz.0123456789abcdef",
                                           "endpoint": "10.9.9.9:6443", "caCertHash": PIN,
                                           "nodeName": "doc-node", "kubeadm": text})), host, print)
    assert cfg.discovery_token.id == "zzzzzz"
    assert cfg.api_server_endpoints == ("10.9.9.9:6443",)
    assert cfg.node.name == "doc-node" and PIN in cfg.ca_cert_hashes
    assert cfg.timeouts.discovery == math.inf


def test_worker_embedded_kubeadm_alone(host):
    text = (DATA / "join-v1beta4.yaml").read_text()
    cfg = document.build(merged(host, src({"role": "worker", "kubeadm": text})), host, print)
    assert cfg.api_server_endpoints == ("10.0.0.10:6443",) and cfg.node.name == "worker-1"
    assert cfg.tls_bootstrap_token.id == "fedcba" and cfg.timeouts.discovery == math.inf


def test_control_plane_config(host):
    emb = {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration",
           "networking": {"podSubnet": "10.244.0.0/16"}}
    cfg = document.build(merged(host, src({"role": "control-plane", "token": TOKEN, "endpoint": "10.0.0.10:6443",
                                           "nodeName": "cp-1", "kubeadm": emb})), host, print)
    assert isinstance(cfg, InitConfig)
    assert cfg.bootstrap_tokens[0].token.id == "abcdef"
    assert cfg.cluster.control_plane_endpoint == "10.0.0.10:6443"
    assert cfg.cluster.networking.pod_subnet == "10.244.0.0/16" and cfg.node.name == "cp-1"


def test_control_plane_without_anything_but_role(host):
    cfg = document.build(merged(host, src({"role": "control-plane"})), host, print)
    assert isinstance(cfg, InitConfig) and cfg.bootstrap_tokens[0].token is None


def test_embedded_kubeadm_of_the_wrong_role(host):
    text = (DATA / "join-v1beta4.yaml").read_text()
    with pytest.raises(ValidationError, match="init` needs InitConfiguration"):
        document.build(merged(host, src({"role": "control-plane", "kubeadm": text})), host, print)


@pytest.mark.parametrize("mode,ok", [(0o600, True), (0o644, False)])
def test_kubeadm_config_file(host, mode, ok):
    put(host, "/etc/kbootd/kubeadm.yaml", (DATA / "join-v1beta4.yaml").read_text(), mode)
    d = merged(host, src({"role": "worker", "kubeadmConfigFile": "/etc/kbootd/kubeadm.yaml"}))
    if ok:
        assert document.build(d, host, print).node.name == "worker-1"
    else:
        with pytest.raises(ValidationError, match="/etc/kbootd/kubeadm.yaml"):
            document.build(d, host, print)


def test_kubeadm_config_file_missing(host):
    d = merged(host, src({"role": "worker", "kubeadmConfigFile": "/etc/kbootd/nope.yaml"}))
    with pytest.raises(ValidationError, match="nope.yaml: no such file"):
        document.build(d, host, print)


def test_fingerprint_and_summary_hold_no_secret(host):
    base = {"role": "worker", "token": TOKEN, "endpoint": "10.0.0.10", "caCertHash": PIN}
    d1 = merged(host, src(base))
    fp1 = document.fingerprint(d1, host)
    d2 = merged(host, src({**base, "token": "abcdef.ffffffffffffffff"}))
    d3 = merged(host, src({**base, "token": "ghijkl.0123456789abcdef"}))
    d4 = merged(host, src({**base, "supervise": {"interval": "5m"}}))
    assert fp1.startswith("sha256:") and SECRET not in fp1
    assert document.fingerprint(d2, host) == fp1  # the secret is not part of it
    assert document.fingerprint(d3, host) != fp1
    assert document.fingerprint(d4, host) == fp1  # supervising settings may change freely
    assert SECRET not in d1.summary() and "token id abcdef" in d1.summary()
    assert SECRET not in json.dumps(d1.origin)


def test_parsed_token_is_registered_for_redaction(host):
    merged(host, src({"token": "qwerty.zyxwvutsrqponmlk"}))
    assert redact("x zyxwvutsrqponmlk y") == "x <redacted> y"


def test_certificate_windows_default_and_take_days_or_durations(host):
    d = merged(host, src({"role": "worker"}))
    assert (d.renew_before, d.ca_warn_before) == (90 * 86400, 365 * 86400)
    d = merged(host, src({"supervise": {"renewBefore": "30d", "caWarnBefore": "4380h"}}))
    assert (d.renew_before, d.ca_warn_before) == (30 * 86400, 182.5 * 86400)
    assert d.origin["renewBefore"].endswith("supervise")
