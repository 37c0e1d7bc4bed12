"""One error tree, and the one place that maps an error to its exit code and its text.

The CLI and the daemon both call exit_code_for(), is_permanent() and render(). Exit codes
(the README's table; `kbootd status` has its own, cloud-init-like codes):
  0 success
  1 general failure (also: a bug)
  2 preflight checks failed
  3 invalid configuration or command line
  4 discovery or security failure (bad JWS, CA pin mismatch, plain-HTTP discovery ...)
  5 timed out waiting
  130 interrupted
"""

from __future__ import annotations

from kbootd.redact import redact

EXIT_SUCCESS = 0
EXIT_GENERAL = 1
EXIT_PREFLIGHT = 2
EXIT_INVALID = 3
EXIT_SECURITY = 4
EXIT_TIMEOUT = 5
EXIT_INTERRUPTED = 130


class KbootdError(Exception):
    """Base of every error kbootd reports to a user."""

    exit_code = EXIT_GENERAL
    code = "general"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ValidationError(KbootdError):
    """A configuration file, flag or value is not acceptable."""

    exit_code = EXIT_INVALID
    code = "invalid"


class PreflightError(KbootdError):
    exit_code = EXIT_PREFLIGHT
    code = "preflight"


class SecurityError(KbootdError):
    """Trust could not be established; never retried."""

    exit_code = EXIT_SECURITY
    code = "security"


class DiscoveryError(KbootdError):
    exit_code = EXIT_SECURITY
    code = "discovery"


class TransientError(KbootdError):
    """Worth retrying: the peer is not there yet, or not ready."""

    code = "transient"


class WaitTimeout(KbootdError):
    exit_code = EXIT_TIMEOUT
    code = "timeout"


class PhaseError(KbootdError):
    """Wraps a failure inside a named phase, keeping the cause's exit code."""

    def __init__(self, phase: str, cause: BaseException) -> None:
        msg = f'error execution phase {phase}: {cause}'
        super().__init__(msg, hint=getattr(cause, "hint", None))
        self.phase = phase
        self.cause = cause
        self.exit_code = exit_code_for(cause)
        self.code = getattr(cause, "code", "general")


EXIT_CODES = {
    EXIT_SUCCESS: "success",
    EXIT_GENERAL: "general failure",
    EXIT_PREFLIGHT: "preflight checks failed",
    EXIT_INVALID: "invalid configuration or command line",
    EXIT_SECURITY: "discovery or security failure",
    EXIT_TIMEOUT: "timed out",
    EXIT_INTERRUPTED: "interrupted",
}
# Failures that retrying cannot cure: the operator must change the input or the trust
# settings. The unit's RestartPreventExitStatus= lists the same codes (a test checks).
PERMANENT_EXIT_CODES = frozenset({EXIT_INVALID, EXIT_SECURITY})


def exit_code_for(exc: BaseException) -> int:
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, KbootdError):
        return int(exc.exit_code)
    return EXIT_GENERAL


def is_permanent(exc: BaseException) -> bool:
    return exit_code_for(exc) in PERMANENT_EXIT_CODES


def render(exc: BaseException, verbosity: int = 0) -> str:
    """The error as the operator reads it, secrets redacted: one line, the hint, and the
    traceback from verbosity 5. Anything not a KbootdError is a bug and says so."""
    if isinstance(exc, KbootdError):
        lines = [f"error: {exc}"]
        if exc.hint:
            lines.append(exc.hint.rstrip("\n"))
    else:
        lines = [f"error: internal error: {type(exc).__name__}: {exc}"]
        if verbosity < 5:
            lines.append("run again with -v 5 to see the traceback")
    text = "\n".join(lines) + "\n"
    if verbosity >= 5:
        import traceback  # only at -v 5: it imports linecache and tokenize

        text += "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return redact(text)
