"""/version and the legacy discovery documents (/api, /apis, /apis/<g>, /api/v1, /apis/<g>/<v>)."""

from __future__ import annotations

import hashlib
from typing import Any

from tests.apiserver import schema

# The shape of fixture 01; the values describe this test server, which claims to be a v1.32.0.
DEFAULT_VERSION: dict[str, str] = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0",
    "gitCommit": "70d3cc986aa8221cd1dfb1121852688902d3bf53",
    "gitTreeState": "clean",
    "buildDate": "2024-12-11T17:59:15Z",
    "goVersion": "go1.23.3",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def api_versions(server_address: str) -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}


def _group(name: str) -> dict[str, Any]:
    versions = [{"groupVersion": f"{name}/{v}", "version": v} for v in schema.GROUP_VERSIONS[name]]
    return {"name": name, "versions": versions, "preferredVersion": versions[0]}


def api_group_list() -> dict[str, Any]:
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [_group(g) for g in schema.GROUP_VERSIONS if g]}


def api_group(name: str) -> dict[str, Any] | None:
    if not name or name not in schema.GROUP_VERSIONS:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name)}


def resource_list(group: str, version: str) -> dict[str, Any] | None:
    if version not in schema.GROUP_VERSIONS.get(group, []):
        return None
    resources: list[dict[str, Any]] = []
    for r in schema.RESOURCES:
        if r.group != group or r.version != version:
            continue
        entry: dict[str, Any] = {"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
                                 "kind": r.kind, "verbs": list(r.verbs)}
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        entry["storageVersionHash"] = hashlib.sha256(f"{r.api_version}/{r.kind}".encode()).digest()[:8].hex()
        resources.append(entry)
        for sub in r.subresources:
            verbs = ["get", "patch", "update"] if sub in ("status", "approval") else ["update"]
            resources.append({"name": f"{r.plural}/{sub}", "singularName": "", "namespaced": r.namespaced,
                              "kind": r.kind, "verbs": verbs})
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}
