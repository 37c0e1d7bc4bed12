"""What the real openssl says about kbootd's PKI: chains, SANs, usages, pins, kubeadm parity."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest

from kbootd import kubeconfig as kc
from kbootd.pin import pin_of
from kbootd.pki import certlist
from tests.keycache import cached_keys
from tests.test_pki import (
    FIXTURE,
    comparable,
    fixture_file,
    make_cfg,
    make_ctx,
    openssl_facts,
    run_phase,
    validity,
)

pytestmark = [pytest.mark.subprocess,
              pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")]


def openssl(*args: str, stdin: bytes | None = None) -> bytes:
    p = subprocess.run(["openssl", *args], input=stdin, capture_output=True, check=False, timeout=30)
    assert p.returncode == 0, p.stderr.decode()
    return p.stdout


@pytest.fixture(scope="module", params=["RSA-2048", "ECDSA-P256"])
def pki_root(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp(f"pki-{request.param}")
    with cached_keys():
        ctx = make_ctx(root, make_cfg(algorithm=request.param))
        run_phase(ctx, "certs")
        run_phase(ctx, "kubeconfig")
    return root, request.param


def pki_file(root: Path, base: str, ext: str = "crt") -> Path:
    return root / "etc/kubernetes/pki" / f"{base}.{ext}"


@pytest.mark.parametrize("spec", [s for s in certlist.CERTS if not s.is_ca], ids=lambda s: s.name)
def test_openssl_verifies_every_leaf_against_its_ca(pki_root: tuple[Path, str], spec: certlist.CertSpec) -> None:
    root, _ = pki_root
    ca = certlist.spec(spec.ca or "")
    out = openssl("verify", "-CAfile", str(pki_file(root, ca.base)), str(pki_file(root, spec.base)))
    assert out.strip().endswith(b": OK")
    # key and certificate belong together: same public key
    assert (openssl("pkey", "-in", str(pki_file(root, spec.base, "key")), "-pubout")
            == openssl("x509", "-in", str(pki_file(root, spec.base)), "-noout", "-pubkey"))


@pytest.mark.parametrize("spec", [s for s in certlist.CERTS if not s.is_ca], ids=lambda s: s.name)
def test_openssl_refuses_the_wrong_ca(pki_root: tuple[Path, str], spec: certlist.CertSpec) -> None:
    root, _ = pki_root
    wrong = "front-proxy-ca" if spec.ca != "front-proxy-ca" else "ca"
    p = subprocess.run(["openssl", "verify", "-CAfile", str(pki_file(root, wrong)), str(pki_file(root, spec.base))],
                       capture_output=True, check=False, timeout=30)
    assert p.returncode != 0


@pytest.mark.parametrize("base,purpose", [
    ("apiserver", "sslserver"), ("etcd/server", "sslserver"), ("etcd/peer", "sslclient"),
    ("apiserver-kubelet-client", "sslclient"), ("front-proxy-client", "sslclient"),
])
def test_openssl_accepts_the_purpose(pki_root: tuple[Path, str], base: str, purpose: str) -> None:
    root, _ = pki_root
    ca = "etcd/ca" if base.startswith("etcd/") else ("front-proxy-ca" if base.startswith("front") else "ca")
    out = openssl("verify", "-purpose", purpose, "-CAfile", str(pki_file(root, ca)), str(pki_file(root, base)))
    assert out.strip().endswith(b": OK")


@pytest.mark.parametrize("spec", list(certlist.CERTS), ids=lambda s: s.name)
def test_openssl_text_matches_kubeadm_fixture(pki_root: tuple[Path, str], spec: certlist.CertSpec) -> None:
    root, algorithm = pki_root
    ours = openssl_facts(openssl("x509", "-in", str(pki_file(root, spec.base)), "-noout", "-text").decode())
    theirs = openssl_facts(fixture_file(spec).read_text())
    assert comparable(ours) == comparable(theirs)
    assert 0 <= (validity(ours) - validity(theirs)).total_seconds() < 60
    # The fixture is RSA; with ECDSA only the signature algorithm differs, as kubeadm's would.
    want_sig = theirs["Signature Algorithm"] if algorithm == "RSA-2048" else "ecdsa-with-SHA256"
    assert ours["Signature Algorithm"] == want_sig


def test_openssl_shows_the_apiserver_sans(pki_root: tuple[Path, str]) -> None:
    root, _ = pki_root
    text = openssl("x509", "-in", str(pki_file(root, "apiserver")), "-noout", "-ext", "subjectAltName").decode()
    for name in ("DNS:cp-1", "DNS:kubernetes.default.svc.cluster.local", "DNS:kubernetes.example.com",
                 "IP Address:10.96.0.1", "IP Address:10.0.0.10", "IP Address:10.100.245.1"):
        assert name in text


def _pin_pipeline(ca_crt: Path, algorithm: str) -> str:
    """The spec's pipeline; `openssl pkey` stands in for `openssl rsa` with ECDSA keys."""
    pub = openssl("x509", "-pubkey", "-noout", "-in", str(ca_crt))
    tool = "rsa" if algorithm.startswith("RSA") else "pkey"
    der = openssl(tool, "-pubin", "-outform", "der", stdin=pub)
    digest = openssl("dgst", "-sha256", "-hex", stdin=der).decode()
    return "sha256:" + digest.strip().rsplit("= ", 1)[-1]


@pytest.mark.parametrize("base", ["ca", "front-proxy-ca", "etcd/ca"])
def test_pin_equals_the_spec_pipeline(pki_root: tuple[Path, str], base: str) -> None:
    root, algorithm = pki_root
    path = pki_file(root, base)
    assert _pin_pipeline(path, algorithm) == pin_of(path.read_bytes())


@pytest.mark.parametrize("spec", kc.KUBECONFIGS, ids=lambda s: s.name)
def test_openssl_verifies_kubeconfig_client_certs(pki_root: tuple[Path, str], spec: kc.KubeconfigSpec,
                                                  tmp_path: Path) -> None:
    root, _ = pki_root
    got = kc.parse_kubeconfig((root / "etc/kubernetes" / spec.file).read_bytes(), spec.file)
    client = tmp_path / "client.crt"
    client.write_bytes(got.client_cert_pem or b"")
    out = openssl("verify", "-purpose", "sslclient", "-CAfile", str(pki_file(root, "ca")), str(client))
    assert out.strip().endswith(b": OK")
    subject = openssl("x509", "-in", str(client), "-noout", "-subject").decode()
    assert spec.user.replace("{node}", "cp-1") in subject


def test_fixture_kubeconfig_server_matches(pki_root: tuple[Path, str]) -> None:
    root, _ = pki_root
    for spec in kc.KUBECONFIGS:
        theirs = (FIXTURE / spec.file).read_text()
        ours = kc.parse_kubeconfig((root / "etc/kubernetes" / spec.file).read_bytes(), spec.file)
        assert f"server: {ours.server}" in theirs
        assert base64.b64decode(
            (root / "etc/kubernetes" / spec.file).read_text().split("certificate-authority-data: ")[1].split()[0]
        ) == pki_file(root, "ca").read_bytes()
