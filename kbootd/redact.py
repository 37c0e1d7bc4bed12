"""Secrets are registered the moment they are parsed; every output path redacts them.

The registry is process-wide on purpose: a secret parsed anywhere must vanish from
every log handler, console line, exception message and dry-run listing.
"""

from __future__ import annotations

import logging
import re
import threading

REDACTED = "<redacted>"
_lock = threading.Lock()
_secrets: set[str] = set()
# Anything shaped like a bootstrap token is masked even if nobody registered it.
_TOKEN_RE = re.compile(r"\b([a-z0-9]{6})\.([a-z0-9]{16})\b")


def register(secret: str | None) -> None:
    """Remember a secret value; short values are refused to avoid redacting common words."""
    if secret and len(secret) >= 6:
        with _lock:
            _secrets.add(secret)


def registered() -> frozenset[str]:
    with _lock:
        return frozenset(_secrets)


def redact(text: str) -> str:
    if not text:
        return text
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for s in secrets:
        if s in text:
            text = text.replace(s, REDACTED)
    return _TOKEN_RE.sub(lambda m: f"{m.group(1)}.{REDACTED}", text)


class RedactingFilter(logging.Filter):
    """Rewrites each record's final message; attach it to every handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # a bad format string must not leak or crash logging
            msg = str(record.msg)
        record.msg = redact(msg)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            import traceback

            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)))
            record.exc_info = None
        return True


def install_filter(logger: logging.Logger | None = None) -> None:
    """Attach the filter to every handler of `logger` (root by default)."""
    logger = logger or logging.getLogger()
    for h in logger.handlers:
        if not any(isinstance(f, RedactingFilter) for f in h.filters):
            h.addFilter(RedactingFilter())
