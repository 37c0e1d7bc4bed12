"""The daemon's control-plane join: an explicit setting (controlPlaneJoin), never an election; the
certificate key only from a root-only file; a joining control plane waits without a deadline."""

from __future__ import annotations

import math

import pytest

from kbootd.config.model import InitConfig, JoinConfig
from kbootd.daemon import document
from kbootd.daemon.inputs import Gathered, Source
from kbootd.errors import ValidationError
from kbootd.hostio import Host
from kbootd.paths import Paths
from kbootd.redact import redact

TOKEN = "abcdef.0123456789abcdef"
PIN = "sha256:" + "ab" * 32
KEY = "3f1c2a9b8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a392817f6e5d4c3"
JOINER = {"role": "control-plane", "controlPlaneJoin": True, "token": TOKEN, "endpoint": "lb.example:6443",
          "caCertHash": PIN, "nodeName": "cp-2"}


@pytest.fixture
def host(root):
    return Host(Paths.rooted(root))


def src(data, name="/etc/kbootd/kbootd.yaml", **kw):
    return Source(name, name, data, {k: f"{name}: {k}" for k in data}, **kw)


def build(host, data, **kw):
    return document.build(document.merge(Gathered([src(data, **kw)], ["(test)"]), host), host, print)


def test_control_plane_join_is_a_join_with_control_plane_that_waits_forever(host):
    doc = document.merge(Gathered([src({**JOINER, "certificateKey": KEY}, holds_secret=True, mode=0o600, uid=0)],
                                  ["(test)"]), host)
    assert doc.engine_role == "join" and doc.role == "control-plane"
    cfg = document.build(doc, host, print)
    assert isinstance(cfg, JoinConfig)
    assert cfg.control_plane is not None and cfg.control_plane.certificate_key == KEY
    assert cfg.timeouts.discovery == math.inf and cfg.timeouts.etcd_api_call == math.inf
    assert cfg.api_server_endpoints == ("lb.example:6443",) and cfg.node.name == "cp-2"
    assert KEY not in doc.summary() and "certificate key given" in doc.summary()
    assert KEY not in redact(f"key {KEY}")  # registered the moment it was parsed


def test_pre_shared_joiner_needs_no_key(host):
    cfg = build(host, JOINER)
    assert cfg.control_plane is not None and cfg.control_plane.certificate_key is None


def test_the_first_control_plane_uploads_with_the_shared_key(host):
    cfg = build(host, {"role": "control-plane", "token": TOKEN, "endpoint": "lb.example:6443", "certificateKey": KEY},
                holds_secret=True, mode=0o600, uid=0)
    assert isinstance(cfg, InitConfig)
    assert cfg.upload_certs and cfg.certificate_key == KEY
    assert cfg.cluster.control_plane_endpoint == "lb.example:6443"


@pytest.mark.parametrize("data,msg", [
    ({"role": "worker", "controlPlaneJoin": True, "token": TOKEN, "endpoint": "10.0.0.1:6443", "caCertHash": PIN},
     "controlPlaneJoin is for role control-plane"),
    ({"role": "worker", "certificateKey": KEY, "token": TOKEN, "endpoint": "10.0.0.1:6443", "caCertHash": PIN},
     "certificateKey is for control planes only"),
    ({**JOINER, "certificateKey": "nothex"}, "certificateKey: the certificate key must be 64 hexadecimal digits"),
    ({**JOINER, "controlPlaneJoin": "perhaps"}, "expected true or false"),
    ({**{k: v for k, v in JOINER.items() if k != "caCertHash"}}, "no CA pin"),
])
def test_bad_settings_name_the_field(host, data, msg):
    with pytest.raises(ValidationError, match=msg):
        build(host, data, holds_secret=True, mode=0o600, uid=0)


def test_certificate_key_only_from_a_root_only_file(host):
    with pytest.raises(ValidationError, match="readable by others than root") as e:
        build(host, {**JOINER, "certificateKey": KEY}, holds_secret=True, mode=0o644, uid=0)
    assert KEY not in str(e.value)


def test_a_file_with_a_certificate_key_counts_as_secret(host, root):
    from kbootd.daemon.inputs import gather

    p = root / "etc/kbootd/kbootd.yaml"
    p.parent.mkdir(parents=True)
    p.write_text("apiVersion: kbootd.io/v1alpha1\nkind: KbootdConfiguration\nrole: control-plane\n"
                 f"controlPlaneJoin: true\ncertificateKey: {KEY}\n")
    p.chmod(0o644)
    g = gather(host)
    assert any(s.holds_secret for s in g.sources)


def test_fingerprint_changes_with_the_join_setting_but_not_for_older_documents(host):
    base = {"role": "control-plane", "token": TOKEN, "endpoint": "lb.example:6443", "caCertHash": PIN}
    fp = lambda d: document.fingerprint(document.merge(Gathered([src(d)], ["(t)"]), host), host)  # noqa: E731
    assert fp(base) != fp({**base, "controlPlaneJoin": True})
    assert KEY not in fp({**base, "controlPlaneJoin": True, "certificateKey": KEY})
