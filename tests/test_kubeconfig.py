"""The kubeconfig phase, and the generic kubeconfig builder and parser join uses."""

from __future__ import annotations

import base64
import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec

from kbootd import kubeconfig as kc
from kbootd import redact
from kbootd.errors import KbootdError, ValidationError
from kbootd.pki import certlist, keys
from kbootd.pki import certs as c
from kbootd.pki import files as pki_files
from tests.conftest import tree_snapshot
from tests.keycache import use_cached_keys  # noqa: F401 - fixture
from tests.test_pki import FIXTURE, full_run, lines, make_cfg, make_ctx, run_phase, seed_ca, write

pytestmark = pytest.mark.usefixtures("use_cached_keys")

FILES = [s.file for s in kc.KUBECONFIGS]


def conf(root: Path, name: str) -> Path:
    return root / "etc/kubernetes" / name


def init(root: Path, cfg=None):  # noqa: ANN001, ANN201 - InitConfig -> Context
    ctx = full_run(root, cfg)
    run_phase(ctx, "kubeconfig")
    return ctx


def ca_pair() -> tuple[bytes, keys.PrivateKey, bytes]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = c.new_self_signed_ca(ca_key, "test-ca", timedelta(days=1))
    k = ec.generate_private_key(ec.SECP256R1())
    cert = c.sign_certificate(k.public_key(), ca, ca_key, common_name="u", usages=(c.CLIENT_AUTH,),
                              validity=timedelta(hours=1))
    return c.encode_cert_pem(ca), k, c.encode_cert_pem(cert)


# --- build and parse ----------------------------------------------------------------------

@pytest.mark.parametrize("creds", ["cert", "token"])
def test_build_then_parse_round_trips(creds: str) -> None:
    ca_pem, key, cert_pem = ca_pair()
    kwargs = ({"client_cert_pem": cert_pem, "client_key_pem": keys.encode_private_key_pem(key)}
              if creds == "cert" else {"token": "abcdef.0123456789abcdef"})
    text = kc.build_kubeconfig("https://10.0.0.10:6443", ca_pem, "kubernetes", "tls-bootstrap-token-user", **kwargs)
    got = kc.parse_kubeconfig(text, "bootstrap-kubelet.conf")
    assert (got.server, got.cluster_name, got.user_name) == ("https://10.0.0.10:6443", "kubernetes",
                                                             "tls-bootstrap-token-user")
    assert got.ca_pem == ca_pem and got.ca_cert == c.load_cert_pem(ca_pem, "ca")
    if creds == "cert":
        assert got.client_cert_pem == cert_pem and got.client_key_pem == kwargs["client_key_pem"]
        assert got.token is None
    else:
        assert got.token == "abcdef.0123456789abcdef" and got.client_cert_pem is None
    assert "0123456789abcdef" not in repr(got)


def _skeleton(node: object) -> object:
    """The document with every *-data value blanked: the shape kubeadm writes."""
    if isinstance(node, dict):
        return {k: ("<data>" if k.endswith("-data") else _skeleton(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_skeleton(v) for v in node]
    return node


def test_built_layout_is_kubeadms() -> None:
    ca_pem, key, cert_pem = ca_pair()
    text = kc.build_kubeconfig("https://10.0.0.10:6443", ca_pem, "kubernetes", "kubernetes-admin",
                               cert_pem, keys.encode_private_key_pem(key))
    theirs = (FIXTURE / "admin.conf").read_text()
    assert _skeleton(yaml.safe_load(text)) == _skeleton(yaml.safe_load(theirs))
    # same key order line by line (clientcmd.Write sorts keys)
    keys_of = [ln.split(":")[0] for ln in text.splitlines()]
    assert keys_of == [ln.split(":")[0] for ln in theirs.splitlines()]


GOOD = kc.build_kubeconfig("https://10.0.0.10:6443", ca_pair()[0], "kubernetes", "u", token="t" * 10)


@pytest.mark.parametrize("text,message", [
    ("", "the file is empty"),
    ("a: [b", "invalid YAML: expected ',' or ']'"),
    ("- 1\n- 2\n", "expected a kubeconfig mapping"),
    ("kind: Pod\n", "kind: kind is 'Pod'; expected Config"),
    ("kind: Config\nclusters: {}\n", "clusters: expected a list, got a mapping"),
    ("kind: Config\n", "no current-context, and not exactly one cluster"),
    (GOOD.replace("current-context: u@kubernetes", "current-context: nope"), "current-context: 'nope' is not"),
    (GOOD.replace("server: https://10.0.0.10:6443", "server: ''"), "cluster 'kubernetes' has no server"),
    (GOOD.replace("https://10.0.0.10:6443", "http://10.0.0.10:8080"), "is not an https:// URL"),
    (re.sub(r"certificate-authority-data: \S+", "certificate-authority-data: '!!!'", GOOD), "not valid base64"),
    (re.sub(r"certificate-authority-data: \S+", "certificate-authority-data: " + base64.b64encode(b"x").decode(), GOOD),
     "certificate-authority-data: not a PEM certificate"),
    (GOOD.replace("- name: u\n", "- name: someone-else\n"), "users: user 'u' (of the current context) is not defined"),
    # The wrong shapes of the reliability issue: each names its field path.
    ("kind: Config\nclusters: 5\n", "clusters: expected a list, got a number"),
    (GOOD.replace("current-context: u@kubernetes", "current-context: [x]"), "current-context: expected a string"),
    (GOOD.replace("server: https://10.0.0.10:6443", "server: [a]"), "clusters[0].cluster.server: expected a string"),
    (GOOD.replace("server: https://10.0.0.10:6443", "server: 6443"), "clusters[0].cluster.server: expected a string"),
    (GOOD.replace("server: https://10.0.0.10:6443", "server: 'https://['"), "is not an https:// URL"),
    (GOOD.replace("- cluster:", "- cluster: 7\n  x:"), "clusters[0].cluster: expected a mapping"),
    (GOOD.replace("name: kubernetes\n", "name: 3\n", 1), "clusters[0].name: expected a string"),
    (GOOD.replace("  user: u\n", "  user: {a: 1}\n"), ".context.user: expected a string"),
    (GOOD.replace("token: tttttttttt", "token: [tttttttttt]"), "users[0].user.token: expected a string, got a list"),
    ("kind: Config\nusers: [5]\n", "users[0]: expected a mapping with name and user"),
    ("kind: Config\ncontexts:\n- name: c\n  context: {cluster: k}\ncurrent-context: c\n",
     "contexts[0].context.cluster: cluster 'k' is not defined"),
    ("!!binary AAAA", "expected a kubeconfig mapping"),
    ("a: !!int 0o777x", "not"),
    ("[" * 5000, "invalid YAML: nested deeper than 100 levels"),
])
def test_parse_errors_name_the_file(text: str, message: str) -> None:
    with pytest.raises(ValidationError, match=r"^/etc/kubernetes/discovery.yaml(:\d+)?: .*" + re.escape(message)) as e:
        kc.parse_kubeconfig(text, "/etc/kubernetes/discovery.yaml")
    assert "tttttttttt" not in str(e.value)


def test_parse_falls_back_to_the_only_cluster() -> None:
    text = yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "clusters": [
        {"name": "", "cluster": {"server": "https://cp.example.com:6443", "certificate-authority": "/etc/ca.crt",
                                 "insecure-skip-tls-verify": True}}]})
    got = kc.parse_kubeconfig(text, "discovery")
    assert (got.server, got.ca_cert, got.ca_file, got.insecure) == ("https://cp.example.com:6443", None,
                                                                     "/etc/ca.crt", True)


def test_parse_registers_secrets_for_redaction() -> None:
    token = "zz" + "q" * 30
    text = kc.build_kubeconfig("https://10.0.0.10:6443", ca_pair()[0], "kubernetes", "u", token=token)
    kc.parse_kubeconfig(text, "x")
    assert token not in redact.redact(f"token is {token}")


# --- the phase ----------------------------------------------------------------------------

@pytest.fixture
def done(root: Path):  # noqa: ANN201
    return init(root)


@pytest.mark.parametrize("spec", kc.KUBECONFIGS, ids=lambda s: s.name)
def test_files_match_kubeadm_fixture(root: Path, done, spec: kc.KubeconfigSpec) -> None:  # noqa: ANN001
    path = conf(root, spec.file)
    assert path.stat().st_mode & 0o777 == 0o600
    ours, theirs = yaml.safe_load(path.read_text()), yaml.safe_load((FIXTURE / spec.file).read_text())
    assert _skeleton(ours) == _skeleton(theirs)
    got = kc.parse_kubeconfig(path.read_bytes(), spec.file)
    assert got.ca_pem == (root / "etc/kubernetes/pki/ca.crt").read_bytes()
    cert = c.load_cert_pem(got.client_cert_pem, "client")
    # The fixture's placeholder names the subject: "subject=CN=kubernetes-admin,O=kubeadm:cluster-admins".
    subject = re.search(r"subject=([^>]+)>", theirs["users"][0]["user"]["client-certificate-data"]).group(1)
    want = dict(part.split("=", 1) for part in subject.split(","))
    assert c.common_name(cert) == want["CN"] and c.organizations(cert) == tuple(filter(None, [want.get("O")]))
    assert c.ext_key_usages_of(cert) == {c.CLIENT_AUTH} and not c.is_ca(cert)
    assert c.key_matches(cert, keys.load_private_key_pem(got.client_key_pem, "key"))


def test_console_lines_match_kubeadm(root: Path, done) -> None:  # noqa: ANN001
    theirs = [ln.replace("/etc/kubernetes/tmp/kubeadm-init-dryrun", "/etc/kubernetes")
              for ln in (FIXTURE / "dryrun-stdout.txt").read_text().splitlines() if ln.startswith("[kubeconfig]")]
    assert [ln for ln in lines(done) if ln.startswith("[kubeconfig]")] == theirs


@pytest.mark.parametrize("cpe,advertise,remote,local", [
    (None, "10.0.0.10", "https://10.0.0.10:6443", "https://10.0.0.10:6443"),
    ("lb.example.com:8443", "10.0.0.10", "https://lb.example.com:8443", "https://10.0.0.10:6443"),
    (None, "fd00::10", "https://[fd00::10]:6443", "https://[fd00::10]:6443"),
])
def test_servers(root: Path, cpe: str | None, advertise: str, remote: str, local: str) -> None:
    init(root, make_cfg(cpe=cpe, advertise=advertise))
    for spec in kc.KUBECONFIGS:
        got = kc.parse_kubeconfig(conf(root, spec.file).read_bytes(), spec.file)
        assert got.server == (local if spec.local else remote), spec.file


def test_cluster_name_and_context(root: Path) -> None:
    cfg = make_cfg()
    init(root, replace(cfg, cluster=replace(cfg.cluster, cluster_name="prod")))
    doc = yaml.safe_load(conf(root, "kubelet.conf").read_text())
    assert doc["current-context"] == "system:node:cp-1@prod" and doc["clusters"][0]["name"] == "prod"


def test_second_run_reuses_every_file(root: Path, done) -> None:  # noqa: ANN001
    before = tree_snapshot(root)
    ctx = make_ctx(root)
    run_phase(ctx, "kubeconfig")
    assert tree_snapshot(root) == before
    assert [ln for ln in lines(ctx) if "Using existing" in ln] == [
        f'[kubeconfig] Using existing kubeconfig file: "/etc/kubernetes/{f}"' for f in FILES]


def _client(root: Path, *, expired: bool = False, other_ca: bool = False) -> tuple[bytes, bytes]:
    ctx = make_ctx(root)
    ca_cert, ca_key = (seed_ca(root / "elsewhere") if other_ca else
                       pki_files.load_ca(ctx, certlist.CA, need_key=True))
    k = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(timezone.utc) - (timedelta(days=60) if expired else timedelta(0))
    cert = c.sign_certificate(k.public_key(), ca_cert, ca_key, common_name="kubernetes-admin",
                              usages=(c.CLIENT_AUTH,), validity=timedelta(days=30), now=now)
    return c.encode_cert_pem(cert), keys.encode_private_key_pem(k)


@pytest.mark.parametrize("change,message", [
    ("other-ca", r"its CA \('kubernetes', sha256:[0-9a-f]{64}\) is not /etc/kubernetes/pki/ca\.crt"),
    ("server", r"its server is https://10\.0\.0\.10:6443, expected https://lb\.example\.com:6443"),
    ("client-other-ca", r"its client certificate: it is not signed by the CA 'kubernetes'"),
    ("client-expired", r"its client certificate: it expired on"),
    ("client-key", r"its client key does not belong to its client certificate"),
    ("no-creds", r"user 'kubernetes-admin' has no client certificate or token"),
])
def test_a_mismatched_file_is_an_error_naming_it(root: Path, change: str, message: str) -> None:
    if change == "client-expired":  # the client cert starts with its CA: make the CA old enough
        seed_ca(root, now=datetime.now(timezone.utc) - timedelta(days=100))
    init(root)
    path = conf(root, "admin.conf")
    got = kc.parse_kubeconfig(path.read_bytes(), "admin.conf")
    cfg = make_cfg(cpe="lb.example.com:6443") if change == "server" else None
    cert, key = got.client_cert_pem, got.client_key_pem
    ca_pem = got.ca_pem
    if change == "other-ca":
        ca_pem = c.encode_cert_pem(seed_ca(root / "elsewhere")[0])
    elif change == "client-other-ca":
        cert, key = _client(root, other_ca=True)
    elif change == "client-expired":
        cert, key = _client(root, expired=True)
    elif change == "client-key":
        key = keys.encode_private_key_pem(ec.generate_private_key(ec.SECP256R1()))
    if change == "no-creds":
        doc = yaml.safe_load(path.read_text())
        doc["users"][0]["user"] = {}
        path.write_text(yaml.safe_dump(doc))
    elif change != "server":
        path.write_text(kc.build_kubeconfig(got.server, ca_pem, "kubernetes", "kubernetes-admin", cert, key))
    before = tree_snapshot(root)
    with pytest.raises(ValidationError, match=r"^/etc/kubernetes/admin\.conf: a kubeconfig file exists .*" + message):
        kc.ensure(make_ctx(root, cfg), kc.BY_NAME["admin"])
    assert tree_snapshot(root) == before


def test_without_a_ca_says_to_run_certs_ca(root: Path) -> None:
    with pytest.raises(KbootdError, match=r"run `kbootd phase init certs/ca` first"):
        kc.ensure(make_ctx(root), kc.BY_NAME["admin"])


def test_external_ca_mode_uses_the_provided_files(root: Path, done) -> None:  # noqa: ANN001
    (root / "etc/kubernetes/pki/ca.key").unlink()
    before = tree_snapshot(root)
    ctx = make_ctx(root)
    run_phase(ctx, "kubeconfig")
    assert tree_snapshot(root) == before
    assert [ln for ln in lines(ctx) if "External CA" in ln] == [
        f"[kubeconfig] External CA mode: Using user provided {f}" for f in FILES]


def test_external_ca_mode_with_a_missing_file(root: Path, done) -> None:  # noqa: ANN001
    (root / "etc/kubernetes/pki/ca.key").unlink()
    conf(root, "kubelet.conf").unlink()
    with pytest.raises(ValidationError, match=r"^/etc/kubernetes/kubelet\.conf: missing; in External CA mode"):
        kc.ensure(make_ctx(root), kc.BY_NAME["kubelet"])


def test_dry_run_with_certs_writes_nothing_and_hides_keys(root: Path) -> None:
    before = tree_snapshot(root)
    ctx = make_ctx(root, dry_run=True)
    run_phase(ctx, "certs")
    run_phase(ctx, "kubeconfig")
    assert tree_snapshot(root) == before
    out = ctx.reporter.text()  # type: ignore[attr-defined]
    assert "client-key-data" not in out and "PRIVATE KEY" not in out
    for f in FILES:
        assert f'[dryrun] Would write file "/etc/kubernetes/{f}" (mode 0600); content not shown' in out
        got = kc.parse_kubeconfig(ctx.host.read_bytes(f"/etc/kubernetes/{f}"), f)
        assert got.ca_pem == ctx.host.read_bytes("/etc/kubernetes/pki/ca.crt")


def test_a_provided_kubeconfig_with_a_token_is_accepted(root: Path) -> None:
    full_run(root)
    ca_pem = (root / "etc/kubernetes/pki/ca.crt").read_bytes()
    write(conf(root, "admin.conf"), kc.build_kubeconfig("https://10.0.0.10:6443", ca_pem, "kubernetes",
                                                        "kubernetes-admin", token="x" * 20).encode())
    ctx = make_ctx(root)
    kc.ensure(ctx, kc.BY_NAME["admin"])
    assert lines(ctx) == ['[kubeconfig] Using existing kubeconfig file: "/etc/kubernetes/admin.conf"']


def _rotated_kubelet_conf(root: Path, ref: str) -> None:
    """kubelet.conf as the kubelet leaves it after rotating its client certificate."""
    got = kc.parse_kubeconfig(conf(root, "kubelet.conf").read_bytes(), "kubelet.conf")
    write(root / "var/lib/kubelet/pki/kubelet-client-current.pem", got.client_cert_pem + got.client_key_pem)
    doc = yaml.safe_load(conf(root, "kubelet.conf").read_text())
    doc["users"][0]["user"] = {"client-certificate": ref, "client-key": ref}
    conf(root, "kubelet.conf").write_text(yaml.safe_dump(doc))


@pytest.mark.parametrize("ref,error", [
    ("/var/lib/kubelet/pki/kubelet-client-current.pem", None),
    ("kubelet-client-current.pem", "needs an absolute path"),
    ("/var/lib/kubelet/pki/gone.pem", "which does not exist"),
])
def test_kubelet_conf_with_a_rotated_certificate_file(root: Path, done, ref: str, error: str | None) -> None:  # noqa: ANN001
    _rotated_kubelet_conf(root, ref)
    ctx = make_ctx(root)
    if error:
        with pytest.raises(ValidationError, match=r"^/etc/kubernetes/kubelet\.conf: refers to .*" + error):
            kc.ensure(ctx, kc.BY_NAME["kubelet"])
    else:
        kc.ensure(ctx, kc.BY_NAME["kubelet"])
        assert lines(ctx) == ['[kubeconfig] Using existing kubeconfig file: "/etc/kubernetes/kubelet.conf"']
