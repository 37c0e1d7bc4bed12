"""kubeadm-certs: interoperating with a real kubeadm v1.32's Secret, both ways, over the HTTPS test API.

The fixture (../shared/fixtures/kubeadm/upload-certs) is what kubeadm uploaded for a known key, with the
plaintext PKI it encrypted. kbootd decrypts kubeadm's Secret, and kubeadm's documented format (nonce ||
AES-256-GCM, no associated data) is checked independently here with the `cryptography` primitives on
kbootd's upload, so neither direction is checked only against kbootd's own code.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kbootd import apiclient
from kbootd.apiclient import APITransport, Client, KubeConfig
from kbootd.cluster import uploadcerts
from kbootd.config.model import ClusterConfig, ExternalEtcd, InitConfig
from kbootd.context import Seams, make_context
from kbootd.errors import EXIT_INVALID, EXIT_SECURITY, SecurityError, ValidationError, exit_code_for
from kbootd.pin import pin_of
from kbootd.report import RecordingReporter
from tests.apiserver import TestAPIServer, kubeadm
from tests.shared import FIXTURES

FIX = FIXTURES / "kubeadm/upload-certs"
PKI = FIX / "plaintext-pki"
NOW = datetime(2026, 12, 2, 20, 6, 3, tzinfo=timezone.utc)
# The Secret's data keys and the files they hold, as the fixture's README lists them.
FILES = {"ca.crt": "ca.crt", "ca.key": "ca.key", "sa.key": "sa.key", "sa.pub": "sa.pub",
         "front-proxy-ca.crt": "front-proxy-ca.crt", "front-proxy-ca.key": "front-proxy-ca.key",
         "etcd-ca.crt": "etcd/ca.crt", "etcd-ca.key": "etcd/ca.key"}
SERVER_FIELDS = ("creationTimestamp", "resourceVersion", "uid", "managedFields")

pytestmark = pytest.mark.skipif(not FIX.is_dir(), reason="shared kubeadm upload-certs fixtures not present")


def recorded(name: str):
    return json.loads((FIX / name).read_text())


def key_hex() -> str:
    return (FIX / "certificate-key.txt").read_text().strip()


def strip(obj: dict) -> dict:
    obj = json.loads(json.dumps(obj))
    for f in SERVER_FIELDS:
        obj["metadata"].pop(f, None)
    return obj


@pytest.fixture(scope="module")
def server() -> Iterator[TestAPIServer]:
    with TestAPIServer() as srv:
        yield srv
    assert not srv.internal_errors, srv.internal_errors
    assert not srv.controllers.errors, srv.controllers.errors


@pytest.fixture
def api(server: TestAPIServer) -> Iterator[TestAPIServer]:
    server.clock.freeze(NOW)
    kubeadm.grant_cluster_admins(server.store)
    kubeadm.bootstrap_token_rbac(server.store)
    before = {(s["metadata"]["name"]) for s in server.store.list("secrets", "kube-system")}
    yield server
    for s in server.store.list("secrets", "kube-system"):
        if s["metadata"]["name"] not in before:
            server.store.delete("secrets", s["metadata"]["name"], "kube-system")
    for kind in ("roles", "rolebindings"):
        if server.store.get(kind, uploadcerts.ROLE_NAME, "kube-system"):
            server.store.delete(kind, uploadcerts.ROLE_NAME, "kube-system")


clients: list[Client] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while clients:
        clients.pop().close()


def admin(srv: TestAPIServer) -> Client:
    issued = srv.issue_client_cert("admin", ["kubeadm:cluster-admins"])
    c = Client(APITransport(KubeConfig(path="(admin.conf)", server=srv.url, cluster={}, ca_pem=srv.ca_pem,
                                       cert_pem=issued.cert_pem, key_pem=issued.key_pem)),
               timeout=5.0, interval=0.001, sleep=lambda s: None)
    clients.append(c)
    return c


def as_token(srv: TestAPIServer, token: str) -> Client:
    c = Client(APITransport(KubeConfig(path="(bootstrap)", server=srv.url, cluster={}, ca_pem=srv.ca_pem,
                                       token=token)), timeout=5.0, interval=0.001, sleep=lambda s: None)
    clients.append(c)
    return c


def ctx_for(root: Path, now: datetime = NOW, **cluster_kw):
    cfg = InitConfig(cluster=ClusterConfig(**cluster_kw))
    return make_context(root=str(root), reporter=RecordingReporter(), init=cfg,
                        seams=Seams(now=lambda: now, skip_kubelet_check=True))


def seed_pki(root: Path) -> None:
    for rel in FILES.values():
        dst = root / "etc/kubernetes/pki" / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes((PKI / rel).read_bytes())


def seed_recorded(api: TestAPIServer, secret: dict | None = None) -> None:
    """kubeadm's token and Secret as recorded; the owner reference follows the token's new uid."""
    (token,) = recorded("kubeadm-certs-ttl-token-secrets.json")
    live = api.store.seed(strip(token))
    secret = strip(secret or recorded("kubeadm-certs-secret.json"))
    secret["metadata"]["ownerReferences"][0]["uid"] = live["metadata"]["uid"]
    api.store.seed(secret)


def independent_decrypt(value_b64: str, key: str) -> bytes:
    blob = base64.b64decode(value_b64)
    return AESGCM(bytes.fromhex(key)).decrypt(blob[:12], blob[12:], None)


# --- kubeadm's Secret -> kbootd ------------------------------------------------------------------

def test_recorded_secret_decrypts_to_the_plaintext_pki():
    plain = uploadcerts.decrypt_secret(recorded("kubeadm-certs-secret.json"), uploadcerts.parse_key(key_hex(), "k"))
    assert sorted(plain) == sorted(FILES)
    for name, rel in FILES.items():
        assert plain[name] == (PKI / rel).read_bytes(), name


def test_download_of_kubeadms_secret_writes_the_pki(api, root):
    seed_recorded(api)
    ctx = ctx_for(root)
    pin = pin_of((PKI / "ca.crt").read_bytes())
    written = uploadcerts.download(ctx, admin(api), key_hex(), expected_pin=pin)
    assert len(written) == 8
    for rel in FILES.values():
        f = root / "etc/kubernetes/pki" / rel
        assert f.read_bytes() == (PKI / rel).read_bytes(), rel
        want = 0o644 if rel.endswith(".crt") else 0o600
        assert f.stat().st_mode & 0o777 == want, rel
    assert (root / "etc/kubernetes/pki/etcd").stat().st_mode & 0o777 == 0o700
    # a re-run (after a crash, say) finds everything in place and writes nothing
    assert uploadcerts.download(ctx_for(root), admin(api), key_hex(), expected_pin=pin) == []


def test_wrong_key_is_a_security_failure_and_writes_nothing(api, root, capsys):
    seed_recorded(api)
    wrong = "00" * 32
    with pytest.raises(SecurityError) as e:
        uploadcerts.download(ctx_for(root), admin(api), wrong)
    assert exit_code_for(e.value) == EXIT_SECURITY == 4
    assert "message authentication failed" in str(e.value)
    assert wrong not in str(e.value) and wrong not in (e.value.hint or "")
    assert not (root / "etc").exists()  # not even the directory


def test_one_tampered_value_writes_no_file(api, root):
    secret = recorded("kubeadm-certs-secret.json")
    blob = bytearray(base64.b64decode(secret["data"]["sa.pub"]))
    blob[-1] ^= 1
    secret["data"]["sa.pub"] = base64.b64encode(bytes(blob)).decode()
    seed_recorded(api, secret)
    with pytest.raises(SecurityError, match="sa.pub"):
        uploadcerts.download(ctx_for(root), admin(api), key_hex())
    assert not (root / "etc").exists()


def test_ca_other_than_discoverys_is_refused(api, root):
    seed_recorded(api)
    with pytest.raises(SecurityError, match="not the cluster CA discovery trusted"):
        uploadcerts.download(ctx_for(root), admin(api), key_hex(), expected_pin=pin_of(api.ca_pem))
    assert not (root / "etc").exists()


def test_an_existing_different_ca_is_never_overwritten(api, root):
    seed_recorded(api)
    own = root / "etc/kubernetes/pki/ca.key"
    own.parent.mkdir(parents=True)
    own.write_bytes(b"another key\n")
    with pytest.raises(SecurityError, match="already exists and differs"):
        uploadcerts.download(ctx_for(root), admin(api), key_hex())
    assert own.read_bytes() == b"another key\n"
    assert sorted(p.name for p in own.parent.iterdir()) == ["ca.key"]


def test_missing_secret_says_it_may_have_expired(api, root):
    with pytest.raises(uploadcerts.CertsNotUploaded, match="might have expired"):
        uploadcerts.download(ctx_for(root), admin(api), key_hex())


@pytest.mark.parametrize("bad", ["", "xyz", "ab" * 31, "ab" * 33])
def test_malformed_key_is_invalid_input(bad):
    with pytest.raises(ValidationError, match="--certificate-key") as e:
        uploadcerts.parse_key(bad, "--certificate-key")
    assert exit_code_for(e.value) == EXIT_INVALID


# --- kbootd's upload -> kubeadm's format -------------------------------------------------------------

def test_upload_matches_kubeadms_objects(api, root):
    seed_pki(root)
    ctx = ctx_for(root)
    uploadcerts.upload(ctx, admin(api), key_hex())
    live = api.store.get("secrets", "kubeadm-certs", "kube-system")
    want = recorded("kubeadm-certs-secret.json")
    assert sorted(live["data"]) == sorted(want["data"])
    assert live["type"] == want["type"] == "Opaque"
    # The values decrypt by kubeadm's documented format (not kbootd's code) to the files on disk.
    for name, rel in FILES.items():
        assert independent_decrypt(live["data"][name], key_hex()) == (PKI / rel).read_bytes()
        # a fresh nonce: not the recorded ciphertext
        assert live["data"][name] != want["data"][name]
    # Owned by a 2-hour bootstrap token exactly like kubeadm's.
    (ref,) = live["metadata"]["ownerReferences"]
    (want_ref,) = want["metadata"]["ownerReferences"]
    assert sorted(ref) == sorted(want_ref)
    assert {k: ref[k] for k in ("apiVersion", "kind", "controller", "blockOwnerDeletion")} == \
        {k: want_ref[k] for k in ("apiVersion", "kind", "controller", "blockOwnerDeletion")}
    token = api.store.get("secrets", ref["name"], "kube-system")
    assert token["metadata"]["uid"] == ref["uid"]
    (want_token,) = recorded("kubeadm-certs-ttl-token-secrets.json")
    assert sorted(token["data"]) == sorted(want_token["data"])
    assert token["type"] == want_token["type"]
    assert token["data"]["description"] == want_token["data"]["description"]
    assert base64.b64decode(token["data"]["expiration"]).decode() == \
        base64.b64decode(want_token["data"]["expiration"]).decode() == "2026-12-02T22:06:03Z"
    for kind, fixture in (("roles", "kubeadm-certs-role.json"), ("rolebindings", "kubeadm-certs-rolebinding.json")):
        got = strip(api.store.get(kind, "kubeadm:kubeadm-certs", "kube-system"))
        assert got == strip(recorded(fixture)), kind


def test_upload_then_download_round_trips(api, tmp_path):
    src, dst = tmp_path / "cp1", tmp_path / "cp2"
    seed_pki(src)
    uploadcerts.upload(ctx_for(src), admin(api), key_hex())
    uploadcerts.download(ctx_for(dst), admin(api), key_hex(), expected_pin=pin_of((PKI / "ca.crt").read_bytes()))
    for rel in FILES.values():
        assert (dst / "etc/kubernetes/pki" / rel).read_bytes() == (src / "etc/kubernetes/pki" / rel).read_bytes()


def test_a_joining_node_reads_it_with_its_token_and_nothing_else(api, root):
    seed_pki(root)
    kubeadm.create_token(api.store, "abcdef.0123456789abcdef")
    uploadcerts.upload(ctx_for(root), admin(api), key_hex())
    joiner = as_token(api, "abcdef.0123456789abcdef")
    assert joiner.get("Secret", "kubeadm-certs", "kube-system") is not None
    with pytest.raises(apiclient.APIError) as e:
        joiner.get("Secret", "bootstrap-token-abcdef", "kube-system")
    assert e.value.forbidden


def test_the_secret_goes_with_its_token_after_two_hours(api, root):
    seed_pki(root)
    uploadcerts.upload(ctx_for(root), admin(api), key_hex())
    api.controllers.settle()
    assert api.store.get("secrets", "kubeadm-certs", "kube-system") is not None
    api.clock.freeze(NOW + timedelta(hours=2, seconds=1))
    api.controllers.settle()
    assert api.store.get("secrets", "kubeadm-certs", "kube-system") is None
    with pytest.raises(uploadcerts.CertsNotUploaded):
        uploadcerts.download(ctx_for(root / "other"), admin(api), key_hex())


def test_rerun_moves_the_secret_to_a_new_token(api, root):
    seed_pki(root)
    uploadcerts.upload(ctx_for(root), admin(api), key_hex())
    first = api.store.get("secrets", "kubeadm-certs", "kube-system")["metadata"]["ownerReferences"][0]["name"]
    api.clock.freeze(NOW + timedelta(hours=1))
    uploadcerts.upload(ctx_for(root, NOW + timedelta(hours=1)), admin(api), key_hex())
    second = api.store.get("secrets", "kubeadm-certs", "kube-system")["metadata"]["ownerReferences"][0]["name"]
    assert first != second
    # the first token expiring no longer takes the Secret with it
    api.clock.freeze(NOW + timedelta(hours=2, seconds=1))
    api.controllers.settle()
    assert api.store.get("secrets", first, "kube-system") is None
    assert api.store.get("secrets", "kubeadm-certs", "kube-system") is not None


def test_external_etcd_transfers_its_client_files(root):
    ext = ExternalEtcd(endpoints=("https://10.0.0.5:2379",), ca_file="/etc/etcd/ca.pem",
                       cert_file="/etc/etcd/client.pem", key_file="/etc/etcd/client-key.pem")
    names = [(i.name, i.path, i.mode) for i in uploadcerts.items(ClusterConfig(etcd_local=None, etcd_external=ext))]
    assert ("external-etcd-ca.crt", "/etc/etcd/ca.pem", 0o644) in names
    assert ("external-etcd.key", "/etc/etcd/client-key.pem", 0o600) in names
    assert not any(n.startswith("etcd-") for n, _, _ in names)


def test_phase_output_matches_kubeadms(api, root, capsys):
    seed_pki(root)
    ctx = make_context(root=str(root), reporter=RecordingReporter(),
                       init=InitConfig(upload_certs=True, certificate_key=key_hex()),
                       seams=Seams(now=lambda: NOW, skip_kubelet_check=True))
    ctx.data.api_client = admin(api)
    ctx.data.cluster_admins_ensured = True
    uploadcerts.upload_phase(ctx)
    got = ctx.reporter.text() + capsys.readouterr().out
    assert got == (FIX / "kubeadm-upload-certs.txt").read_text()


def test_generated_key_is_random_hex_and_redacted():
    from kbootd.redact import redact

    a, b = uploadcerts.generate_key(), uploadcerts.generate_key()
    assert a != b and len(a) == 64 and bytes.fromhex(a)
    assert a not in redact(f"key {a}")



def test_dry_run_creates_nothing_and_shows_no_key(api, root, capsys):
    seed_pki(root)
    before = len(api.store.list("secrets", "kube-system"))
    ctx = make_context(root=str(root), reporter=RecordingReporter(), dry_run=True,
                       init=InitConfig(upload_certs=True, certificate_key=key_hex()),
                       seams=Seams(now=lambda: NOW, skip_kubelet_check=True))
    ctx.data.cluster_admins_ensured = True
    uploadcerts.upload_phase(ctx)
    out = ctx.reporter.text() + capsys.readouterr().out
    assert len(api.store.list("secrets", "kube-system")) == before
    assert key_hex() not in out
    assert "[upload-certs] Using certificate key:\n<redacted>\n" in out
    assert 'Would perform action CREATE on resource "secrets"' in out and "ca.key: <redacted>" in out


def test_the_daemon_never_prints_the_key(root, capsys):
    """Under the daemon, stdout is the journal: the key (from its settings) is not shown there."""
    class JournalOnly:  # the daemon's reporter: no console stream
        def __init__(self):
            self.lines = []

        def info(self, phase, msg):
            self.lines.append(f"[{phase}] {msg}")

        def out(self, text):
            self.lines.append(text)

    ctx = make_context(root=str(root), reporter=JournalOnly(), init=InitConfig(upload_certs=True))
    uploadcerts.print_key(ctx, key_hex())
    assert key_hex() not in capsys.readouterr().out + "\n".join(ctx.reporter.lines)
    assert ctx.reporter.lines == ["[upload-certs] Using the certificate key from this node's settings (not shown)"]
