"""`kbootd init` phase "certs": create, or reuse and validate, the cluster's PKI on the host.

Rules (spec "Using custom certificates", kubeadm v1.32 behaviour):
- an existing CA is never regenerated or overwritten; a CA without its key ("keyless") is
  accepted only when everything it would sign is already there and valid (External CA
  mode; for the cluster CA that includes the kubeconfig files);
- an existing certificate and key pair is validated (key matches, chains to its CA, SANs
  and usages cover what is needed, not expired) and reused; an invalid one is an error;
- a 0-byte or unparsable leaf is regenerated with a warning (a valid leaf key is kept);
- every read and write goes through ctx.host, so a dry run writes nothing and later phases
  of the same run read back what this one "wrote".
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

from kbootd import node
from kbootd.context import Context
from kbootd.errors import KbootdError, ValidationError
from kbootd.pin import pin_of
from kbootd.pki import certlist, keys
from kbootd.pki import certs as c
from kbootd.pki.certlist import CertSpec

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
    done = ctx.store.setdefault("pki_dirs", set())
    if path not in done:
        ctx.host.ensure_dir(path, DIR_MODE)
        done.add(path)


def _ensure_dirs(ctx: Context, base: str) -> None:
    _ensure_dir(ctx, cert_dir(ctx))
    if "/" in base:  # etcd/...
        _ensure_dir(ctx, f"{cert_dir(ctx)}/{base.rsplit('/', 1)[0]}")


def _write_cert(ctx: Context, path: str, cert: x509.Certificate) -> None:
    # A dry run names the certificate instead of dumping its PEM (kubeadm shows none).
    if ctx.host.write_file(path, c.encode_cert_pem(cert), CERT_MODE, show=False) and ctx.dry_run:
        ctx.reporter.out(f'[dryrun] Would write file "{path}" (mode {CERT_MODE:04o}): certificate '
                         f'"{cert.subject.rfc4514_string()}" issued by "{cert.issuer.rfc4514_string()}"')


def _write_pair(ctx: Context, base: str, cert: x509.Certificate, key: keys.PrivateKey | None) -> None:
    """Key first: a crash in between leaves a key without a certificate, which the next run completes."""
    _ensure_dirs(ctx, base)
    if key is not None:
        ctx.host.write_file(key_path(ctx, base), keys.encode_private_key_pem(key), KEY_MODE, sensitive=True)
    _write_cert(ctx, crt_path(ctx, base), cert)


# --- the CA pin and other products for later phases ---------------------------------------

def _remember_ca(ctx: Context, cert: x509.Certificate) -> str:
    ctx.store["ca_pin"] = pin = pin_of(cert)
    return pin


def ca_pin(ctx: Context) -> str:
    """sha256:<hex> of the cluster CA's public key, from this run's store or from ca.crt."""
    if "ca_pin" not in ctx.store:
        path = crt_path(ctx, certlist.CA.base)
        data = ctx.host.read_bytes(path)
        if data is None:
            raise KbootdError(f"{path}: not found; run `kbootd phase init certs/ca` first")
        _remember_ca(ctx, c.load_cert_pem(data, path))
    return ctx.store["ca_pin"]


def external_ca(ctx: Context) -> bool:
    """True when ca.crt is present without ca.key (External CA mode: no CA signing on this host)."""
    return (ctx.host.exists(crt_path(ctx, certlist.CA.base))
            and not ctx.host.exists(key_path(ctx, certlist.CA.base)))


# --- loading and validating ---------------------------------------------------------------

def _load_ca_cert(ctx: Context, ca: CertSpec) -> x509.Certificate:
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
    if ca.name == certlist.CA.name:
        _remember_ca(ctx, cert)
    return cert


def load_ca(ctx: Context, ca: CertSpec, *, need_key: bool) -> tuple[x509.Certificate, keys.PrivateKey | None]:
    """A CA certificate and, if present, its key (validated to match). For other phases too."""
    cert = _load_ca_cert(ctx, ca)
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


def _find_leaf(ctx: Context, spec: CertSpec) -> _Found:
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


def _validate_leaf(ctx: Context, spec: CertSpec, found: _Found, ca_cert: x509.Certificate) -> None:
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
    found = _find_leaf(ctx, spec)
    ca = certlist.spec(spec.ca or "")
    why = (f"with {crt_path(ctx, ca.base)} but no {key_path(ctx, ca.base)} (External CA mode) every "
           f"certificate that CA signs must be provided")
    for there, path in ((found.crt_there, crt_path(ctx, spec.base)), (found.key_there, key_path(ctx, spec.base))):
        if not there:
            raise ValidationError(f"{path}: missing; {why}")
    if found.damage:
        raise ValidationError(f"{found.damage}; {why}")
    _validate_leaf(ctx, spec, found, ca_cert)


def check_keyless_ca(ctx: Context, ca: CertSpec) -> None:
    """A CA without its key is usable only if all it would sign is present and valid."""
    ca_cert = _load_ca_cert(ctx, ca)
    for leaf in certlist.leaves_of(ctx, ca):
        check_provided_leaf(ctx, leaf, ca_cert)
    if ca.name == certlist.CA.name:
        from kbootd import kubeconfig  # kubeconfig builds on this module

        kubeconfig.check_provided(ctx)


# --- one certificate ----------------------------------------------------------------------

def ensure_ca(ctx: Context, ca: CertSpec) -> None:
    cp, kp = crt_path(ctx, ca.base), key_path(ctx, ca.base)
    if not ctx.host.exists(cp):
        key_data = ctx.host.read_bytes(kp)
        if key_data is not None:
            # The key is written first, so a crash (power cut, SIGKILL) between the two writes
            # leaves exactly this. A CA's identity is its key and its pin is the public key:
            # a fresh self-signed certificate for the same key (same subject) keeps the pin,
            # and every leaf already signed by that key still chains to it. The key itself
            # is never replaced; an unreadable one stays an error.
            key = keys.load_private_key_pem(key_data, kp)
            cert = c.new_self_signed_ca(key, ca.common_name(ctx), ca.validity(ctx))
            ctx.reporter.warn(PHASE, f"{kp} exists without {cp} (an interrupted run?); issuing the "
                                     f"{ca.base} certificate for the existing key (its pin is unchanged)")
            _write_pair(ctx, ca.base, cert, None)
        else:
            key = keys.new_private_key(keys.algorithm_for(ctx.cfg.cluster))
            cert = c.new_self_signed_ca(key, ca.common_name(ctx), ca.validity(ctx))
            ctx.reporter.info(PHASE, f'Generating "{ca.base}" certificate and key')
            _write_pair(ctx, ca.base, cert, key)
        if ca.name == certlist.CA.name:
            _remember_ca(ctx, cert)
    else:
        _, key = load_ca(ctx, ca, need_key=False)
        if key is not None:
            ctx.reporter.info(PHASE, f"Using existing {ca.base} certificate authority")
        else:
            check_keyless_ca(ctx, ca)
            ctx.reporter.info(PHASE, f"Using existing {ca.base} keyless certificate authority")
    if ca.name == certlist.CA.name:
        ctx.store["endpoint"] = node.control_plane_endpoint(ctx)
        ctx.reporter.info(PHASE, f"CA public key pin: {ctx.store['ca_pin']}")


def ensure_leaf(ctx: Context, spec: CertSpec) -> None:
    ca = certlist.spec(spec.ca or "")
    ca_cert, ca_key = load_ca(ctx, ca, need_key=False)
    found = _find_leaf(ctx, spec)
    if found.chain is not None and found.key is not None:
        _validate_leaf(ctx, spec, found, ca_cert)
        ctx.reporter.info(PHASE, f"Using existing {spec.base} certificate and key on disk")
        return
    cp, kp = crt_path(ctx, spec.base), key_path(ctx, spec.base)
    if found.chain is not None and not found.key_there:
        raise ValidationError(
            f"{kp}: missing, but {cp} exists; provide the key that belongs to the certificate, "
            "or remove the certificate to have both generated")
    if ca_key is None:
        problem = found.damage or f"{cp}: missing"
        raise ValidationError(
            f"{problem}; the {ca.name} CA has no key ({key_path(ctx, ca.base)}: External CA mode), so kbootd "
            f"cannot sign a "
            f"new {spec.base} certificate: provide a valid certificate and key")
    key = found.key  # a valid key whose certificate is missing or damaged is kept
    if found.damage:
        kept = " for the existing key" if key is not None else " and key"
        ctx.reporter.warn(PHASE, f"{found.damage}; generating a new {spec.base} certificate{kept}")
    fresh = key is None
    if key is None:
        key = keys.new_private_key(keys.algorithm_for(ctx.cfg.cluster))
    alt = spec.alt_names(ctx)
    cert = c.sign_certificate(key.public_key(), ca_cert, ca_key, common_name=spec.common_name(ctx),
                              organizations=spec.orgs, usages=spec.usages, alt_names=alt,
                              validity=spec.validity(ctx))
    what = "certificate and key" if fresh else "certificate for the existing key"
    ctx.reporter.info(PHASE, f'Generating "{spec.base}" {what}')
    _write_pair(ctx, spec.base, cert, key if fresh else None)
    if c.SERVER_AUTH in spec.usages:
        ctx.reporter.info(PHASE, f"{spec.base} serving cert is signed for {alt.describe()}")


def ensure_sa(ctx: Context) -> None:
    """The service-account signing key pair. An existing key is never replaced, even if damaged:
    a new one would invalidate every service-account token of the cluster."""
    base = certlist.SA_BASE
    kp, pp = key_path(ctx, base), pub_path(ctx, base)
    key_data, pub_data = ctx.host.read_bytes(kp), ctx.host.read_bytes(pp)
    if key_data is None:
        if pub_data is not None:
            raise ValidationError(
                f"{pp} exists but {kp} does not; provide the matching private key, or remove {pp} "
                "to have a new pair generated")
        key = keys.new_private_key(keys.algorithm_for(ctx.cfg.cluster))
        ctx.reporter.info(PHASE, f'Generating "{base}" key and public key')
        _ensure_dirs(ctx, base)
        ctx.host.write_file(kp, keys.encode_private_key_pem(key), KEY_MODE, sensitive=True)
        ctx.host.write_file(pp, keys.encode_public_key_pem(key), PUB_MODE)
        return
    key = keys.load_private_key_pem(key_data, kp)
    if pub_data is None:
        _ensure_dirs(ctx, base)
        ctx.host.write_file(pp, keys.encode_public_key_pem(key), PUB_MODE)  # derived, nothing replaced
    elif not keys.same_public_key(keys.load_public_key_pem(pub_data, pp), key):
        raise ValidationError(f"{pp}: this public key does not belong to {kp}")
    ctx.reporter.info(PHASE, f'Using the existing "{base}" key')


# --- phase entry points -------------------------------------------------------------------

def certs(ctx: Context) -> None:
    """Parent: names the directory and rejects an incomplete External CA setup before writing anything."""
    ctx.reporter.info(PHASE, f'Using certificateDir folder "{cert_dir(ctx)}"')
    ctx.store["endpoint"] = node.control_plane_endpoint(ctx)
    for spec in certlist.cert_list(ctx):
        if spec.is_ca and ctx.host.exists(crt_path(ctx, spec.base)) and not ctx.host.exists(key_path(ctx, spec.base)):
            check_keyless_ca(ctx, spec)


def local_etcd_only(ctx: Context) -> str | None:
    """run_if for the etcd certificates."""
    return "external etcd" if ctx.cfg.cluster.etcd_local is None else None


def _run(ctx: Context, name: str) -> None:
    spec = certlist.spec(name)
    if spec.local_etcd_only and ctx.cfg.cluster.etcd_local is None:
        what = "certificate authority generation" if spec.is_ca else "certificate generation"
        ctx.reporter.info(PHASE, f"External etcd mode: Skipping {spec.base} {what}")
        return
    (ensure_ca if spec.is_ca else ensure_leaf)(ctx, spec)


def ca(ctx: Context) -> None:
    _run(ctx, "ca")


def apiserver(ctx: Context) -> None:
    _run(ctx, "apiserver")


def apiserver_kubelet_client(ctx: Context) -> None:
    _run(ctx, "apiserver-kubelet-client")


def front_proxy_ca(ctx: Context) -> None:
    _run(ctx, "front-proxy-ca")


def front_proxy_client(ctx: Context) -> None:
    _run(ctx, "front-proxy-client")


def etcd_ca(ctx: Context) -> None:
    _run(ctx, "etcd-ca")


def etcd_server(ctx: Context) -> None:
    _run(ctx, "etcd-server")


def etcd_peer(ctx: Context) -> None:
    _run(ctx, "etcd-peer")


def etcd_healthcheck_client(ctx: Context) -> None:
    _run(ctx, "etcd-healthcheck-client")


def apiserver_etcd_client(ctx: Context) -> None:
    _run(ctx, "apiserver-etcd-client")


def sa(ctx: Context) -> None:
    ensure_sa(ctx)


def run_all(ctx: Context) -> None:
    """The parent and every child in order (what `init` does; handy for tests and callers)."""
    certs(ctx)
    for spec in certlist.cert_list(ctx):
        _run(ctx, spec.name)
    sa(ctx)
