"""Long node names (issue 11 #9): kbootd issues certificates whose CommonName exceeds RFC 5280's
64 characters, as kubeadm (Go) does, instead of dying with an internal error."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from tests.test_crash import CONFIG, check_pki, init_local

# A 253-character FQDN: the longest DNS name, hence the longest node name.
LONGEST = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
FQDN_53 = "ip-10-20-30-40.eu-central-1.compute.internal.example"  # 52: system:node:<it> is 64


@pytest.mark.parametrize("name", [FQDN_53 + "x", "n" * 65, LONGEST])
def test_init_issues_certificates_for_long_node_names(tmp_path: Path, name: str) -> None:
    assert len(name) <= 253
    cfg = tmp_path / "kubeadm.yaml"
    cfg.write_text(CONFIG.replace("name: cp-1", f"name: {name}"))
    root = tmp_path / "R"
    root.mkdir()
    assert init_local(root, cfg) == 0
    pki = root / "etc/kubernetes/pki"
    server = x509.load_pem_x509_certificate((pki / "etcd/server.crt").read_bytes())
    assert server.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == name
    check_pki(root)
    assert init_local(root, cfg) == 0  # the re-run reads and validates them
