"""Go-style durations ("24h0m0s", "90s", "1.5h"), as kubeadm reads and prints them."""

from __future__ import annotations

import re

from kbootd.errors import ValidationError

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


# Go's time.Duration is int64 nanoseconds: about 292 years is the longest duration kubeadm
# can read. Longer (99999999999h, 1e20, .inf) is refused as kubeadm refuses it, and never
# reaches datetime or time arithmetic that would overflow.
MAX_SECONDS = (2**63 - 1) / 1e9


def _bounded(seconds: float, text: object, what: str) -> float:
    if seconds != seconds or seconds > MAX_SECONDS:  # NaN, inf, or past int64 nanoseconds
        raise ValidationError(f"{what}: {_show(text)} is out of range; the longest duration is "
                              "2562047h47m16.854775807s (Go's time.Duration)")
    return seconds


def _show(text: object) -> str:
    s = repr(text)
    return s if len(s) <= 40 else s[:40] + "..."


def parse_duration(text: str | int | float, *, what: str = "duration") -> float:
    """Seconds in a Go duration. A bare number means seconds (the spec's token TTL rule)."""
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise ValidationError(f"{what}: expected a duration such as 24h, 15m or 0, got {_show(text)}")
    if isinstance(text, (int, float)):
        if text < 0:
            raise ValidationError(f"{what}: must not be negative, got {_show(text)}")
        if isinstance(text, int) and text > MAX_SECONDS:  # float() of a huge int overflows
            return _bounded(float("inf"), text, what)
        return _bounded(float(text), text, what)
    s = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return _bounded(float(s) if len(s) < 40 else float("inf"), text, what)
    sign = 1.0
    if s.startswith("-"):
        sign, s = -1.0, s[1:]
    pos, total = 0, 0.0
    for m in _PART.finditer(s):
        if m.start() != pos:
            break
        num = m.group(1)
        total += (float(num) if len(num) < 40 else float("inf")) * _UNITS[m.group(2)]
        pos = m.end()
    if not s or pos != len(s):
        raise ValidationError(
            f"{what}: {_show(text)} is not a duration; expected e.g. 24h, 15m, 90s, 1h30m or 0"
        )
    if sign < 0:
        raise ValidationError(f"{what}: must not be negative, got {_show(text)}")
    return _bounded(total, text, what)


def format_duration(seconds: float) -> str:
    """Go's time.Duration.String() for whole seconds and above: 86400 -> "24h0m0s"."""
    if seconds == 0:
        return "0s"
    whole = int(seconds)
    frac = seconds - whole
    h, rem = divmod(whole, 3600)
    m, s = divmod(rem, 60)
    sec = f"{s + frac:g}" if frac else str(s)
    if h:
        return f"{h}h{m}m{sec}s"
    if m:
        return f"{m}m{sec}s"
    return f"{sec}s"
