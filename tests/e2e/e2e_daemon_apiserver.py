#!/usr/bin/python3
"""Runs the test API server (tests/apiserver) inside an e2e host, standing in for the
kube-apiserver static Pod: `python3 e2e_daemon_apiserver.py --cert-dir ... --bind ... --port ...`
takes the arguments of `python -m tests.apiserver`.

The hosts have Debian 12's python3-cryptography 38, which lacks Certificate.not_valid_*_utc
(added in 42); tests/apiserver/pki.py uses not_valid_after_utc when it signs a CSR. Until
that file falls back to the naive UTC attributes (as kbootd/pki/certs.py does), the CA's
certificate is wrapped here in a proxy that provides them.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from typing import Any

from cryptography import x509

from tests.apiserver import __main__ as apiserver_main
from tests.apiserver import pki


class _CertWithUTC:
    """A certificate with cryptography 42's aware *_utc properties on cryptography < 42."""

    def __init__(self, cert: x509.Certificate) -> None:
        self._cert = cert

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cert, name)

    @property
    def not_valid_after_utc(self) -> datetime:
        return self._cert.not_valid_after.replace(tzinfo=timezone.utc)

    @property
    def not_valid_before_utc(self) -> datetime:
        return self._cert.not_valid_before.replace(tzinfo=timezone.utc)


if not hasattr(x509.Certificate, "not_valid_after_utc"):
    _init = pki.CertificateAuthority.__init__

    def _init_with_utc(self: pki.CertificateAuthority, cert: x509.Certificate, key: Any) -> None:
        _init(self, _CertWithUTC(cert), key)  # type: ignore[arg-type]

    pki.CertificateAuthority.__init__ = _init_with_utc  # type: ignore[method-assign]
    print("e2e: cryptography < 42: the test CA's certificate gets not_valid_*_utc", flush=True)

if __name__ == "__main__":
    sys.exit(apiserver_main.main(sys.argv[1:]))
