"""`kbootd ca generate --control-plane`: the shared material as cloud-init write_files, the pin, and
init reusing it unchanged (so every control plane built from the same user-data is one cluster)."""

from __future__ import annotations

import io
import json
from argparse import Namespace
from pathlib import Path

import yaml

from kbootd import engine
from kbootd.config.load import load_file
from kbootd.daemon import ca
from kbootd.pin import pin_of
from kbootd.pki import certs, keys
from kbootd.report import RecordingReporter
from tests.keycache import cached_keys

FILES = {"ca.crt": "0644", "ca.key": "0600", "front-proxy-ca.crt": "0644", "front-proxy-ca.key": "0600",
         "etcd/ca.crt": "0644", "etcd/ca.key": "0600", "sa.key": "0600", "sa.pub": "0600"}


def run(**kw) -> str:
    out = io.StringIO()
    args = Namespace(**{"control_plane": True, "common_name": None, "validity": None, "algorithm": None,
                        "output": "text", "out_dir": None, **kw})
    assert ca.command(args, out) == 0
    return out.getvalue()


def test_write_files_hold_every_shared_file_with_its_mode_and_the_pin():
    with cached_keys():
        text = run()
    doc = yaml.safe_load(text)
    got = {f["path"].removeprefix("/etc/kubernetes/pki/"): f for f in doc["write_files"]}
    assert {p: f["permissions"] for p, f in got.items()} == FILES
    ca_cert = certs.load_cert_pem(got["ca.crt"]["content"].encode(), "ca.crt")
    assert f"#   {pin_of(ca_cert)}\n" in text
    for base, cn in (("ca", "kubernetes"), ("front-proxy-ca", "front-proxy-ca"), ("etcd/ca", "etcd-ca")):
        cert = certs.load_cert_pem(got[f"{base}.crt"]["content"].encode(), base)
        assert certs.is_ca(cert) and certs.common_name(cert) == cn
        assert certs.key_matches(cert, keys.load_private_key_pem(got[f"{base}.key"]["content"].encode(), base))
    sa = keys.load_private_key_pem(got["sa.key"]["content"].encode(), "sa.key")
    assert keys.same_public_key(sa, keys.load_public_key_pem(got["sa.pub"]["content"].encode(), "sa.pub"))
    # three distinct CAs
    assert len({got[f"{b}.crt"]["content"] for b in ("ca", "front-proxy-ca", "etcd/ca")}) == 3


def test_json_and_out_dir(tmp_path: Path):
    with cached_keys():
        doc = json.loads(run(output="json"))
        assert sorted(f["path"] for f in doc["files"]) == sorted(f"/etc/kubernetes/pki/{p}" for p in FILES)
        out = run(out_dir=str(tmp_path / "shared"))
    assert "pin: sha256:" in out
    for rel, mode in FILES.items():
        assert (tmp_path / "shared" / rel).stat().st_mode & 0o777 == int(mode, 8), rel


def test_init_reuses_the_shared_material_unchanged(root: Path):
    with cached_keys():
        doc = yaml.safe_load(run())
        for f in doc["write_files"]:
            p = root / f["path"].lstrip("/")
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(f["content"])
            p.chmod(int(f["permissions"], 8))
        before = {f["path"]: f["content"] for f in doc["write_files"]}
        text = ("apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n"
                "localAPIEndpoint: {advertiseAddress: 10.0.0.10}\nnodeRegistration: {name: cp-1}\n")
        engine.run("init", load_file("k.yaml", "init", print, text=text), reporter=RecordingReporter(),
                   root=str(root), ignore_preflight_errors=("all",), only="certs")
    for path, content in before.items():
        assert (root / path.lstrip("/")).read_text() == content, path
    apiserver = certs.load_cert_pem((root / "etc/kubernetes/pki/apiserver.crt").read_bytes(), "apiserver")
    assert certs.signed_by(apiserver, certs.load_cert_pem(before["/etc/kubernetes/pki/ca.crt"].encode(), "ca"))
