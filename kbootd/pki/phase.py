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

from typing import TYPE_CHECKING

from kbootd import kubeconfig
from kbootd.errors import ValidationError
from kbootd.pki import certlist, keys
from kbootd.pki import certs as c
from kbootd.pki.certlist import CertSpec
from kbootd.pki.files import (
    KEY_MODE,
    PHASE,
    PUB_MODE,
    cert_dir,
    check_provided_leaf,
    crt_path,
    ensure_dirs,
    find_leaf,
    key_path,
    load_ca,
    load_ca_cert,
    pub_path,
    validate_leaf,
    write_pair,
)

if TYPE_CHECKING:
    from kbootd.context import Context


def check_keyless_ca(ctx: Context, ca: CertSpec) -> None:
    """A CA without its key is usable only if all it would sign is present and valid."""
    ca_cert = load_ca_cert(ctx, ca)
    for leaf in certlist.leaves_of(ctx, ca):
        check_provided_leaf(ctx, leaf, ca_cert)
    if ca.name == certlist.CA.name:
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
            write_pair(ctx, ca.base, cert, None)
        else:
            key = keys.new_private_key(keys.algorithm_for(ctx.cfg.cluster))
            cert = c.new_self_signed_ca(key, ca.common_name(ctx), ca.validity(ctx))
            ctx.reporter.info(PHASE, f'Generating "{ca.base}" certificate and key')
            write_pair(ctx, ca.base, cert, key)
    else:
        _, key = load_ca(ctx, ca, need_key=False)
        if key is not None:
            ctx.reporter.info(PHASE, f"Using existing {ca.base} certificate authority")
        else:
            check_keyless_ca(ctx, ca)
            ctx.reporter.info(PHASE, f"Using existing {ca.base} keyless certificate authority")
    if ca.name == certlist.CA.name:
        ctx.reporter.info(PHASE, f"CA public key pin: {ctx.data.ca_pin}")


def ensure_leaf(ctx: Context, spec: CertSpec) -> None:
    ca = certlist.spec(spec.ca or "")
    ca_cert, ca_key = load_ca(ctx, ca, need_key=False)
    found = find_leaf(ctx, spec)
    if found.chain is not None and found.key is not None:
        validate_leaf(ctx, spec, found, ca_cert)
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
    write_pair(ctx, spec.base, cert, key if fresh else None)
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
        ensure_dirs(ctx, base)
        ctx.host.write_file(kp, keys.encode_private_key_pem(key), KEY_MODE, sensitive=True)
        ctx.host.write_file(pp, keys.encode_public_key_pem(key), PUB_MODE)
        return
    key = keys.load_private_key_pem(key_data, kp)
    if pub_data is None:
        ensure_dirs(ctx, base)
        ctx.host.write_file(pp, keys.encode_public_key_pem(key), PUB_MODE)  # derived, nothing replaced
    elif not keys.same_public_key(keys.load_public_key_pem(pub_data, pp), key):
        raise ValidationError(f"{pp}: this public key does not belong to {kp}")
    ctx.reporter.info(PHASE, f'Using the existing "{base}" key')


# --- phase entry points (the sub-phases are made from certlist's table in kbootd.phases) --

def certs(ctx: Context) -> None:
    """Parent: names the directory and rejects an incomplete External CA setup before writing anything."""
    ctx.reporter.info(PHASE, f'Using certificateDir folder "{cert_dir(ctx)}"')
    ctx.data.endpoint  # noqa: B018 - fail before writing anything when there is no advertise address
    for spec in certlist.cert_list(ctx):
        if spec.is_ca and ctx.host.exists(crt_path(ctx, spec.base)) and not ctx.host.exists(key_path(ctx, spec.base)):
            check_keyless_ca(ctx, spec)


def local_etcd_only(ctx: Context) -> str | None:
    """skip_if of the etcd certificates."""
    return "external etcd" if ctx.cfg.cluster.etcd_local is None else None


def ensure_cert(ctx: Context, spec: CertSpec) -> None:
    if spec.local_etcd_only and ctx.cfg.cluster.etcd_local is None:
        what = "certificate authority generation" if spec.is_ca else "certificate generation"
        ctx.reporter.info(PHASE, f"External etcd mode: Skipping {spec.base} {what}")
        return
    (ensure_ca if spec.is_ca else ensure_leaf)(ctx, spec)
