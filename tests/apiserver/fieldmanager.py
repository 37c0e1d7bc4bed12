"""managedFields for Update operations, the way kube-apiserver's field manager records them.

For each write the manager (the User-Agent up to the first `/`) takes ownership of every field it
added or changed; those fields are taken away from the other managers, removed fields are dropped
from everybody, and managers left with nothing disappear. A manager's entry gets a new time only
when it took something. Entries are sorted like the real server sorts them: operation, time (to
the second), manager, apiVersion, subresource.

Paths use the fieldsV1 element syntax: `f:<field>`, `k:<json keys>` for keyed list items,
`v:<json value>` for set members and `i:<index>` as a fallback.
"""

from __future__ import annotations

import json
from typing import Any

from tests.apiserver import schema
from tests.apiserver.schema import ListOf, Struct, Type

Path = tuple[str, ...]

# Never tracked (the real field manager strips these before comparing).
_STRIPPED_META = {"name", "namespace", "creationTimestamp", "selfLink", "uid", "clusterName",
                  "generation", "managedFields", "resourceVersion", "deletionTimestamp",
                  "deletionGracePeriodSeconds", "generateName"}


def _key_element(item: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    if not isinstance(item, dict) or any(k not in item for k in keys):
        return None
    return "k:" + json.dumps({k: item[k] for k in sorted(keys)}, separators=(",", ":"), ensure_ascii=False)


def _list_elements(value: list[Any], t: ListOf) -> list[tuple[str, Any]] | None:
    """(element, item) pairs for a granular list, or None when the list is tracked as one value."""
    if t.kind == "set":
        return [("v:" + json.dumps(v, separators=(",", ":"), ensure_ascii=False), v) for v in value]
    if t.kind == "map":
        out = []
        for item in value:
            el = _key_element(item, t.keys)
            if el is None:
                return None
            out.append((el, item))
        return out
    return None


def _granular(value: Any, t: Type) -> bool:
    if isinstance(value, dict):
        return not (isinstance(t, Struct) and t.atomic)
    if isinstance(value, list):
        return isinstance(t, ListOf) and t.kind in ("set", "map")
    return False


def _children(value: Any, t: Type) -> list[tuple[str, Any, Type]]:
    if isinstance(value, dict):
        return [(f"f:{k}", v, schema.child_type(t, k)) for k, v in value.items()]
    if isinstance(value, list) and isinstance(t, ListOf):
        els = _list_elements(value, t)
        return [(el, item, t.item) for el, item in els] if els else []
    return []


def _all_paths(value: Any, t: Type, path: Path, out: set[Path]) -> None:
    out.add(path)
    if _granular(value, t):
        for el, v, ct in _children(value, t):
            _all_paths(v, ct, path + (el,), out)


def _compare(old: Any, new: Any, t: Type, path: Path, added: set, modified: set, removed: set) -> None:
    if old is None and new is None:
        return
    if old is None:
        _all_paths(new, t, path, added)
        return
    if new is None:
        _all_paths(old, t, path, removed)
        return
    same_shape = type(old) is type(new) and _granular(old, t) and _granular(new, t)
    if isinstance(old, list) and same_shape and _list_elements(old, t) is None:
        same_shape = False
    if isinstance(new, list) and same_shape and _list_elements(new, t) is None:
        same_shape = False
    if not same_shape:
        if old != new:
            modified.add(path)
        return
    old_children = {el: (v, ct) for el, v, ct in _children(old, t)}
    new_children = {el: (v, ct) for el, v, ct in _children(new, t)}
    for el, (v, ct) in new_children.items():
        _compare(old_children.get(el, (None, ct))[0], v, ct, path + (el,), added, modified, removed)
    for el, (v, ct) in old_children.items():
        if el not in new_children:
            _all_paths(v, ct, path + (el,), removed)


def _tracked(obj: dict[str, Any] | None, res: schema.Resource, subresource: str) -> dict[str, Any]:
    """The part of an object whose ownership a request on this endpoint can change."""
    if not obj:
        obj = schema.shape({}, res.schema)  # a create compares against the type's zero value
    out = {k: v for k, v in obj.items() if k not in ("kind", "apiVersion", "metadata")}
    out["metadata"] = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _STRIPPED_META}
    if res.status_subresource:
        if subresource == "status":
            return {"status": out["status"]} if "status" in out else {}
        out.pop("status", None)  # reset by the main endpoint's strategy
    return out


def compare(old: dict | None, new: dict | None, res: schema.Resource, subresource: str = "") -> tuple[set, set, set]:
    added: set[Path] = set()
    modified: set[Path] = set()
    removed: set[Path] = set()
    _compare(_tracked(old, res, subresource), _tracked(new, res, subresource), res.schema, (),
             added, modified, removed)
    for s in (added, modified, removed):
        s.discard(())
        s.discard(("f:metadata",))  # metadata itself is never owned, only what is inside
    return added, modified, removed


# --- fieldsV1 encoding -----------------------------------------------------------------------


def _sort_key(el: str) -> tuple[int, str]:
    return ({"f": 0, "k": 1, "v": 2, "i": 3}.get(el[0], 4), el)


def to_fields_v1(paths: set[Path]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    members: set[Path] = set(paths)
    for p in paths:
        node = tree
        for el in p:
            node = node.setdefault(el, {})

    def emit(node: dict[str, Any], prefix: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if prefix in members and node:
            out["."] = {}
        for el in sorted(node, key=_sort_key):
            out[el] = emit(node[el], prefix + (el,))
        return out

    return emit(tree, ())


def from_fields_v1(fields: dict[str, Any], prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    for el, sub in (fields or {}).items():
        if el == ".":
            out.add(prefix)
            continue
        path = prefix + (el,)
        if not sub:
            out.add(path)
        else:
            out |= from_fields_v1(sub, path)
    return out


# --- entries ---------------------------------------------------------------------------------


def _entry_id(e: dict[str, Any]) -> tuple[str, str, str, str]:
    return (e.get("manager", ""), e.get("operation", ""), e.get("apiVersion", ""), e.get("subresource", ""))


def update(
    live: dict[str, Any] | None,
    new: dict[str, Any],
    res: schema.Resource,
    manager: str,
    now: str,
    subresource: str = "",
) -> list[dict[str, Any]]:
    """The managedFields `new` should carry after `manager` wrote it over `live` (None: a create)."""
    entries = [dict(e) for e in ((live or {}).get("metadata", {}).get("managedFields") or [])]
    owned = {_entry_id(e): from_fields_v1(e.get("fieldsV1") or {}) for e in entries}
    by_id = {_entry_id(e): e for e in entries}
    added, modified, removed = compare(live, new, res, subresource)
    taken = added | modified

    for eid in list(owned):
        owned[eid] = owned[eid] - taken - removed
    me = (manager, "Update", res.api_version, subresource)
    if taken:
        owned[me] = (owned.get(me, set()) | taken) - removed
        by_id[me] = {"manager": manager, "operation": "Update", "apiVersion": res.api_version, "time": now,
                     "fieldsType": "FieldsV1", **({"subresource": subresource} if subresource else {})}

    result = []
    for eid, paths in owned.items():
        if not paths:
            continue
        e = dict(by_id[eid])
        e["fieldsType"] = "FieldsV1"
        e["fieldsV1"] = to_fields_v1(paths)
        result.append(schema.shape(e, schema.MANAGED_FIELDS_ENTRY))
    return sort_entries(result)


def sort_entries(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Same order as the apiserver's sortEncodedManagedFields; times are RFC 3339 to the second,
    # so comparing the strings compares the seconds.
    return sorted(entries, key=lambda e: (e.get("operation", ""), e.get("time") or "", e.get("manager", ""),
                                          e.get("apiVersion", ""), e.get("subresource", "")))
