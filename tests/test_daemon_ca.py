import argparse
import io
import json

import pytest
import yaml

from kbootd import pin
from kbootd.daemon import ca
from kbootd.pki import certs, keys


@pytest.fixture(autouse=True)
def fast_keys():
    with keys.key_factory(lambda alg: keys.generate_key("ECDSA-P256")):
        yield


def test_generate_makes_a_kubeadm_style_ca_and_its_pin():
    m = ca.generate()
    cert = certs.load_cert_pem(m.cert_pem.encode(), "ca.crt")
    key = keys.load_private_key_pem(m.key_pem.encode(), "ca.key")
    assert certs.is_ca(cert) and certs.common_name(cert) == "kubernetes"
    assert certs.key_matches(cert, key)
    assert m.pin == pin.pin_of(cert) and m.pin.startswith("sha256:")
    assert (certs.not_after(cert) - certs.not_before(cert)).days in (3650, 3651)


def test_user_data_snippet_is_cloud_config():
    m = ca.generate()
    files = yaml.safe_load(ca.control_plane_user_data(m))["write_files"]
    assert [(f["path"], f["permissions"]) for f in files] == [
        ("/etc/kubernetes/pki/ca.crt", "0644"), ("/etc/kubernetes/pki/ca.key", "0600")]
    assert files[0]["content"] == m.cert_pem and files[1]["content"] == m.key_pem


@pytest.mark.parametrize("output", ["text", "json"])
def test_command_prints_cert_key_and_pin(output):
    out = io.StringIO()
    assert ca.command(argparse.Namespace(output=output, validity="8760h", common_name="my-ca"), out) == 0
    text = out.getvalue()
    if output == "json":
        data = json.loads(text)
        assert set(data) == {"caCert", "caKey", "caCertHash"}
        cert = certs.load_cert_pem(data["caCert"].encode(), "x")
        assert pin.pin_of(cert) == data["caCertHash"] and certs.common_name(cert) == "my-ca"
    else:
        assert "CA pin, for every worker" in text and "BEGIN CERTIFICATE" in text
        assert yaml.safe_load(text)["write_files"][1]["path"] == "/etc/kubernetes/pki/ca.key"


def test_command_writes_files_with_modes(tmp_path):
    out = io.StringIO()
    assert ca.command(argparse.Namespace(out_dir=str(tmp_path / "ca")), out) == 0
    assert (tmp_path / "ca/ca.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "ca/ca.crt").stat().st_mode & 0o777 == 0o644
    assert pin.pin_of((tmp_path / "ca/ca.crt").read_bytes()) in out.getvalue()
    assert "PRIVATE KEY" not in out.getvalue()
