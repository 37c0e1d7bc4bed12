"""labelSelector and fieldSelector query parameters, with Kubernetes' syntax."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.apiserver import schema


class SelectorError(ValueError):
    pass


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # =, !=, in, notin, exists, !exists
    values: tuple[str, ...] = ()

    def matches(self, get: Callable[[str], str | None]) -> bool:
        value = get(self.key)
        if self.op == "exists":
            return value is not None
        if self.op == "!exists":
            return value is None
        if self.op in ("=", "in"):
            return value is not None and value in self.values
        return value not in self.values  # != and notin also match a missing key


def _split_top_level(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


_SET_RE = re.compile(r"^(\S+)\s+(in|notin)\s*\((.*)\)$")
_EQ_RE = re.compile(r"^([^=!\s]+)\s*(==|=|!=)\s*(\S*)$")


def parse_labels(text: str | None) -> list[Requirement]:
    reqs = []
    for part in _split_top_level(text or ""):
        if m := _SET_RE.match(part):
            values = tuple(v.strip() for v in m.group(3).split(",") if v.strip())
            reqs.append(Requirement(m.group(1), m.group(2), values))
        elif m := _EQ_RE.match(part):
            reqs.append(Requirement(m.group(1), "!=" if m.group(2) == "!=" else "=", (m.group(3),)))
        elif part.startswith("!") and re.fullmatch(r"![^\s=!(),]+", part):
            reqs.append(Requirement(part[1:], "!exists"))
        elif re.fullmatch(r"[^\s=!(),]+", part):
            reqs.append(Requirement(part, "exists"))
        else:
            raise SelectorError(f"unable to parse requirement: {part!r}")
    return reqs


def parse_fields(text: str | None) -> list[Requirement]:
    reqs = []
    for part in _split_top_level(text or ""):
        m = _EQ_RE.match(part)
        if not m:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
        reqs.append(Requirement(m.group(1), "!=" if m.group(2) == "!=" else "=", (m.group(3),)))
    return reqs


def field_getter(res: schema.Resource, obj: dict[str, Any]) -> Callable[[str], str | None]:
    def get(path: str) -> str | None:
        node: Any = obj
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, bool):
            return "true" if node else "false"
        return "" if node is None else str(node)

    return get


def check_fields(res: schema.Resource, reqs: list[Requirement]) -> None:
    allowed = {"metadata.name", "metadata.namespace", *res.field_labels}
    for r in reqs:
        if r.key not in allowed:
            raise SelectorError(f'field label not supported: {r.key}')


def exact_name(reqs: list[Requirement]) -> str | None:
    """The name a fieldSelector pins (`metadata.name=x`), which authorization treats as the request's name."""
    for r in reqs:
        if r.key == "metadata.name" and r.op == "=":
            return r.values[0]
    return None


def matches(res: schema.Resource, obj: dict[str, Any], labels: list[Requirement], fields: list[Requirement]) -> bool:
    obj_labels = (obj.get("metadata") or {}).get("labels") or {}
    if not all(r.matches(obj_labels.get) for r in labels):
        return False
    get = field_getter(res, obj)
    return all(r.matches(get) for r in fields)
