"""Every cloud-init example: its kbootd settings pass the JSON schema and the daemon's own loader.

Real `cloud-init schema` runs on the examples in the e2e container; here the write_files
entries are checked for the shape cloud-init's schema wants.
"""

import json
import os
import re
from pathlib import Path

import pytest
import yaml

from kbootd import pin
from kbootd.config.model import InitConfig, JoinConfig
from kbootd.daemon import document
from kbootd.daemon import inputs as document_inputs
from kbootd.hostio import Host
from kbootd.paths import Paths

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "cloud-init/examples").glob("*.yaml"))
SCHEMA = json.loads((REPO / "cloud-init/schema/kbootd.schema.json").read_text())
USER_DATA = [p for p in EXAMPLES if p.read_text().startswith("#cloud-config\n")]
CLOUD_CONFIG_KEYS = {"write_files", "packages", "package_update", "runcmd"}
EXPECTED_ROLE = {"control-plane.yaml": "control-plane", "control-plane-with-ca.yaml": "control-plane",
                 "worker.yaml": "worker", "install-package.yaml": "worker", "user-data-key.yaml": "worker",
                 "nocloud-meta-data.yaml": "worker", "ha-control-plane-init.yaml": "control-plane",
                 "ha-control-plane-join.yaml": "control-plane", "ha-worker.yaml": "worker"}


def kbootd_documents(cfg: dict) -> list[tuple[str, dict, bool]]:
    """(where, document, is_file) for each kbootd document an example delivers."""
    out = []
    for f in cfg.get("write_files") or []:
        if f["path"].startswith("/etc/kbootd/"):
            out.append((f["path"], yaml.safe_load(f["content"]), True))
    if "kbootd" in cfg:
        out.append(("kbootd:", cfg["kbootd"], False))
    return out


def install(root: Path, cfg: dict) -> None:
    """What cloud-init's init stage would leave on disk for this user-data."""
    for f in cfg.get("write_files") or []:
        real = root / f["path"].lstrip("/")
        real.parent.mkdir(parents=True, exist_ok=True)
        real.write_text(f["content"])
        os.chmod(real, int(f.get("permissions", "0644"), 8))
    if "kbootd" in cfg:
        real = root / "run/cloud-init/combined-cloud-config.json"
        real.parent.mkdir(parents=True, exist_ok=True)
        real.write_text(json.dumps(cfg))
        real.chmod(0o600)


def test_every_example_is_covered():
    assert {p.name for p in EXAMPLES} == set(EXPECTED_ROLE)


@pytest.mark.parametrize("path", USER_DATA, ids=lambda p: p.name)
def test_user_data_shape_cloud_init_accepts(path):
    cfg = yaml.safe_load(path.read_text())
    extra = set(cfg) - CLOUD_CONFIG_KEYS
    assert extra <= {"kbootd"} and (not extra or path.name == "user-data-key.yaml"), extra
    for f in cfg.get("write_files", []):
        assert set(f) <= {"path", "content", "owner", "permissions", "encoding", "append", "defer"}
        assert f["path"].startswith("/") and isinstance(f["content"], str)
        assert re.fullmatch(r"0[0-7]{3}", f["permissions"])  # a string: YAML would read 0600 as octal 384
        if "key" in f["path"] or f["path"].startswith("/etc/kbootd/"):
            assert f["permissions"] == "0600", f["path"]
    for cmd in cfg.get("runcmd", []):
        assert isinstance(cmd, (str, list))


@pytest.mark.parametrize("path", USER_DATA, ids=lambda p: p.name)
def test_example_settings_load_and_build(path, root):
    cfg = yaml.safe_load(path.read_text())
    install(root, cfg)
    host = Host(Paths.rooted(root))
    doc, gathered = document.load(host)
    assert gathered.sources, "no kbootd settings found"
    built = document.build(doc, host, lambda m: None)
    assert doc.role == EXPECTED_ROLE[path.name]
    assert isinstance(built, InitConfig if doc.engine_role == "init" else JoinConfig)
    if path.name == "ha-control-plane-join.yaml":  # the explicit setting, not the role, makes it join
        assert doc.role == "control-plane" and built.control_plane is not None


def test_metadata_example_is_meta_data_not_cloud_config():
    """NoCloud meta-data is a plain YAML mapping (no #cloud-config header, no cloud-config
    keys); its kbootd-* keys are the ones kbootd reads. The e2e boots it as a real seed."""
    text = (REPO / "cloud-init/examples/nocloud-meta-data.yaml").read_text()
    md = yaml.safe_load(text)
    assert not text.startswith("#cloud-config") and isinstance(md, dict)
    assert {"instance-id", "local-hostname"} <= set(md) and not set(md) & CLOUD_CONFIG_KEYS
    assert {k for k in md if k.startswith("kbootd")} <= set(document_inputs.METADATA_KEYS)
    assert "world-readable" in text and "write_files" in text  # the token warning is beside it


def test_the_degrading_form_says_so():
    text = (REPO / "cloud-init/examples/user-data-key.yaml").read_text()
    assert text.splitlines()[1].startswith("# DEGRADES cloud-init 23.4")


def test_metadata_example_loads_and_builds(root):
    md = yaml.safe_load((REPO / "cloud-init/examples/nocloud-meta-data.yaml").read_text())
    real = root / "run/cloud-init/instance-data-sensitive.json"
    real.parent.mkdir(parents=True)
    real.write_text(json.dumps({"ds": {"_doc": "EXPERIMENTAL", "meta_data": md}}))
    real.chmod(0o600)
    host = Host(Paths.rooted(root))
    doc, _ = document.load(host)
    assert isinstance(document.build(doc, host, lambda m: None), JoinConfig)


def test_pregenerated_ca_matches_every_pin():
    cfg = yaml.safe_load((REPO / "cloud-init/examples/control-plane-with-ca.yaml").read_text())
    files = {f["path"]: f["content"] for f in cfg["write_files"]}
    actual = pin.pin_of(files["/etc/kubernetes/pki/ca.crt"].encode())
    from kbootd.pki import certs, keys

    cert = certs.load_cert_pem(files["/etc/kubernetes/pki/ca.crt"].encode(), "ca.crt")
    assert certs.key_matches(cert, keys.load_private_key_pem(files["/etc/kubernetes/pki/ca.key"].encode(), "ca.key"))
    pins = set()
    for p in EXAMPLES:
        pins |= set(re.findall(r"sha256:[0-9a-f]{64}", p.read_text()))
    assert pins == {actual}


def test_schema_and_loader_agree_on_fields():
    assert set(SCHEMA["properties"]) == set(document.KNOWN)
    assert set(SCHEMA["properties"]["role"]["enum"]) == set(document.ROLES)
    assert SCHEMA["properties"]["apiVersion"]["const"] == document.API_VERSION
    assert SCHEMA["properties"]["kind"]["const"] == document.KIND


def schema_docs():
    for p in USER_DATA:
        for where, doc, is_file in kbootd_documents(yaml.safe_load(p.read_text())):
            if not is_file:  # the user-data key may leave the header out
                doc = {"apiVersion": document.API_VERSION, "kind": document.KIND, **doc}
            yield pytest.param(doc, id=f"{p.name}:{where}")


@pytest.mark.parametrize("doc", list(schema_docs()))
def test_examples_pass_the_json_schema(doc):
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(doc, SCHEMA)


HEADER = {"apiVersion": "kbootd.io/v1alpha1", "kind": "KbootdConfiguration"}


@pytest.mark.parametrize("bad", [
    {"role": "boss"}, {"token": "abcdef.short"}, {"endpoint": "a:1", "endpoints": ["b:2"]},
    {"caCertHash": "sha1:00"}, {"kubeadm": "x", "kubeadmConfigFile": "/y"}, {"tokn": "x"},
    {"supervise": {"interval": "soon"}}, {"kubeadmConfigFile": "relative.yaml"},
])
def test_schema_rejects_what_the_loader_rejects(bad, root):
    jsonschema = pytest.importorskip("jsonschema")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**HEADER, **bad}, SCHEMA)
