"""Turn method + path + query into authorization attributes, like apiserver's RequestInfoFactory.

Paths that are not /api/<v>/... or /apis/<g>/<v>/... are non-resource requests (verb = the
lowercased method). A list whose fieldSelector pins `metadata.name=<x>` is authorized as a
request for <x>, which is how anonymous can watch cluster-info with a resourceNames rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.apiserver import selectors
from tests.apiserver.selectors import Requirement

_VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
_NAMESPACE_SUBRESOURCES = {"status", "finalize"}


@dataclass
class RequestInfo:
    resource_request: bool
    path: str
    verb: str
    api_prefix: str = ""
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    parts: list[str] = field(default_factory=list)
    field_selector: list[Requirement] = field(default_factory=list)
    # the name came from a fieldSelector, not the path (the object URL is still the collection)
    name_from_selector: bool = False


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("1", "t", "true")


def parse(method: str, path: str, query: dict[str, str]) -> RequestInfo:
    parts = [p for p in path.strip("/").split("/") if p] if path.strip("/") else []
    info = RequestInfo(False, path, method.lower())
    if len(parts) < 3 or parts[0] not in ("api", "apis"):
        return info
    info.api_prefix = parts[0]
    rest = parts[1:]
    if info.api_prefix == "apis":
        if len(rest) < 3:
            return info
        info.api_group, rest = rest[0], rest[1:]
    info.resource_request = True
    info.api_version, rest = rest[0], rest[1:]
    info.verb = _VERBS.get(method.upper(), method.lower())
    if rest and rest[0] == "namespaces":
        if len(rest) > 1:
            info.namespace = rest[1]
            if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
                rest = rest[2:]
    info.parts = rest
    if len(rest) >= 3:
        info.subresource = rest[2]
    if len(rest) >= 2:
        info.name = rest[1]
    if len(rest) >= 1:
        info.resource = rest[0]
    if not info.name and info.verb == "get":
        info.verb = "watch" if _truthy(query.get("watch")) else "list"
        try:
            info.field_selector = selectors.parse_fields(query.get("fieldSelector"))
        except selectors.SelectorError:
            info.field_selector = []
        pinned = selectors.exact_name(info.field_selector)
        if pinned and "/" not in pinned and pinned not in (".", "..") and "%" not in pinned:
            info.name = pinned
            info.name_from_selector = True
    if not info.name and info.verb == "delete":
        info.verb = "deletecollection"
    return info
