"""`kbootd certs check-expiration|renew|certificate-key` and `kbootd kubeconfig user` against a PKI
made by kbootd's own init in a temp root, compared with kubeadm v1.32's recorded output
(../shared/fixtures/kubeadm/certs-lifecycle)."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import pytest
import yaml
from cryptography import x509

from kbootd import kubeconfigfile
from kbootd.pki import certs as c
from kbootd.pki import derdates, keys
from tests.conftest import tree_snapshot
from tests.keycache import cached_keys
from tests.pkitools import CAS, KUBECONFIGS, PAIRS, PKI, Crash, crash_at_write, make_pki
from tests.shared import FIXTURES

FX = FIXTURES / "kubeadm" / "certs-lifecycle"
NAMES = ["admin.conf", "apiserver", "apiserver-etcd-client", "apiserver-kubelet-client", "controller-manager.conf",
         "etcd-healthcheck-client", "etcd-peer", "etcd-server", "front-proxy-client", "scheduler.conf",
         "super-admin.conf"]
FILE_OF = {"apiserver": "apiserver", "apiserver-etcd-client": "apiserver-etcd-client",
           "apiserver-kubelet-client": "apiserver-kubelet-client", "etcd-healthcheck-client": "etcd/healthcheck-client",
           "etcd-peer": "etcd/peer", "etcd-server": "etcd/server", "front-proxy-client": "front-proxy-client"}


@pytest.fixture(autouse=True)
def _fast_keys():
    with cached_keys():
        yield


@pytest.fixture
def cli(run_cli, root):
    """kbootd's CLI (main()) with --root on the temp root (certificate-key takes no flags)."""
    def run(*argv: str):
        return run_cli(*argv) if "certificate-key" in argv else run_cli(*argv, "--root", str(root))
    return run


def leaf_cert(root, name: str) -> x509.Certificate:
    """The certificate of a kubeadm name, read with cryptography (independent of kbootd's readers)."""
    if name.endswith(".conf"):
        doc = yaml.safe_load((root / "etc/kubernetes" / name).read_text())
        import base64

        return x509.load_pem_x509_certificate(base64.b64decode(doc["users"][0]["user"]["client-certificate-data"]))
    return x509.load_pem_x509_certificate((root / PKI / f"{FILE_OF[name]}.crt").read_bytes())


def ca_cert(root, base: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((root / PKI / f"{base}.crt").read_bytes())


def cells(line: str) -> list[int]:
    """Where each column of a table line starts (a run of 3+ spaces separates columns)."""
    return [0] + [m.end() for m in re.finditer(r" {3,}", line.rstrip())]


# --- check-expiration --------------------------------------------------------------------------

def test_check_expiration_text_has_kubeadm_layout_and_the_real_dates(cli, root):
    make_pki(root)
    code, out, err = cli("certs", "check-expiration")
    assert code == 0, err
    want = (FX / "kubeadm-certs-check-expiration.txt").read_text().splitlines()
    got = out.splitlines()
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        # Same columns at the same offsets, same trailing padding; only the dates may differ.
        assert cells(g) == cells(w), (g, w)
        assert len(g) == len(w), (g, w)
        assert g.split()[:1] == w.split()[:1]
    for line in got[1:12]:
        name = line.split()[0]
        expected = c.not_after(leaf_cert(root, name)).strftime("%b %d, %Y %H:%M UTC")
        assert expected in line, line
        assert re.search(r"UTC   36[45]d ", line), line  # a fresh cluster: a year less a moment
    for line, base in zip(got[14:], ("ca", "etcd/ca", "front-proxy-ca"), strict=True):
        assert c.not_after(ca_cert(root, base)).strftime("%b %d, %Y %H:%M UTC") in line
        assert " 9y " in line  # ten years less a moment, as kubeadm shows it


def test_check_expiration_yaml_is_kubeadms_document(cli, root):
    make_pki(root)
    code, out, _ = cli("certs", "check-expiration", "-o", "yaml")
    assert code == 0
    want_text = (FX / "kubeadm-certs-check-expiration.yaml").read_text()
    # Line by line the same keys in the same order; values are this cluster's.
    strip = lambda t: [ln.split(":")[0] for ln in t.splitlines()]  # noqa: E731
    assert strip(out) == strip(want_text)
    got = yaml.safe_load(out)
    want = yaml.safe_load(want_text)
    assert [x["name"] for x in got["certificates"]] == [x["name"] for x in want["certificates"]]
    assert [x["caName"] for x in got["certificates"]] == [x["caName"] for x in want["certificates"]]
    now = datetime.now(timezone.utc)
    for entry in got["certificates"]:
        na = c.not_after(leaf_cert(root, entry["name"]))
        assert entry["expirationDate"] == na.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert abs(entry["residualTime"] - (na - now).total_seconds()) < 30
        assert entry["missing"] is False and entry["externallyManaged"] is False
    # kubeadm quotes the dates (a string, not a YAML timestamp) as this output does
    assert re.search(r'expirationDate: "\d{4}-', out)


def test_check_expiration_json_holds_the_same_document(cli, root):
    make_pki(root)
    _, y, _ = cli("certs", "check-expiration", "-o", "yaml")
    code, j, _ = cli("certs", "check-expiration", "-o", "json")
    assert code == 0
    doc = json.loads(j)
    assert list(doc)[:2] == ["kind", "apiVersion"]
    ydoc = yaml.safe_load(y)
    for section in ("certificates", "certificateAuthorities"):
        for a, b in zip(doc[section], ydoc[section], strict=True):
            assert {k: v for k, v in a.items() if k != "residualTime"} == \
                   {k: v for k, v in b.items() if k != "residualTime"}
    assert j.startswith('{\n    "kind": "CertificateExpirationInfo"')


def test_missing_and_external_are_shown_as_kubeadm_does(cli, root):
    make_pki(root)
    (root / PKI / "apiserver.crt").unlink()
    (root / PKI / "front-proxy-ca.key").unlink()
    _, out, _ = cli("certs", "check-expiration")
    lines = out.splitlines()
    assert lines[2].startswith("!MISSING! apiserver") and lines[2].strip() == "!MISSING! apiserver"
    fp = next(ln for ln in lines if ln.startswith("front-proxy-client"))
    assert fp.rstrip().endswith("yes")
    fpca = next(ln for ln in lines if ln.startswith("front-proxy-ca"))
    assert fpca.rstrip().endswith("yes")
    assert next(ln for ln in lines if ln.startswith("ca ")).rstrip().endswith("no")
    _, y, _ = cli("certs", "check-expiration", "-o", "yaml")
    doc = yaml.safe_load(y)
    api = next(e for e in doc["certificates"] if e["name"] == "apiserver")
    assert api == {"name": "apiserver", "expirationDate": None, "residualTime": 0,
                   "externallyManaged": False, "missing": True}


def test_external_etcd_lists_no_etcd_certificates(cli, root):
    make_pki(root)
    import shutil

    shutil.rmtree(root / PKI / "etcd")
    (root / PKI / "apiserver-etcd-client.crt").unlink()
    _, out, _ = cli("certs", "check-expiration")
    assert "etcd" not in out


def test_der_reader_agrees_with_cryptography(root):
    make_pki(root)
    pems = [p for p in (root / PKI).rglob("*.crt")]
    assert len(pems) == 10
    for p in pems:
        cert = x509.load_pem_x509_certificate(p.read_bytes())
        assert derdates.validity(p.read_bytes(), str(p)) == (c.not_before(cert), c.not_after(cert))
    # GeneralizedTime (from 2050 on) and a UTCTime in the 1900s
    key = keys.new_private_key("ECDSA-P256")
    for start, days in ((datetime(2049, 6, 1, tzinfo=timezone.utc), 400), (datetime(1999, 1, 1, tzinfo=timezone.utc), 1)):
        cert = c.new_self_signed_ca(key, "t", timedelta(days=days), now=start)
        pem = c.encode_cert_pem(cert)
        assert derdates.validity(pem, "t") == (c.not_before(cert), c.not_after(cert))
    with pytest.raises(Exception, match="not a PEM certificate"):
        derdates.validity(b"junk", "f")
    with pytest.raises(Exception, match="malformed|cannot be read"):
        derdates.validity(b"-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n", "f")


# --- renew ---------------------------------------------------------------------------------------

def _snapshot_identity(root):
    out = {}
    for name in NAMES:
        cert = leaf_cert(root, name)
        out[name] = (cert.subject, c.alt_names_of(cert), c.ext_key_usages_of(cert), cert.issuer,
                     keys.public_der(cert.public_key()), c.not_after(cert))
    return out


def test_renew_all_prints_kubeadms_text_and_keeps_identity_key_and_ca(cli, root):
    make_pki(root, age=timedelta(days=300))
    before = _snapshot_identity(root)
    snap = tree_snapshot(root)
    code, out, err = cli("certs", "renew", "all")
    assert code == 0, err
    assert out == (FX / "kubeadm-certs-renew-all.txt").read_text()
    after = _snapshot_identity(root)
    now = datetime.now(timezone.utc)
    for name in NAMES:
        subj, sans, ekus, issuer, pub, na = after[name]
        assert (subj, sans, ekus, issuer, pub) == before[name][:5], name
        assert na > before[name][5] + timedelta(days=250)
        assert abs((na - now) - timedelta(hours=8760)) < timedelta(minutes=1)
    apiserver = leaf_cert(root, "apiserver")
    assert "api.example.test" in c.alt_names_of(apiserver).dns
    assert c.signed_by(apiserver, ca_cert(root, "ca"))
    new = tree_snapshot(root)
    for base in CAS:
        for ext in ("crt", "key"):
            assert new[f"{PKI}/{base}.{ext}"] == snap[f"{PKI}/{base}.{ext}"]  # CAs never touched
    for base in PAIRS:
        assert new[f"{PKI}/{base}.key"] == snap[f"{PKI}/{base}.key"]  # keys kept
        assert new[f"{PKI}/{base}.crt"][0] == 0o644
    for kc in KUBECONFIGS:
        assert new[f"etc/kubernetes/{kc}"][0] == 0o600
        a = kubeconfigfile.parse(snap[f"etc/kubernetes/{kc}"][1], kc)
        b = kubeconfigfile.parse(new[f"etc/kubernetes/{kc}"][1], kc)
        assert (a.client_key_pem, a.server, a.ca_pem, a.user_name) == (b.client_key_pem, b.server, b.ca_pem, b.user_name)
        assert a.client_cert_pem != b.client_cert_pem
    assert new["etc/kubernetes/kubelet.conf"] == snap["etc/kubernetes/kubelet.conf"]  # the kubelet rotates its own
    # and the dates check-expiration shows moved to a year from now
    _, table, _ = cli("certs", "check-expiration")
    assert all(re.search(r"UTC   36[45]d ", ln) for ln in table.splitlines()[1:12])


def test_renew_one_prints_one_line(cli, root):
    make_pki(root)
    snap = tree_snapshot(root)
    code, out, _ = cli("certs", "renew", "etcd-peer")
    assert (code, out) == (0, "certificate for etcd nodes to communicate with each other renewed\n")
    new = tree_snapshot(root)
    changed = {k for k in new if new[k] != snap.get(k)}
    assert changed == {f"{PKI}/etcd/peer.crt"}


def test_renew_external_ca_and_missing_are_skipped_as_kubeadm_does(cli, root):
    make_pki(root)
    (root / PKI / "ca.key").unlink()
    (root / PKI / "etcd/server.crt").unlink()
    snap = tree_snapshot(root)
    code, out, _ = cli("certs", "renew", "all")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == ("Detected external ca, certificate embedded in the kubeconfig file for the admin to use "
                        "and for kubeadm itself can't be renewed")
    assert "Detected external ca, certificate for serving the Kubernetes API can't be renewed" in lines
    assert "MISSING! certificate for serving etcd" in lines
    assert "certificate for the front proxy client renewed" in lines
    new = tree_snapshot(root)
    assert new[f"{PKI}/apiserver.crt"] == snap[f"{PKI}/apiserver.crt"]
    assert new["etc/kubernetes/admin.conf"] == snap["etc/kubernetes/admin.conf"]
    assert new[f"{PKI}/front-proxy-client.crt"] != snap[f"{PKI}/front-proxy-client.crt"]


def test_renew_refuses_a_mismatched_pair_and_unknown_names(cli, root):
    make_pki(root)
    (root / PKI / "apiserver.key").write_bytes((root / PKI / "front-proxy-client.key").read_bytes())
    code, _, err = cli("certs", "renew", "apiserver")
    assert code == 3 and "do not belong together" in err and "apiserver.crt" in err
    code, _, err = cli("certs", "renew", "ca")
    assert code == 3 and "ca" in err


def _pairs_match(root) -> None:
    for base in PAIRS:
        cert = x509.load_pem_x509_certificate((root / PKI / f"{base}.crt").read_bytes())
        key = keys.load_private_key_pem((root / PKI / f"{base}.key").read_bytes(), base)
        assert c.key_matches(cert, key), base
    for kc in KUBECONFIGS:
        k = kubeconfigfile.parse((root / "etc/kubernetes" / kc).read_bytes(), kc)
        assert c.key_matches(c.load_cert_pem(k.client_cert_pem, kc), keys.load_private_key_pem(k.client_key_pem, kc))


@pytest.mark.parametrize("before_rename", [False, True])
def test_a_kill_at_every_write_of_renew_all_leaves_matching_pairs_and_a_rerun_completes(cli, root, before_rename):
    make_pki(root, age=timedelta(days=300))
    pristine = tree_snapshot(root)
    n = 0
    while True:
        with crash_at_write(n, before_rename=before_rename) as written:
            try:
                cli("certs", "renew", "all")
                crashed = False
            except Crash:
                crashed = True
        _pairs_match(root)
        code, _, err = cli("certs", "renew", "all")
        assert code == 0, err
        _pairs_match(root)
        _, table, _ = cli("certs", "check-expiration")
        assert all(re.search(r"UTC   36[45]d ", ln) for ln in table.splitlines()[1:12]), (n, table)
        if not crashed:
            break
        assert written, n
        n += 1
        # back to the old cluster for the next kill point
        for rel, (_mode, data) in pristine.items():
            if not rel.endswith("/"):
                (root / rel).write_bytes(data)
        for p in (root / "etc/kubernetes").rglob(".*kbootd-tmp*"):
            p.unlink()
    assert n == len(NAMES)  # every write was a kill point


# --- certificate-key, kubeconfig user -----------------------------------------------------------

def test_certificate_key_is_32_random_bytes_in_hex_like_kubeadms(cli):
    fixture = (FX / "kubeadm-certs-certificate-key.txt").read_text()
    pattern = re.compile(r"[0-9a-f]{64}\n")
    assert pattern.fullmatch(fixture)
    _, a, _ = cli("certs", "certificate-key")
    _, b, _ = cli("certs", "certificate-key")
    assert pattern.fullmatch(a) and pattern.fullmatch(b) and a != b


def test_kubeconfig_user_prints_a_kubeconfig_signed_by_the_cluster_ca(cli, root):
    make_pki(root)
    snap = tree_snapshot(root)
    code, out, err = cli("kubeconfig", "user", "--client-name", "jane", "--org", "devs", "--org", "ops",
                         "--validity-period", "48h")
    assert code == 0, err
    kc = kubeconfigfile.parse(out, "stdout")
    admin = kubeconfigfile.parse((root / "etc/kubernetes/admin.conf").read_bytes(), "admin")
    assert (kc.server, kc.cluster_name, kc.ca_pem) == (admin.server, admin.cluster_name, admin.ca_pem)
    assert kc.user_name == "jane"
    cert = c.load_cert_pem(kc.client_cert_pem, "x")
    assert c.common_name(cert) == "jane" and c.organizations(cert) == ("devs", "ops")
    assert c.signed_by(cert, ca_cert(root, "ca"))
    assert c.ext_key_usages_of(cert) == {c.CLIENT_AUTH}
    assert abs(c.not_after(cert) - datetime.now(timezone.utc) - timedelta(hours=48)) < timedelta(minutes=1)
    assert c.key_matches(cert, keys.load_private_key_pem(kc.client_key_pem, "k"))
    assert tree_snapshot(root) == snap  # prints, writes nothing
    code, _, err = cli("kubeconfig", "user", "--client-name", "x", "--validity-period", "soon")
    assert code == 3 and "--validity-period" in err
    (root / PKI / "ca.key").unlink()
    code, _, err = cli("kubeconfig", "user", "--client-name", "x")
    assert code != 0 and "External CA" in err


def test_json_fields_follow_kubeadms_struct_order(cli, root):
    make_pki(root)
    _, j, _ = cli("certs", "check-expiration", "-o", "json")
    doc = json.loads(j)
    assert list(doc) == ["kind", "apiVersion", "certificates", "certificateAuthorities"]
    assert list(doc["certificates"][0]) == ["name", "expirationDate", "residualTime", "externallyManaged",
                                            "caName", "missing"]
    assert list(doc["certificateAuthorities"][0]) == ["name", "expirationDate", "residualTime",
                                                      "externallyManaged", "missing"]


def test_the_parser_knows_kubeadms_names_and_the_help_lists_them(run_cli):
    from kbootd.cli.certsparser import LEAF_NAMES
    from kbootd.pki.inventory import LEAF_BY_NAME

    assert LEAF_NAMES == tuple(LEAF_BY_NAME) == tuple(NAMES)
    code, out, _ = run_cli("certs", "renew", "--help")
    flat = re.sub(r"-\n\s+", "-", out)  # argparse wraps at hyphens
    assert code == 0 and all(n in flat for n in NAMES)
    code, out, _ = run_cli("--help")
    assert "certs" in out and "kubeconfig" in out


def test_renew_beside_the_supervising_daemon_but_not_beside_init(cli, root):
    from kbootd.daemon.lock import InstanceLock
    from kbootd.hostio import Host
    from kbootd.paths import Paths

    make_pki(root)
    host = Host(Paths.rooted(root))
    with InstanceLock(host, "kbootd init"):
        code, _, err = cli("certs", "renew", "apiserver")
        assert code != 0 and "kbootd init" in err
    with InstanceLock(host, "kbootd run"):
        code, out, err = cli("certs", "renew", "apiserver")
        assert code == 0 and out == "certificate for serving the Kubernetes API renewed\n", err


def test_config_gives_the_server_key_algorithm_cert_dir_and_etcd_mode(cli, root, tmp_path):
    make_pki(root)
    cfg = tmp_path / "kubeadm.yaml"
    cfg.write_text("""\
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint: {advertiseAddress: 10.0.0.10}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
controlPlaneEndpoint: lb.example.test:6443
encryptionAlgorithm: ECDSA-P256
certificateValidityPeriod: 720h
etcd: {external: {endpoints: ["https://10.0.0.20:2379"]}}
""")
    code, out, err = cli("kubeconfig", "user", "--client-name", "ops", "--config", str(cfg))
    assert code == 0, err
    kc = kubeconfigfile.parse(out, "stdout")
    assert kc.server == "https://lb.example.test:6443"
    assert keys.describe(keys.load_private_key_pem(kc.client_key_pem, "k")) == "ECDSA-P256"
    # external etcd: no etcd rows; the validity of a renewal comes from the configuration
    _, table, _ = cli("certs", "check-expiration", "--config", str(cfg))
    assert "etcd" not in table and "apiserver " in table
    _, out, _ = cli("certs", "renew", "all", "--config", str(cfg))
    lines = out.split("\n\n")[0]
    assert "etcd" not in lines and lines.count(" renewed") == 7
    na = c.not_after(leaf_cert(root, "apiserver"))
    assert abs(na - datetime.now(timezone.utc) - timedelta(hours=720)) < timedelta(minutes=1)
    code, _, err = cli("certs", "check-expiration", "--cert-dir", "relative/pki")
    assert code == 3 and "--cert-dir" in err
