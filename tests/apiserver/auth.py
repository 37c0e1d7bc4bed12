"""Authentication as kube-apiserver does it with kubeadm's flags.

Order: x509 client certificate (verified against the cluster CA during the TLS handshake; user =
CN, groups = O), then bearer tokens (bootstrap tokens from kube-system Secrets, plus optional
static tokens for tests), then anonymous. A bearer token that does not authenticate is a 401,
never a fallback to anonymous.
"""

from __future__ import annotations

import base64
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from tests.apiserver import pki
from tests.apiserver.clock import Clock, parse_time
from tests.apiserver.store import Store

AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
BOOTSTRAP_TOKEN_TYPE = "bootstrap.kubernetes.io/token"
BOOTSTRAPPERS = "system:bootstrappers"
TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
GROUP_RE = re.compile(r"^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$")


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: Mapping[str, list[str]] = field(default_factory=dict)

    def in_group(self, group: str) -> bool:
        return group in self.groups


ANONYMOUS = User("system:anonymous", (UNAUTHENTICATED,))


class Unauthenticated(Exception):
    """Credentials were presented and rejected: the request gets a 401."""


def _with_authenticated(groups: list[str]) -> tuple[str, ...]:
    return tuple(groups) if AUTHENTICATED in groups else (*groups, AUTHENTICATED)


def _secret_data(secret: dict[str, Any], key: str) -> str:
    raw = (secret.get("data") or {}).get(key)
    if raw is None:
        return ""
    try:
        return base64.b64decode(raw).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return ""


def token_expired(secret: dict[str, Any], now_ts: float) -> bool:
    """Kubernetes' HasExpired: an unparsable expiration counts as expired, a missing one never expires."""
    value = _secret_data(secret, "expiration")
    if not value:
        return False
    try:
        return parse_time(value).timestamp() < now_ts
    except ValueError:
        return True


def bootstrap_token_user(store: Store, clock: Clock, token: str) -> User | None:
    """The bootstrap token authenticator; None for every kind of mismatch."""
    m = TOKEN_RE.match(token)
    if not m:
        return None
    token_id, token_secret = m.groups()
    secret = store.get("secrets", f"bootstrap-token-{token_id}", "kube-system")
    if secret is None or secret["metadata"].get("deletionTimestamp"):
        return None
    if secret.get("type") != BOOTSTRAP_TOKEN_TYPE or not secret.get("data"):
        return None
    if not hmac.compare_digest(_secret_data(secret, "token-secret").encode(), token_secret.encode()):
        return None
    if _secret_data(secret, "token-id") != token_id:
        return None
    if token_expired(secret, clock.time()):
        return None
    if _secret_data(secret, "usage-bootstrap-authentication") != "true":
        return None
    groups = {BOOTSTRAPPERS}
    extra = _secret_data(secret, "auth-extra-groups")
    for g in (s.strip() for s in extra.split(",")) if extra else ():
        if not GROUP_RE.match(g):
            return None
        groups.add(g)
    return User(f"system:bootstrap:{token_id}", _with_authenticated(sorted(groups)))


class Authenticator:
    def __init__(self, store: Store, clock: Clock, static_tokens: Mapping[str, User] | None = None) -> None:
        self.store = store
        self.clock = clock
        self.static_tokens = dict(static_tokens or {})

    def authenticate(self, client_cert_der: bytes | None, authorization: str | None) -> User:
        if client_cert_der:
            cert = x509.load_der_x509_certificate(client_cert_der)
            cn, orgs = pki.subject_of(cert)
            if cn:
                return User(cn, _with_authenticated(orgs))
        token = _bearer(authorization)
        if token is not None:
            if token in self.static_tokens:
                u = self.static_tokens[token]
                return User(u.name, _with_authenticated(list(u.groups)), u.uid, u.extra)
            user = bootstrap_token_user(self.store, self.clock, token)
            if user is None:
                raise Unauthenticated()
            return user
        return ANONYMOUS


def _bearer(header: str | None) -> str | None:
    """The token of `Authorization: Bearer <token>`; None when there is no bearer token at all."""
    parts = (header or "").strip().split(" ", 2)
    if len(parts) < 2 or parts[0].lower() != "bearer":
        return None
    token = parts[1]
    return token or None
