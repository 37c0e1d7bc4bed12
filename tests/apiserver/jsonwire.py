"""JSON bytes as kube-apiserver writes them (Go's encoding/json).

* compact, followed by a newline (json.Encoder.Encode), unless pretty-printing was asked for;
* pretty: 2-space indent and no trailing newline (json.MarshalIndent);
* `<`, `>`, `&`, U+2028 and U+2029 escaped as \\u003c etc. (Go's HTML-safe default);
* non-ASCII sent as UTF-8, not \\u escapes.
"""

from __future__ import annotations

import json
from typing import Any

_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_PRETTY_AGENTS = ("curl", "Wget", "Mozilla/5.0")


def _go_escape(text: str) -> str:
    # These characters can only occur inside JSON strings, so replacing them everywhere is safe.
    for ch, esc in _GO_ESCAPES.items():
        if ch in text:
            text = text.replace(ch, esc)
    return text


def encode(obj: Any, *, pretty: bool = False) -> bytes:
    if pretty:
        text = json.dumps(obj, indent=2, ensure_ascii=False)
    else:
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n"
    return _go_escape(text).encode("utf-8")


def wants_pretty(user_agent: str, pretty_param: str | None) -> bool:
    """The apiserver indents for ?pretty=<true-ish> or for browser/curl/wget User-Agents."""
    if pretty_param:
        return pretty_param.lower() in ("1", "t", "true")
    return user_agent.startswith(_PRETTY_AGENTS)


def dumps_compact(obj: Any) -> str:
    """Compact JSON without Go escaping, for embedding (fieldsV1 keys, continue tokens)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
