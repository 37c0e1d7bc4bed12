"""The cluster PKI: keys, certificates, the declared certificate list and the certs phase."""

from __future__ import annotations


def external_ca(ctx) -> bool:  # noqa: ANN001 - Context; kept import-light for other phases
    """True when ca.crt is present without ca.key (External CA mode). See kbootd.pki.phase."""
    from kbootd.pki.phase import external_ca as _external_ca

    return _external_ca(ctx)
