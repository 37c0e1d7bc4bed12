"""Go-style durations ("24h0m0s", "90s", "1.5h"), as kubeadm reads and prints them."""

from __future__ import annotations

import re

from kbootd.errors import ValidationError

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str | int | float, *, what: str = "duration") -> float:
    """Seconds in a Go duration. A bare number means seconds (the spec's token TTL rule)."""
    if isinstance(text, bool):
        raise ValidationError(f"{what}: expected a duration such as 24h, 15m or 0, got {text!r}")
    if isinstance(text, (int, float)):
        if text < 0:
            raise ValidationError(f"{what}: must not be negative, got {text}")
        return float(text)
    s = str(text).strip()
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return float(s)
    sign = 1.0
    if s.startswith("-"):
        sign, s = -1.0, s[1:]
    pos, total = 0, 0.0
    for m in _PART.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not s or pos != len(s):
        raise ValidationError(
            f"{what}: {text!r} is not a duration; expected e.g. 24h, 15m, 90s, 1h30m or 0"
        )
    if sign < 0:
        raise ValidationError(f"{what}: must not be negative, got {text!r}")
    return total


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
