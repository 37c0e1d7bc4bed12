"""Bootstrap tokens: a value type that parses, generates and formats itself.

Format `id.secret` (its shape is kbootd.tokenshape's): a public id and a secret. The secret is registered
for redaction the moment a token is parsed or generated; `str()` shows the id only.
"""

from __future__ import annotations

import os

from kbootd import redact
from kbootd.errors import ValidationError
from kbootd.tokenshape import TOKEN_FORMAT, TOKEN_ID_PATTERN, TOKEN_IN_TEXT_PATTERN, TOKEN_PATTERN

GROUP_PATTERN = r"^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$"
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


def _match(pattern: str, text: str):
    import re  # compiled on use: `token generate` never matches

    return re.match(pattern, text)


def holds_token(text: str) -> bool:
    """True when text contains something shaped like a bootstrap token (a file that must stay private)."""
    import re

    return re.search(TOKEN_IN_TEXT_PATTERN, text) is not None


class BootstrapToken:
    """Immutable id + secret. A plain class, not a dataclass, to keep `token generate` light."""

    __slots__ = ("id", "secret")
    id: str
    secret: str

    def __init__(self, id: str, secret: str) -> None:
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "secret", secret)
        redact.register(secret)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("BootstrapToken is immutable")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BootstrapToken) and (self.id, self.secret) == (other.id, other.secret)

    def __hash__(self) -> int:
        return hash((self.id, self.secret))

    def __repr__(self) -> str:
        return f"BootstrapToken(id={self.id!r}, secret=<redacted>)"

    @classmethod
    def parse(cls, text: str, *, source: str = "token") -> BootstrapToken:
        m = _match(TOKEN_PATTERN, text.strip()) if isinstance(text, str) else None
        if not m:
            raise ValidationError(f"{source}: {describe_malformed(text)}")
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


def describe_malformed(text: object) -> str:
    """Why a token does not parse, echoing nothing of it but a well-formed 6-character id.

    A mistyped separator (`abcdef:0123...`) or a stray character anywhere would otherwise
    put the secret into errors, the journal and status.json: none of it is shown, and the
    rest is registered for redaction in case some other path prints it.
    """
    if not isinstance(text, str):
        return f"expected a string of the form {TOKEN_FORMAT}, got {type(text).__name__}"
    t = text.strip()
    head, dot, rest = t.partition(".")
    redact.register(t)
    redact.register(rest)
    if dot and _match(TOKEN_ID_PATTERN, head):
        return f"the token (id {head!r}) is not of the form {TOKEN_FORMAT}"
    return f"the token ({len(t)} characters, not shown) is not of the form {TOKEN_FORMAT}"


def validate_usages(usages: list[str] | tuple[str, ...], *, source: str = "usages") -> tuple[str, ...]:
    bad = [u for u in usages if u not in USAGES]
    if bad:
        raise ValidationError(f"{source}: unknown usage {bad[0]!r}; expected one of {', '.join(USAGES)}")
    return tuple(dict.fromkeys(usages))


def validate_groups(groups: list[str] | tuple[str, ...], *, source: str = "groups") -> tuple[str, ...]:
    for g in groups:
        if not _match(GROUP_PATTERN, g):
            raise ValidationError(
                f"{source}: extra group {g!r} must match {GROUP_PATTERN} "
                "(it must start with system:bootstrappers:)"
            )
    return tuple(dict.fromkeys(groups))


def parse_token_id(text: str, *, source: str = "token") -> str:
    """`token delete` takes an id or a whole token; only the id is used (spec)."""
    text = text.strip()
    if _match(TOKEN_ID_PATTERN, text):
        return text
    return BootstrapToken.parse(text, source=source).id
