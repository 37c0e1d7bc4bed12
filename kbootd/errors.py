"""One error tree. Only the CLI entry point turns these into a line on stderr and an exit code.

Exit codes (documented in the README):
  0 success
  1 general failure
  2 preflight checks failed
  3 invalid configuration or command line
  4 discovery or security failure (bad JWS, CA pin mismatch, plain-HTTP discovery ...)
  5 timed out waiting
  130 interrupted
"""

from __future__ import annotations


class KbootdError(Exception):
    """Base of every error kbootd reports to a user."""

    exit_code = 1
    code = "general"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ValidationError(KbootdError):
    """A configuration file, flag or value is not acceptable."""

    exit_code = 3
    code = "invalid"


class PreflightError(KbootdError):
    exit_code = 2
    code = "preflight"


class SecurityError(KbootdError):
    """Trust could not be established; never retried."""

    exit_code = 4
    code = "security"


class DiscoveryError(KbootdError):
    exit_code = 4
    code = "discovery"


class TransientError(KbootdError):
    """Worth retrying: the peer is not there yet, or not ready."""

    code = "transient"


class WaitTimeout(KbootdError):
    exit_code = 5
    code = "timeout"


class PhaseError(KbootdError):
    """Wraps a failure inside a named phase, keeping the cause's exit code."""

    def __init__(self, phase: str, cause: BaseException) -> None:
        msg = f'error execution phase {phase}: {cause}'
        super().__init__(msg, hint=getattr(cause, "hint", None))
        self.phase = phase
        self.cause = cause
        self.exit_code = getattr(cause, "exit_code", 1)
        self.code = getattr(cause, "code", "general")


EXIT_CODES = {
    0: "success",
    1: "general failure",
    2: "preflight checks failed",
    3: "invalid configuration or command line",
    4: "discovery or security failure",
    5: "timed out",
    130: "interrupted",
}
