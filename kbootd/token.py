"""Bootstrap tokens: a value type that parses, generates and formats itself.

Format `[a-z0-9]{6}.[a-z0-9]{16}`: a public id and a secret. The secret is registered
for redaction the moment a token is parsed or generated; `str()` shows the id only.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from kbootd import redact
from kbootd.errors import ValidationError

TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
TOKEN_ID_RE = re.compile(r"^[a-z0-9]{6}$")
GROUP_RE = re.compile(r"^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$")
ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
USAGES = ("signing", "authentication")
DEFAULT_USAGES = ("signing", "authentication")
DEFAULT_GROUPS = ("system:bootstrappers:kubeadm:default-node-token",)
DEFAULT_TTL_SECONDS = 24 * 3600.0


def _random_string(n: int) -> str:
    # Rejection sampling over os.urandom: uniform, and avoids importing `secrets`/`random`.
    out: list[str] = []
    limit = 256 - (256 % len(ALPHABET))
    while len(out) < n:
        for b in os.urandom(n * 2):
            if b < limit:
                out.append(ALPHABET[b % len(ALPHABET)])
                if len(out) == n:
                    break
    return "".join(out)


@dataclass(frozen=True)
class BootstrapToken:
    id: str
    secret: str = field(repr=False)

    def __post_init__(self) -> None:
        redact.register(self.secret)

    @classmethod
    def parse(cls, text: str, *, source: str = "token") -> BootstrapToken:
        m = TOKEN_RE.match(text.strip()) if isinstance(text, str) else None
        if not m:
            # Register first: a malformed secret must not leak through this very message.
            if isinstance(text, str) and "." in text:
                redact.register(text.strip().split(".", 1)[1])
            shown = text.split(".", 1)[0] if isinstance(text, str) else repr(text)
            raise ValidationError(
                f"{source}: the token (id {shown!r}) is not of the form [a-z0-9]{{6}}.[a-z0-9]{{16}}"
            )
        return cls(m.group(1), m.group(2))

    @classmethod
    def generate(cls) -> BootstrapToken:
        return cls(_random_string(6), _random_string(16))

    @property
    def full(self) -> str:
        """The whole token. Only for the API and for printing the join command to its operator."""
        return f"{self.id}.{self.secret}"

    @property
    def secret_name(self) -> str:
        return f"bootstrap-token-{self.id}"

    def __str__(self) -> str:
        return f"{self.id}.{redact.REDACTED}"


def validate_usages(usages: list[str] | tuple[str, ...], *, source: str = "usages") -> tuple[str, ...]:
    bad = [u for u in usages if u not in USAGES]
    if bad:
        raise ValidationError(f"{source}: unknown usage {bad[0]!r}; expected one of {', '.join(USAGES)}")
    return tuple(dict.fromkeys(usages))


def validate_groups(groups: list[str] | tuple[str, ...], *, source: str = "groups") -> tuple[str, ...]:
    for g in groups:
        if not GROUP_RE.match(g):
            raise ValidationError(
                f"{source}: extra group {g!r} must match {GROUP_RE.pattern} "
                "(it must start with system:bootstrappers:)"
            )
    return tuple(dict.fromkeys(groups))


def parse_token_id(text: str, *, source: str = "token") -> str:
    """`token delete` takes an id or a whole token; only the id is used (spec)."""
    text = text.strip()
    if TOKEN_ID_RE.match(text):
        return text
    return BootstrapToken.parse(text, source=source).id
