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
from tests.test_daemon_main import notify  # noqa: F401 - fixture

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


def test_the_daemon_runs_join_for_a_joining_control_plane(root, notify):  # noqa: F811
    """With controlPlaneJoin the daemon runs the join workflow (not init, and not the CA pin check init
    does) with the control plane's settings, waits forever, and says what it waits for."""
    import json

    from tests import test_daemon_main as dm

    with pytest.MonkeyPatch.context() as mp:
        dm.CALLS.clear()
        dm.SEEN.clear()
        mp.setitem(dm.WORKFLOWS, "join", dm.JOIN)
        mp.setitem(dm.WORKFLOWS, "init", dm.INIT)
        mp.setattr(dm.daemon_main, "_sleep", lambda s: None)
        dm.write(root, "/etc/kbootd/kbootd.yaml", "apiVersion: kbootd.io/v1alpha1\nkind: KbootdConfiguration\n"
                 + "".join(f"{k}: {json.dumps(v)}\n" for k, v in {**JOINER, "certificateKey": KEY}.items()))
        # A CA that is not the pinned one: init would refuse it; a joiner leaves it to download-certs.
        dm.write(root, "/etc/kubernetes/pki/ca.crt", dm.generate().cert_pem, 0o644)
        assert dm.run(root) == 0
    assert dm.CALLS == ["discovery", "kubelet-start"]
    cfg = dm.SEEN["cfg"]
    assert cfg.control_plane.certificate_key == KEY and cfg.timeouts.etcd_api_call == math.inf
    msgs = notify()
    assert any("join: discovery: waiting for" in m for m in msgs)
    assert any("control-plane cp-2 joined" in m for m in msgs), msgs
    text = (root / "run/kbootd/status.json").read_text() + (root / "var/lib/kbootd/state.json").read_text()
    assert KEY not in text and KEY not in "".join(msgs)
