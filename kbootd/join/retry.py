"""Moved to kbootd.retry (every waiting loop uses it); kept importable for old callers."""

from kbootd.retry import (  # noqa: F401
    DEFAULT_BACKOFF,
    REAL_TIME,
    Backoff,
    RetryHook,
    Timing,
    retry,
)
