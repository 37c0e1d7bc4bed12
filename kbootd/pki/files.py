"""Where the cluster PKI lives on disk, and how its files are read, validated and written.

Every read and write goes through ctx.host, so a dry run writes nothing and later phases
of the same run read back what an earlier one "wrote". The certs phase (phase.py) decides
what to create; kubeconfig.py and join read the CA through here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography import x509

from kbootd.errors import KbootdError, ValidationError
from kbootd.pin import pin_of
from kbootd.pki import certlist, keys
from kbootd.pki import certs as c
from kbootd.pki.certlist import CertSpec

if TYPE_CHECKING:
    from kbootd.context import Context

PHASE = "certs"
KEY_MODE = 0o600
CERT_MODE = 0o644
PUB_MODE = 0o600  # kubeadm writes sa.pub with keyutil.WriteKey, i.e. 0600
DIR_MODE = 0o700  # directories that hold private keys


# --- paths --------------------------------------------------------------------------------

def cert_dir(ctx: Context) -> str:
    return ctx.cfg.cluster.certificates_dir


def crt_path(ctx: Context, base: str) -> str:
    return ctx.paths.cert(cert_dir(ctx), base, "crt")


def key_path(ctx: Context, base: str) -> str:
    return ctx.paths.cert(cert_dir(ctx), base, "key")


def pub_path(ctx: Context, base: str) -> str:
    return ctx.paths.cert(cert_dir(ctx), base, "pub")


def _ensure_dir(ctx: Context, path: str) -> None:
    # Once per run: in a dry run the directory never appears, and hostio would announce it per file.
    done = ctx.data.dirs_made
    if path not in done:
        ctx.host.ensure_dir(path, DIR_MODE)
        done.add(path)


def ensure_dirs(ctx: Context, base: str) -> None:
    _ensure_dir(ctx, cert_dir(ctx))
    if "/" in base:  # etcd/...
        _ensure_dir(ctx, f"{cert_dir(ctx)}/{base.rsplit('/', 1)[0]}")


def _write_cert(ctx: Context, path: str, cert: x509.Certificate) -> None:
    # A dry run names the certificate instead of dumping its PEM (kubeadm shows none).
    if ctx.host.write_file(path, c.encode_cert_pem(cert), CERT_MODE, show=False) and ctx.dry_run:
        ctx.reporter.out(f'[dryrun] Would write file "{path}" (mode {CERT_MODE:04o}): certificate '
                         f'"{cert.subject.rfc4514_string()}" issued by "{cert.issuer.rfc4514_string()}"')


def write_pair(ctx: Context, base: str, cert: x509.Certificate, key: keys.PrivateKey | None) -> None:
    """Key first: a crash in between leaves a key without a certificate, which the next run completes."""
    ensure_dirs(ctx, base)
    if key is not None:
        ctx.host.write_file(key_path(ctx, base), keys.encode_private_key_pem(key), KEY_MODE, sensitive=True)
    _write_cert(ctx, crt_path(ctx, base), cert)


# --- the CA pin ------------------------------------------------------------------------------

def ca_pin_on_disk(ctx: Context) -> str:
    """sha256:<hex> of the cluster CA's public key, from ca.crt (ctx.data.ca_pin keeps it)."""
    path = crt_path(ctx, certlist.CA.base)
    data = ctx.host.read_bytes(path)
    if data is None:
        raise KbootdError(f"{path}: not found; run `kbootd phase init certs/ca` first")
    return pin_of(c.load_cert_pem(data, path))


def external_ca(ctx: Context) -> bool:
    """True when ca.crt is present without ca.key (External CA mode: no CA signing on this host)."""
    return (ctx.host.exists(crt_path(ctx, certlist.CA.base))
            and not ctx.host.exists(key_path(ctx, certlist.CA.base)))


# --- loading and validating ---------------------------------------------------------------

def load_ca_cert(ctx: Context, ca: CertSpec) -> x509.Certificate:
    path = crt_path(ctx, ca.base)
    data = ctx.host.read_bytes(path)
    if data is None:
        raise KbootdError(
            f"{path}: the {ca.name} certificate authority is missing; run `kbootd phase init certs/{ca.name}` "
            "first (or provide your own CA there)")
    try:
        cert = c.load_cert_pem(data, path)
    except ValidationError as e:
        raise ValidationError(
            f"{e.message}. kbootd never regenerates a CA: provide a valid certificate, or remove "
            f"{path} and {key_path(ctx, ca.base)} to have a new CA generated") from None
    problems = []
    if not c.is_ca(cert):
        problems.append("it is not a CA certificate (basicConstraints CA:TRUE is missing)")
    elif not c.can_sign_certs(cert):
        problems.append("its key usage does not allow signing certificates (keyCertSign)")
    if expired := c.expiry_problem(cert):
        problems.append(expired)
    if problems:
        raise ValidationError(f"{path}: cannot use the {ca.name} certificate authority: {'; '.join(problems)}")
    if early := c.not_yet_valid_problem(cert):
        ctx.reporter.warn(PHASE, f"{path}: {early}")
    return cert


def load_ca(ctx: Context, ca: CertSpec, *, need_key: bool) -> tuple[x509.Certificate, keys.PrivateKey | None]:
    """A CA certificate and, if present, its key (validated to match). For other phases too."""
    cert = load_ca_cert(ctx, ca)
    kpath = key_path(ctx, ca.base)
    data = ctx.host.read_bytes(kpath)
    if data is None:
        if need_key:
            raise KbootdError(
                f"{kpath}: the {ca.name} CA key is missing (External CA mode?); it is needed to sign here")
        return cert, None
    key = keys.load_private_key_pem(data, kpath)
    if not c.key_matches(cert, key):
        raise ValidationError(f"{kpath}: this private key does not belong to {crt_path(ctx, ca.base)}")
    return cert, key


@dataclass
class _Found:
    """What is on disk for one leaf."""

    chain: list[x509.Certificate] | None = None
    key: keys.PrivateKey | None = None
    crt_there: bool = False
    key_there: bool = False
    damage: str | None = None  # why an existing file could not be parsed


def find_leaf(ctx: Context, spec: CertSpec) -> _Found:
    f = _Found()
    cp, kp = crt_path(ctx, spec.base), key_path(ctx, spec.base)
    crt, key = ctx.host.read_bytes(cp), ctx.host.read_bytes(kp)
    f.crt_there, f.key_there = crt is not None, key is not None
    damage = []
    if crt is not None:
        try:
            f.chain = c.load_cert_chain_pem(crt, cp)
        except ValidationError as e:
            damage.append(e.message)
    if key is not None:
        try:
            f.key = keys.load_private_key_pem(key, kp)
        except ValidationError as e:
            damage.append(e.message)
    f.damage = "; ".join(damage) or None
    return f


def _leaf_problems(ctx: Context, spec: CertSpec, chain: list[x509.Certificate], key: keys.PrivateKey,
                   ca_cert: x509.Certificate) -> list[str]:
    cert = chain[0]
    problems = []
    if not c.key_matches(cert, key):
        problems.append(f"the private key {key_path(ctx, spec.base)} does not belong to it")
    if bad_chain := c.chain_problem(cert, chain[1:], ca_cert):
        problems.append(bad_chain)
    if expired := c.expiry_problem(cert):
        problems.append(expired)
    ekus = c.ext_key_usages_of(cert)
    # No ExtendedKeyUsage extension means no restriction (RFC 5280 4.2.1.12).
    if ekus and x509.ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in ekus:
        lacking = [c.usage_name(u) for u in spec.usages if u not in ekus]
        if lacking:
            problems.append(f"its extended key usage lacks {', '.join(lacking)}")
    missing = spec.alt_names(ctx).missing_from(c.alt_names_of(cert))
    if missing:
        problems.append(f"its subject alternative names lack {missing.describe()}")
    return problems


def validate_leaf(ctx: Context, spec: CertSpec, found: _Found, ca_cert: x509.Certificate) -> None:
    assert found.chain is not None and found.key is not None
    problems = _leaf_problems(ctx, spec, found.chain, found.key, ca_cert)
    if problems:
        raise ValidationError(
            f"{crt_path(ctx, spec.base)}: cannot use the existing {spec.base} certificate: {'; '.join(problems)}. "
            f"Fix it, or remove it and {key_path(ctx, spec.base)} to have them generated")
    if early := c.not_yet_valid_problem(found.chain[0]):
        ctx.reporter.warn(PHASE, f"{crt_path(ctx, spec.base)}: {early}")


def check_provided_leaf(ctx: Context, spec: CertSpec, ca_cert: x509.Certificate) -> None:
    """External CA mode: the leaf must be on disk and valid, since nothing can sign a new one."""
    found = find_leaf(ctx, spec)
    ca = certlist.spec(spec.ca or "")
    why = (f"with {crt_path(ctx, ca.base)} but no {key_path(ctx, ca.base)} (External CA mode) every "
           f"certificate that CA signs must be provided")
    for there, path in ((found.crt_there, crt_path(ctx, spec.base)), (found.key_there, key_path(ctx, spec.base))):
        if not there:
            raise ValidationError(f"{path}: missing; {why}")
    if found.damage:
        raise ValidationError(f"{found.damage}; {why}")
    validate_leaf(ctx, spec, found, ca_cert)
