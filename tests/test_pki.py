"""The certs phase: the declared list, kubeadm parity, custom certificates, idempotence, dry run."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from kbootd import workflow
from kbootd.config.model import ClusterConfig, ExternalEtcd, InitConfig, LocalEtcd, NodeRegistration
from kbootd.context import Context, make_context
from kbootd.errors import KbootdError, PhaseError, ValidationError
from kbootd.phases import INIT
from kbootd.pin import pin_of
from kbootd.pki import certlist, keys
from kbootd.pki import certs as c
from kbootd.pki import files as pki_files
from kbootd.pki import phase as pki
from kbootd.report import RecordingReporter
from tests.conftest import tree_snapshot
from tests.keycache import cached_keys, use_cached_keys  # noqa: F401 - fixture
from tests.shared import INIT_BASIC

pytestmark = pytest.mark.usefixtures("use_cached_keys")

FIXTURE = INIT_BASIC
LEAVES = [s for s in certlist.CERTS if not s.is_ca]
CAS = [s for s in certlist.CERTS if s.is_ca]


# --- helpers ------------------------------------------------------------------------------

def make_cfg(*, sans: tuple[str, ...] = ("kubernetes.example.com", "10.100.245.1"), external_etcd: bool = False,
             algorithm: str = "RSA-2048", gates: tuple[tuple[str, bool], ...] = (), cpe: str | None = None,
             advertise: str = "10.0.0.10", etcd: LocalEtcd | None = None) -> InitConfig:
    """The configuration of the kubeadm fixture (init-basic/config.yaml)."""
    cluster = ClusterConfig(
        api_server_cert_sans=sans, encryption_algorithm=algorithm, feature_gates=gates, control_plane_endpoint=cpe,
        etcd_local=None if external_etcd else (etcd or LocalEtcd()),
        etcd_external=ExternalEtcd(endpoints=("https://etcd:2379",)) if external_etcd else None)
    return InitConfig(cluster=cluster, advertise_address=advertise, node=NodeRegistration(name="cp-1"))


def make_ctx(root: Path, cfg: InitConfig | None = None, *, dry_run: bool = False) -> Context:
    return make_context(root=str(root), reporter=RecordingReporter(), init=cfg or make_cfg(), dry_run=dry_run)


def pki_dir(root: Path) -> Path:
    return root / "etc/kubernetes/pki"


def crt(root: Path, base: str) -> Path:
    return pki_dir(root) / f"{base}.crt"


def key_file(root: Path, base: str) -> Path:
    return pki_dir(root) / f"{base}.key"


def load(root: Path, base: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(crt(root, base).read_bytes())


def run_phase(ctx: Context, name: str) -> None:
    """One phase of init's declaration, with its sub-phases, as `kbootd phase init NAME` runs
    it; raises the phase's own error rather than the workflow's wrapper."""
    try:
        workflow.run(INIT, ctx, only=name)
    except PhaseError as e:
        raise e.cause from None


def full_run(root: Path, cfg: InitConfig | None = None) -> Context:
    ctx = make_ctx(root, cfg)
    run_phase(ctx, "certs")
    return ctx


def lines(ctx: Context) -> list[str]:
    return ctx.reporter.text().splitlines()  # type: ignore[attr-defined]


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def seed_ca(root: Path, base: str = "ca", cn: str = "kubernetes", key: keys.PrivateKey | None = None,
            with_key: bool = True, now: datetime | None = None) -> tuple[x509.Certificate, keys.PrivateKey]:
    key = key or ec.generate_private_key(ec.SECP256R1())  # never one of the pool's RSA keys
    cert = c.new_self_signed_ca(key, cn, timedelta(days=3650), now=now)
    write(crt(root, base), c.encode_cert_pem(cert))
    if with_key:
        write(key_file(root, base), keys.encode_private_key_pem(key))
    return cert, key


# --- openssl -text facts: the shared vocabulary for comparing with kubeadm's certificates ----

_KU = {"digital_signature": "Digital Signature", "key_encipherment": "Key Encipherment",
       "key_cert_sign": "Certificate Sign"}
_EKU = {ExtendedKeyUsageOID.SERVER_AUTH: "TLS Web Server Authentication",
        ExtendedKeyUsageOID.CLIENT_AUTH: "TLS Web Client Authentication"}


def openssl_facts(text: str) -> dict[str, object]:
    """What `openssl x509 -text` says about subject, issuer, validity length and extensions."""
    facts: dict[str, object] = {"extensions": {}}
    exts: dict[str, tuple[bool, str]] = facts["extensions"]  # type: ignore[assignment]
    rows = text.splitlines()
    for i, row in enumerate(rows):
        s = row.strip()
        for field in ("Subject", "Issuer", "Signature Algorithm"):
            if s.startswith(f"{field}:") and field not in facts:
                facts[field] = s.split(":", 1)[1].strip()
        if s.startswith(("Not Before:", "Not After :")):
            facts["Not Before" if s.startswith("Not Before") else "Not After"] = datetime.strptime(" ".join(s.split(":", 1)[1].split()),
                                                     "%b %d %H:%M:%S %Y GMT").replace(tzinfo=timezone.utc)
        m = re.match(r"^ {12}(X509v3 [^:]+):\s*(critical)?\s*$", row)
        if m:
            exts[m.group(1)] = (m.group(2) == "critical", rows[i + 1].strip())
    return facts


def _openssl_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    if ip.version == 4:
        return str(ip)
    return ":".join(f"{int(g, 16):X}" for g in ip.exploded.split(":"))  # OpenSSL 3's IPv6 form


def _dn(name: x509.Name) -> str:
    short = {"commonName": "CN", "organizationName": "O"}
    return ", ".join(f"{short[a.oid._name]} = {a.value}" for a in name)


def crypto_facts(cert: x509.Certificate) -> dict[str, object]:
    """The same facts as openssl_facts, computed from our certificate without running openssl."""
    exts: dict[str, tuple[bool, str]] = {}
    for e in cert.extensions:
        v = e.value
        if isinstance(v, x509.KeyUsage):
            exts["X509v3 Key Usage"] = (e.critical, ", ".join(t for a, t in _KU.items() if getattr(v, a)))
        elif isinstance(v, x509.ExtendedKeyUsage):
            exts["X509v3 Extended Key Usage"] = (e.critical, ", ".join(_EKU[u] for u in v))
        elif isinstance(v, x509.BasicConstraints):
            exts["X509v3 Basic Constraints"] = (e.critical, f"CA:{'TRUE' if v.ca else 'FALSE'}")
        elif isinstance(v, x509.SubjectAlternativeName):
            names = [f"DNS:{d}" for d in v.get_values_for_type(x509.DNSName)]
            names += [f"IP Address:{_openssl_ip(i)}" for i in v.get_values_for_type(x509.IPAddress)]
            exts["X509v3 Subject Alternative Name"] = (e.critical, ", ".join(names))
        elif isinstance(v, x509.SubjectKeyIdentifier):
            exts["X509v3 Subject Key Identifier"] = (e.critical, ":".join(f"{b:02X}" for b in v.digest))
        elif isinstance(v, x509.AuthorityKeyIdentifier):
            exts["X509v3 Authority Key Identifier"] = (e.critical, ":".join(f"{b:02X}" for b in v.key_identifier))
    return {"Subject": _dn(cert.subject), "Issuer": _dn(cert.issuer), "extensions": exts,
            "Signature Algorithm": {"sha256WithRSAEncryption": "sha256WithRSAEncryption"}.get(
                cert.signature_algorithm_oid._name, cert.signature_algorithm_oid._name),
            "Not Before": c.not_before(cert), "Not After": c.not_after(cert)}


def fixture_file(spec: certlist.CertSpec) -> Path:
    return FIXTURE / "certs" / f"{spec.base.replace('/', '-')}.txt"


def comparable(facts: dict[str, object]) -> dict[str, object]:
    """Drop what differs by nature (key identifiers, dates), keep what must match kubeadm."""
    exts = {k: (crit, None if "Key Identifier" in k else val)
            for k, (crit, val) in facts["extensions"].items()}  # type: ignore[union-attr]
    return {"Subject": facts["Subject"], "Issuer": facts["Issuer"], "extensions": exts}


def validity(facts: dict[str, object]) -> timedelta:
    return facts["Not After"] - facts["Not Before"]  # type: ignore[operator]


# --- the declared list --------------------------------------------------------------------

def test_each_ca_comes_before_the_leaves_it_signs() -> None:
    names = [s.name for s in certlist.CERTS]
    for ca in CAS:
        group = [i for i, s in enumerate(certlist.CERTS) if s.name == ca.name or s.ca == ca.name]
        assert names[group[0]] == ca.name and group == list(range(group[0], group[0] + len(group)))
    assert len(CAS) + len(LEAVES) == len(set(names))


@pytest.mark.parametrize("external,expected", [
    (False, [s.name for s in certlist.CERTS]),
    (True, ["ca", "apiserver", "apiserver-kubelet-client", "front-proxy-ca", "front-proxy-client"]),
])
def test_etcd_certificates_only_with_local_etcd(root: Path, external: bool, expected: list[str]) -> None:
    ctx = make_ctx(root, make_cfg(external_etcd=external))
    assert [s.name for s in certlist.cert_list(ctx)] == expected
    assert (pki.local_etcd_only(ctx) == "external etcd") is external


# --- kubeadm parity -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def fixture_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("fixture-run")
    with cached_keys():
        ctx = full_run(root)
    return root, lines(ctx)


@pytest.mark.parametrize("spec", list(certlist.CERTS), ids=lambda s: s.name)
def test_certificate_matches_kubeadm_fixture(fixture_run: tuple[Path, list[str]], spec: certlist.CertSpec) -> None:
    root, _ = fixture_run
    ours = crypto_facts(load(root, spec.base))
    theirs = openssl_facts(fixture_file(spec).read_text())
    assert comparable(ours) == comparable(theirs)
    assert ours["Signature Algorithm"] == theirs["Signature Algorithm"]
    # Same validity length; ours may be a few seconds longer: leaves end "now + 1y" at signing time.
    assert timedelta(0) <= validity(ours) - validity(theirs) < timedelta(minutes=1)


def test_leaf_starts_with_its_ca_and_names_its_key_identifier(fixture_run: tuple[Path, list[str]]) -> None:
    root, _ = fixture_run
    for spec in LEAVES:
        leaf, ca = load(root, spec.base), load(root, certlist.spec(spec.ca or "").base)
        assert c.not_before(leaf) == c.not_before(ca)
        aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
        assert aki == ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def test_sa_public_key_matches_kubeadm_fixture(fixture_run: tuple[Path, list[str]]) -> None:
    root, _ = fixture_run
    pub = keys.load_public_key_pem((pki_dir(root) / "sa.pub").read_bytes(), "sa.pub")
    bits = re.search(r"\((\d+) bit\)", (FIXTURE / "certs/sa-pub.txt").read_text())
    assert bits and isinstance(pub, rsa.RSAPublicKey) and pub.key_size == int(bits.group(1))


def test_console_lines_match_kubeadm(fixture_run: tuple[Path, list[str]]) -> None:
    _, out = fixture_run
    theirs = [ln.replace("/etc/kubernetes/tmp/kubeadm-init-dryrun", "/etc/kubernetes/pki")
              for ln in (FIXTURE / "dryrun-stdout.txt").read_text().splitlines() if ln.startswith("[certs]")]
    # kbootd adds one line kubeadm prints only at the end of init: the CA pin.
    ours = [ln for ln in out if ln.startswith("[certs]") and "CA public key pin" not in ln]
    assert ours == theirs


def test_pin_and_endpoint_are_derived_from_disk_and_config(root: Path) -> None:
    ctx = full_run(root)
    pin = pin_of(crt(root, "ca").read_bytes())
    assert ctx.data.ca_pin == pin and f"[certs] CA public key pin: {pin}" in lines(ctx)
    assert ctx.data.endpoint == "10.0.0.10:6443"
    again = full_run(root)  # reused CA: same pin
    assert again.data.ca_pin == pin and make_ctx(root).data.ca_pin == pin  # a fresh run reads ca.crt


# --- SANs ---------------------------------------------------------------------------------

@pytest.mark.parametrize("cpe,advertise,extra_dns,extra_ips", [
    (None, "10.0.0.10", [], ["10.0.0.10"]),
    ("lb.example.com:6443", "10.0.0.10", ["lb.example.com"], ["10.0.0.10"]),
    ("192.0.2.7:443", "10.0.0.10", [], ["10.0.0.10", "192.0.2.7"]),
    (None, "fd00::10", [], ["fd00::10"]),
])
def test_apiserver_sans(root: Path, cpe: str | None, advertise: str, extra_dns: list[str], extra_ips: list[str]) -> None:
    ctx = make_ctx(root, make_cfg(sans=("*.apps.example.com",), cpe=cpe, advertise=advertise))
    alt = certlist.APISERVER.alt_names(ctx)
    assert alt.dns == tuple(sorted({"cp-1", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                                    "kubernetes.default.svc.cluster.local", "*.apps.example.com", *extra_dns}))
    assert [str(i) for i in alt.ips] == ["10.96.0.1", *extra_ips]


@pytest.mark.parametrize("spec,field", [(certlist.ETCD_SERVER, "server_cert_sans"),
                                        (certlist.ETCD_PEER, "peer_cert_sans")])
def test_etcd_extra_sans_go_to_their_own_cert(root: Path, spec: certlist.CertSpec, field: str) -> None:
    etcd = LocalEtcd(**{field: ("etcd.example.com", "192.0.2.9")})
    ctx = make_ctx(root, make_cfg(etcd=etcd))
    other = certlist.ETCD_PEER if spec is certlist.ETCD_SERVER else certlist.ETCD_SERVER
    assert "etcd.example.com" in spec.alt_names(ctx).dns
    assert ipaddress.ip_address("192.0.2.9") in spec.alt_names(ctx).ips
    assert "etcd.example.com" not in other.alt_names(ctx).dns


def test_a_hostname_advertise_address_is_a_clear_error(root: Path) -> None:
    ctx = make_ctx(root, make_cfg(advertise="cp-1.example.com"))
    with pytest.raises(ValidationError, match="advertiseAddress.*not an IP address"):
        certlist.APISERVER.alt_names(ctx)


# --- idempotence, modes, dry run ----------------------------------------------------------

def test_second_run_changes_nothing(root: Path) -> None:
    full_run(root)
    before = tree_snapshot(root)
    ctx = full_run(root)
    assert tree_snapshot(root) == before
    assert not any("Generating" in ln for ln in lines(ctx))
    assert "[certs] Using existing ca certificate authority" in lines(ctx)


def test_file_and_directory_modes(root: Path) -> None:
    full_run(root)
    modes = {p.relative_to(pki_dir(root)).as_posix(): p.stat().st_mode & 0o777 for p in pki_dir(root).rglob("*")}
    assert pki_dir(root).stat().st_mode & 0o777 == 0o700
    for name, mode in modes.items():
        want = {".key": 0o600, ".crt": 0o644, ".pub": 0o600}.get(Path(name).suffix, 0o700)
        assert mode == want, name
    assert modes["etcd"] == 0o700 and len([n for n in modes if n.endswith(".key")]) == 11


@pytest.mark.parametrize("seed", ["empty", "ca-only"])
def test_dry_run_writes_nothing_and_shows_no_key(root: Path, seed: str) -> None:
    if seed == "ca-only":
        seed_ca(root)
    before = tree_snapshot(root)
    ctx = make_ctx(root, dry_run=True)
    run_phase(ctx, "certs")
    assert tree_snapshot(root) == before
    out = ctx.reporter.text()  # type: ignore[attr-defined]
    assert "PRIVATE KEY" not in out and "BEGIN CERTIFICATE" not in out
    assert '[dryrun] Would write file "/etc/kubernetes/pki/apiserver.key" (mode 0600)' in out
    # later phases of the same dry run read back what it "wrote"
    leaf = c.load_cert_pem(ctx.host.read_bytes("/etc/kubernetes/pki/apiserver.crt"), "apiserver.crt")
    assert c.signed_by(leaf, c.load_cert_pem(ctx.host.read_bytes("/etc/kubernetes/pki/ca.crt"), "ca.crt"))


# --- custom certificates ------------------------------------------------------------------

def test_ca_only_is_used_to_sign_everything(root: Path) -> None:
    ca_cert, _ = seed_ca(root)
    ca_bytes = crt(root, "ca").read_bytes()
    ctx = full_run(root)
    assert crt(root, "ca").read_bytes() == ca_bytes
    assert "[certs] Using existing ca certificate authority" in lines(ctx)
    for spec in (certlist.APISERVER, certlist.APISERVER_KUBELET_CLIENT):
        assert c.signed_by(load(root, spec.base), ca_cert)


def test_ca_and_some_leaves_are_reused(root: Path) -> None:
    ca_cert, ca_key = seed_ca(root)
    ctx0 = make_ctx(root)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = c.sign_certificate(leaf_key.public_key(), ca_cert, ca_key, common_name="my-apiserver",
                              usages=(c.SERVER_AUTH,), alt_names=certlist.APISERVER.alt_names(ctx0),
                              validity=timedelta(days=30))
    write(crt(root, "apiserver"), c.encode_cert_pem(leaf))
    write(key_file(root, "apiserver"), keys.encode_private_key_pem(leaf_key))
    before = crt(root, "apiserver").read_bytes(), key_file(root, "apiserver").read_bytes()
    ctx = full_run(root)
    assert (crt(root, "apiserver").read_bytes(), key_file(root, "apiserver").read_bytes()) == before
    assert "[certs] Using existing apiserver certificate and key on disk" in lines(ctx)
    assert '[certs] Generating "apiserver-kubelet-client" certificate and key' in lines(ctx)


def _external_ca(root: Path) -> None:

    ctx = full_run(root)
    run_phase(ctx, "kubeconfig")
    key_file(root, "ca").unlink()


def test_external_ca_complete_is_accepted(root: Path) -> None:
    _external_ca(root)
    before = tree_snapshot(root)
    ctx = full_run(root)
    assert pki_files.external_ca(ctx)
    assert "[certs] Using existing ca keyless certificate authority" in lines(ctx)
    assert tree_snapshot(root) == before


@pytest.mark.parametrize("remove,named", [
    ("etc/kubernetes/pki/apiserver.crt", "/etc/kubernetes/pki/apiserver.crt"),
    ("etc/kubernetes/pki/apiserver-kubelet-client.key", "/etc/kubernetes/pki/apiserver-kubelet-client.key"),
    ("etc/kubernetes/scheduler.conf", "/etc/kubernetes/scheduler.conf"),
    ("etc/kubernetes/super-admin.conf", "/etc/kubernetes/super-admin.conf"),
])
def test_external_ca_with_a_missing_file_names_it(root: Path, remove: str, named: str) -> None:
    _external_ca(root)
    (root / remove).unlink()
    before = tree_snapshot(root)
    ctx = make_ctx(root)
    with pytest.raises(ValidationError, match=re.escape(named) + r": missing.*External CA mode"):
        pki.certs(ctx)
    assert tree_snapshot(root) == before


def test_keyless_front_proxy_ca_needs_its_client(root: Path) -> None:
    full_run(root)
    key_file(root, "front-proxy-ca").unlink()
    crt(root, "front-proxy-client").unlink()
    with pytest.raises(ValidationError, match=r"front-proxy-client\.crt: missing"):
        pki.ensure_cert(make_ctx(root), certlist.spec("front-proxy-ca"))


def _foreign_leaf(root: Path, spec: certlist.CertSpec, *, days: float = 30, now: datetime | None = None,
                  usages: tuple[x509.ObjectIdentifier, ...] | None = None, sans: bool = True,
                  other_ca: bool = False) -> None:
    ctx = make_ctx(root)
    ca_spec = certlist.spec(spec.ca or "")
    ca_cert, ca_key = (seed_ca(root / "elsewhere") if other_ca
                       else pki_files.load_ca(ctx, ca_spec, need_key=True))
    k = ec.generate_private_key(ec.SECP256R1())
    cert = c.sign_certificate(k.public_key(), ca_cert, ca_key, common_name=spec.common_name(ctx),
                              usages=usages or spec.usages, alt_names=spec.alt_names(ctx) if sans else c.AltNames(),
                              validity=timedelta(days=days), now=now)
    write(crt(root, spec.base), c.encode_cert_pem(cert))
    write(key_file(root, spec.base), keys.encode_private_key_pem(k))


@pytest.mark.parametrize("damage,message", [
    ("mismatched-key", r"apiserver\.key does not belong to it"),
    ("expired", r"it expired on"),
    ("other-ca", r"not signed by the CA 'kubernetes'"),
    ("no-sans", r"lack DNS names \[cp-1 .*\] and IPs \[10\.96\.0\.1 10\.0\.0\.10 10\.100\.245\.1\]"),
    ("client-only", r"extended key usage lacks server auth"),
])
def test_an_invalid_existing_leaf_is_an_error_naming_it(root: Path, damage: str, message: str) -> None:
    if damage == "expired":  # a leaf starts with its CA: that CA must be older than the leaf's end
        seed_ca(root, now=datetime.now(timezone.utc) - timedelta(days=100))
    full_run(root)
    spec = certlist.APISERVER
    if damage == "mismatched-key":
        write(key_file(root, spec.base), keys.encode_private_key_pem(ec.generate_private_key(ec.SECP256R1())))
    elif damage == "expired":
        _foreign_leaf(root, spec, days=30, now=datetime.now(timezone.utc) - timedelta(days=60))
    elif damage == "other-ca":
        _foreign_leaf(root, spec, other_ca=True)
    elif damage == "no-sans":
        _foreign_leaf(root, spec, sans=False)
    else:
        _foreign_leaf(root, spec, usages=(c.CLIENT_AUTH,))
    before = tree_snapshot(root)
    with pytest.raises(ValidationError, match=r"/etc/kubernetes/pki/apiserver\.crt: cannot use .*" + message):
        pki.ensure_cert(make_ctx(root), certlist.spec("apiserver"))
    assert tree_snapshot(root) == before


def test_a_new_cert_san_after_the_first_run_is_reported(root: Path) -> None:
    full_run(root)
    with pytest.raises(ValidationError, match=r"lack DNS names \[api\.example\.org\] and IPs \[\]"):
        pki.ensure_cert(make_ctx(root, make_cfg(sans=("kubernetes.example.com", "10.100.245.1", "api.example.org"))), certlist.spec("apiserver"))


@pytest.mark.parametrize("broken,kept_key", [
    ("crt-empty", True), ("crt-garbage", True), ("crt-missing", True), ("key-empty", False), ("key-garbage", False),
])
def test_a_damaged_leaf_is_regenerated_with_a_warning(root: Path, broken: str, kept_key: bool) -> None:
    full_run(root)
    spec = certlist.ETCD_SERVER
    old_key = key_file(root, spec.base).read_bytes()
    target = crt(root, spec.base) if broken.startswith("crt") else key_file(root, spec.base)
    if broken.endswith("missing"):
        target.unlink()
    else:
        target.write_bytes(b"" if broken.endswith("empty") else b"not a pem\n")
    ctx = make_ctx(root)
    pki.ensure_cert(ctx, certlist.spec("etcd-server"))
    events = ctx.reporter.events  # type: ignore[attr-defined]
    assert any(kind == "warn" for kind, _, _ in events) is (not broken.endswith("missing"))
    assert (key_file(root, spec.base).read_bytes() == old_key) is kept_key
    new = load(root, spec.base)
    assert c.key_matches(new, keys.load_private_key_pem(key_file(root, spec.base).read_bytes(), "k"))
    assert c.signed_by(new, load(root, "etcd/ca"))


def test_a_damaged_leaf_under_a_keyless_ca_is_an_error(root: Path) -> None:
    _external_ca(root)
    crt(root, "apiserver").write_bytes(b"")
    with pytest.raises(ValidationError, match=r"apiserver\.crt: the file is empty.*External CA mode"):
        pki.ensure_cert(make_ctx(root), certlist.spec("apiserver"))


@pytest.mark.parametrize("content,message", [
    (b"", r"ca\.crt: the file is empty.*never regenerates a CA"),
    (b"garbage", r"ca\.crt: not a PEM certificate.*never regenerates a CA"),
])
def test_a_damaged_ca_is_never_regenerated(root: Path, content: bytes, message: str) -> None:
    seed_ca(root)
    crt(root, "ca").write_bytes(content)
    before = tree_snapshot(root)
    with pytest.raises(ValidationError, match=message):
        run_phase(make_ctx(root), "certs")
    assert tree_snapshot(root) == before


@pytest.mark.parametrize("problem,message", [
    ("key-mismatch", r"ca\.key: this private key does not belong to /etc/kubernetes/pki/ca\.crt"),
    ("not-a-ca", r"ca\.crt: cannot use the ca certificate authority: it is not a CA certificate"),
    ("expired", r"ca\.crt: cannot use the ca certificate authority: it expired"),
])
def test_a_bad_ca_is_a_clear_error(root: Path, problem: str, message: str) -> None:
    ca_cert, ca_key = seed_ca(root)
    if problem == "key-mismatch":
        write(key_file(root, "ca"), keys.encode_private_key_pem(ec.generate_private_key(ec.SECP256R1())))
    elif problem == "not-a-ca":
        leaf = c.sign_certificate(ca_key.public_key(), ca_cert, ca_key, common_name="kubernetes",
                                  usages=(c.CLIENT_AUTH,), validity=timedelta(days=1))
        write(crt(root, "ca"), c.encode_cert_pem(leaf))
    else:
        old = c.new_self_signed_ca(ca_key, "kubernetes", timedelta(days=1),
                                   now=datetime.now(timezone.utc) - timedelta(days=10))
        write(crt(root, "ca"), c.encode_cert_pem(old))
    with pytest.raises(ValidationError, match=message):
        pki.ensure_cert(make_ctx(root), certlist.spec("ca"))


@pytest.mark.parametrize("child,needs", [
    ("apiserver", "certs/ca"), ("front-proxy-client", "certs/front-proxy-ca"),
    ("etcd-server", "certs/etcd-ca"), ("apiserver-etcd-client", "certs/etcd-ca"),
])
def test_a_child_alone_without_its_ca_says_which_phase_to_run(root: Path, child: str, needs: str) -> None:
    with pytest.raises(KbootdError, match=f"run `kbootd phase init {needs}` first"):
        run_phase(make_ctx(root), f"certs/{child}")
    assert not (root / "etc").exists()


def test_a_child_alone_with_its_ca_works(root: Path) -> None:
    seed_ca(root)
    ctx = make_ctx(root)
    pki.ensure_cert(ctx, certlist.spec("apiserver"))
    assert lines(ctx)[0] == '[certs] Generating "apiserver" certificate and key'
    assert sorted(p.name for p in pki_dir(root).iterdir()) == ["apiserver.crt", "apiserver.key", "ca.crt", "ca.key"]


def test_leaf_key_without_cert_gets_a_cert_for_that_key(root: Path) -> None:
    seed_ca(root)
    k = ec.generate_private_key(ec.SECP256R1())
    write(key_file(root, "apiserver"), keys.encode_private_key_pem(k))
    ctx = make_ctx(root)
    pki.ensure_cert(ctx, certlist.spec("apiserver"))
    assert c.key_matches(load(root, "apiserver"), k)
    assert '[certs] Generating "apiserver" certificate for the existing key' in lines(ctx)


def test_leaf_cert_without_key_is_an_error(root: Path) -> None:
    full_run(root)
    key_file(root, "apiserver").unlink()
    with pytest.raises(ValidationError, match=r"apiserver\.key: missing, but .*apiserver\.crt exists"):
        pki.ensure_cert(make_ctx(root), certlist.spec("apiserver"))


@pytest.mark.parametrize("state,outcome", [
    ("pub-only", r"sa\.pub exists but .*sa\.key does not"),
    ("mismatch", r"sa\.pub: this public key does not belong to .*sa\.key"),
    ("key-garbage", r"sa\.key: not a PEM private key"),
    ("key-only", None),
])
def test_sa_key_pair(root: Path, state: str, outcome: str | None) -> None:
    full_run(root)
    sa_key, sa_pub = key_file(root, "sa"), pki_dir(root) / "sa.pub"
    key_bytes = sa_key.read_bytes()
    if state == "pub-only":
        sa_key.unlink()
    elif state == "mismatch":
        sa_pub.write_bytes(keys.encode_public_key_pem(ec.generate_private_key(ec.SECP256R1())))
    elif state == "key-garbage":
        sa_key.write_bytes(b"garbage")
    else:
        sa_pub.unlink()
    ctx = make_ctx(root)
    if outcome:
        with pytest.raises(ValidationError, match=outcome):
            pki.ensure_sa(ctx)
        return
    pki.ensure_sa(ctx)
    assert sa_key.read_bytes() == key_bytes
    assert keys.same_public_key(keys.load_public_key_pem(sa_pub.read_bytes(), "sa.pub"),
                                keys.load_private_key_pem(key_bytes, "sa.key"))


# --- algorithms ---------------------------------------------------------------------------

@pytest.mark.parametrize("algorithm,gates,kind,size,sig", [
    ("RSA-2048", (), rsa.RSAPrivateKey, 2048, "sha256WithRSAEncryption"),
    ("RSA-3072", (), rsa.RSAPrivateKey, 3072, "sha256WithRSAEncryption"),
    ("RSA-4096", (), rsa.RSAPrivateKey, 4096, "sha256WithRSAEncryption"),
    ("ECDSA-P256", (), ec.EllipticCurvePrivateKey, 256, "ecdsa-with-SHA256"),
    ("ECDSA-P384", (), ec.EllipticCurvePrivateKey, 384, "ecdsa-with-SHA384"),
    ("RSA-2048", (("PublicKeysECDSA", True),), ec.EllipticCurvePrivateKey, 256, "ecdsa-with-SHA256"),
])
def test_encryption_algorithm(root: Path, algorithm: str, gates, kind, size: int, sig: str) -> None:  # noqa: ANN001
    ctx = make_ctx(root, make_cfg(algorithm=algorithm, gates=gates))
    pki.ensure_cert(ctx, certlist.spec("ca"))
    pki.ensure_cert(ctx, certlist.spec("apiserver"))
    for base in ("ca", "apiserver"):
        pem = key_file(root, base).read_bytes()
        assert pem.startswith(b"-----BEGIN EC PRIVATE KEY" if kind is ec.EllipticCurvePrivateKey
                              else b"-----BEGIN RSA PRIVATE KEY")
        k = keys.load_private_key_pem(pem, base)
        assert isinstance(k, kind) and (k.key_size if isinstance(k, rsa.RSAPrivateKey) else k.curve.key_size) == size
    assert load(root, "apiserver").signature_algorithm_oid._name == sig


# --- the workflow -------------------------------------------------------------------------

@pytest.mark.parametrize("external", [False, True])
def test_runs_as_workflow_phases(root: Path, external: bool) -> None:
    ctx = make_ctx(root, make_cfg(external_etcd=external))
    run_phase(ctx, "certs")
    skipped = [(p, why) for kind, p, why in ctx.reporter.events if kind == "skipped"]  # type: ignore[attr-defined]
    etcd = [f"certs/{s.name}" for s in certlist.CERTS if s.local_etcd_only]
    assert skipped == ([(p, "external etcd") for p in etcd] if external else [])
    assert (pki_dir(root) / "etcd").exists() is not external
    assert crt(root, "front-proxy-client").exists() and (pki_dir(root) / "sa.pub").exists()


def test_workflow_wraps_errors_with_the_phase(root: Path) -> None:
    with pytest.raises(PhaseError, match="certs/apiserver"):
        workflow.run(INIT, make_ctx(root), only="certs/apiserver")


def test_certificates_dir_from_config(root: Path) -> None:
    cfg = make_cfg()
    cfg = replace(cfg, cluster=replace(cfg.cluster, certificates_dir="/srv/pki"))
    ctx = make_ctx(root, cfg)
    run_phase(ctx, "certs")
    assert (root / "srv/pki/ca.crt").exists() and (root / "srv/pki/etcd/peer.key").stat().st_mode & 0o777 == 0o600
    assert lines(ctx)[0] == '[certs] Using certificateDir folder "/srv/pki"'


# --- the reusable API ---------------------------------------------------------------------

def test_sign_csr_keeps_the_requested_identity() -> None:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = c.new_self_signed_ca(ca_key, "test-ca", timedelta(days=1))
    node_key = ec.generate_private_key(ec.SECP256R1())
    csr = c.new_csr(node_key, "system:node:w1", organizations=("system:nodes",),
                    alt_names=c.AltNames(("w1",), (ipaddress.ip_address("10.0.0.2"),)))
    csr = c.load_csr_pem(c.encode_csr_pem(csr), "csr")
    cert = c.sign_csr(csr, ca_cert, ca_key, usages=(c.CLIENT_AUTH,), validity=timedelta(hours=1))
    assert (c.common_name(cert), c.organizations(cert)) == ("system:node:w1", ("system:nodes",))
    assert c.alt_names_of(cert).dns == ("w1",) and c.key_matches(cert, node_key) and c.signed_by(cert, ca_cert)
    assert c.ext_key_usages_of(cert) == {ExtendedKeyUsageOID.CLIENT_AUTH}


@pytest.mark.parametrize("loader,data,message", [
    (c.load_cert_pem, b"", "the file is empty"),
    (c.load_cert_pem, b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "not a PEM certificate"),
    (c.load_csr_pem, b"junk", "not a PEM certificate request"),
    (keys.load_private_key_pem, b"junk", "not a PEM private key"),
    (keys.load_public_key_pem, b"", "the file is empty"),
])
def test_loaders_name_the_file_and_not_the_content(loader, data: bytes, message: str) -> None:  # noqa: ANN001
    with pytest.raises(ValidationError, match=f"^/some/file: {message}") as e:
        loader(data, "/some/file")
    assert "AAAA" not in str(e.value)


def test_encrypted_key_is_refused_clearly() -> None:
    from cryptography.hazmat.primitives import serialization

    k = ec.generate_private_key(ec.SECP256R1())
    pem = k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.BestAvailableEncryption(b"secret-pass"))
    with pytest.raises(ValidationError, match="encrypted"):
        keys.load_private_key_pem(pem, "k.key")


def test_key_factory_is_restored() -> None:
    made: list[str] = []

    def fake(alg: str) -> keys.PrivateKey:
        made.append(alg)
        return ec.generate_private_key(ec.SECP256R1())

    with keys.key_factory(fake):
        keys.new_private_key("RSA-4096")
    assert made == ["RSA-4096"]
    assert isinstance(keys.new_private_key("ECDSA-P256"), ec.EllipticCurvePrivateKey) and made == ["RSA-4096"]
    with pytest.raises(ValidationError, match="DSA-1024"):
        keys.new_private_key("DSA-1024")
