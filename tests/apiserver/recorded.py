"""Read the responses recorded from a real kube-apiserver (shared/fixtures/apiserver/*.http).

Each file is a status line, the headers that matter, a blank line and the body. JSON bodies are
stored pretty-printed; text bodies are byte for byte (see that folder's README.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests import shared

FIXTURES = shared.FIXTURES
APISERVER_FIXTURES = FIXTURES / "apiserver"


@dataclass
class Recorded:
    name: str
    status: int
    reason: str
    headers: dict[str, str] = field(default_factory=dict)
    raw_body: bytes = b""

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    @property
    def is_json(self) -> bool:
        return self.content_type.startswith("application/json")

    def json(self) -> Any:
        return json.loads(self.raw_body)

    @property
    def text(self) -> str:
        return self.raw_body.decode("utf-8")


def load(name: str) -> Recorded:
    """Parse one recorded response; `name` may omit the `.http` suffix or be just its number."""
    path = _resolve(name)
    data = path.read_bytes()
    head, _, body = data.partition(b"\n\n")
    lines = head.decode("utf-8").split("\n")
    _, code, reason = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    rec = Recorded(path.stem, int(code), reason, headers, body)
    if rec.is_json:
        rec.raw_body = body.rstrip(b"\n")  # the file's own trailing newline is not the wire's
    return rec


def _resolve(name: str) -> Path:
    direct = APISERVER_FIXTURES / (name if name.endswith(".http") else f"{name}.http")
    if direct.exists():
        return direct
    matches = sorted(APISERVER_FIXTURES.glob(f"{name}-*.http"))
    if len(matches) != 1:
        raise FileNotFoundError(f"no single recorded response matches {name!r} in {APISERVER_FIXTURES}")
    return matches[0]


def available() -> bool:
    return APISERVER_FIXTURES.is_dir()
