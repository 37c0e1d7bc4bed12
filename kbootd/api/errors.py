"""How the API server's answers are classified: a Status error, unreachable, or worth retrying."""

from __future__ import annotations

from typing import Any

from kbootd.errors import KbootdError, TransientError


class APIError(KbootdError):
    """The API server answered with an error Status."""

    def __init__(self, status: int, reason: str, message: str, *, action: str,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{action}: {message} (HTTP {status}{', ' + reason if reason else ''})")
        self.status = status
        self.reason = reason
        self.details = details or {}

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def already_exists(self) -> bool:
        return self.status == 409 and self.reason == "AlreadyExists"

    @property
    def conflict(self) -> bool:
        return self.status == 409 and self.reason != "AlreadyExists"

    @property
    def forbidden(self) -> bool:
        return self.status == 403


class APIUnavailable(TransientError):
    """The API server could not be reached, or is not ready yet."""


_TRANSIENT_STATUS = {429, 500, 502, 503, 504}


def is_transient(err: BaseException) -> bool:
    if isinstance(err, TransientError):
        return True
    if isinstance(err, APIError):
        if err.status in _TRANSIENT_STATUS or err.conflict:
            return True
        # A namespaced create before the API server's start-up hook made the namespace.
        return err.not_found and err.details.get("kind") == "namespaces"
    return False
