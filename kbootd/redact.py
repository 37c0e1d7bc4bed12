"""Secrets are registered the moment they are parsed; every output path redacts them.

The registry is process-wide on purpose: a secret parsed anywhere must vanish from
every log handler, console line, exception message and dry-run listing. Nothing heavy
is imported here: `kbootd token generate` registers its secret on a fast path.
"""

from __future__ import annotations

from kbootd.tokenshape import TOKEN_IN_TEXT_PATTERN

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing `typing`: this module is on `token generate`'s path
if TYPE_CHECKING:
    from typing import Any

REDACTED = "<redacted>"
_secrets: set[str] = set()  # set.add is atomic under the GIL; no lock needed
_token_re: Any = None


def register(secret: str | None) -> None:
    """Remember a secret value; short values are refused to avoid redacting common words."""
    if secret and len(secret) >= 6:
        _secrets.add(secret)


def registered() -> frozenset[str]:
    return frozenset(_secrets)


def redact(text: str) -> str:
    global _token_re
    if not text:
        return text
    for s in sorted(_secrets, key=len, reverse=True):
        if s in text:
            text = text.replace(s, REDACTED)
    if _token_re is None:
        import re  # on first use: `token generate` registers a secret but never redacts

        # Anything shaped like a bootstrap token is masked even if nobody registered it.
        _token_re = re.compile(TOKEN_IN_TEXT_PATTERN)
    return _token_re.sub(lambda m: f"{m.group(1)}.{REDACTED}", text)


_filter_cls: Any = None


def redacting_filter() -> Any:
    """A logging.Filter that rewrites each record's final message (and traceback) redacted."""
    global _filter_cls
    if _filter_cls is None:
        import logging

        class RedactingFilter(logging.Filter):
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

        _filter_cls = RedactingFilter
    return _filter_cls()


def install_filter(logger: Any = None) -> None:
    """Attach the filter to every handler of `logger` (root by default)."""
    import logging

    logger = logger or logging.getLogger()
    for h in logger.handlers:
        if not any(type(f).__name__ == "RedactingFilter" for f in h.filters):
            h.addFilter(redacting_filter())
