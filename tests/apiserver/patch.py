"""PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge patch.

Strategic merge follows the list semantics in `schema`: lists with a merge key are merged item by
item, lists of scalars marked `merge` are unioned, every other list (Node `spec.taints` included:
it is `listType=atomic`) is replaced whole, exactly like fixtures 20 and 21 show.
"""

from __future__ import annotations

import copy
from typing import Any

from tests.apiserver import schema
from tests.apiserver.schema import ListOf, Type

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
SUPPORTED = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH)


class PatchError(Exception):
    """The patch cannot be applied; the server answers 422 (or 400 for a malformed body)."""

    def __init__(self, message: str, *, code: int = 422) -> None:
        super().__init__(message)
        self.code = code


def apply(content_type: str, original: dict[str, Any], patch: Any, t: Type) -> dict[str, Any]:
    if content_type == MERGE_PATCH:
        if not isinstance(patch, dict):
            raise PatchError("json: cannot unmarshal a merge patch that is not an object", code=400)
        return merge_patch(original, patch)
    if content_type == STRATEGIC_MERGE_PATCH:
        if not isinstance(patch, dict):
            raise PatchError("json: cannot unmarshal array into Go value of type map[string]interface {}",
                             code=400)
        return strategic_merge(original, patch, t)
    if content_type == JSON_PATCH:
        if not isinstance(patch, list):
            raise PatchError("json: cannot unmarshal object into Go value of type jsonpatch.Patch", code=400)
        return json_patch(original, patch)
    raise PatchError(f"unsupported patch type {content_type!r}", code=415)


# --- RFC 7386 --------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


# --- strategic merge -------------------------------------------------------------------------


def strategic_merge(original: Any, patch: dict[str, Any], t: Type) -> Any:
    if not isinstance(original, dict):
        original = {}
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    out = dict(original)
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue  # ordering hints do not change content here
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            out[field] = [v for v in out.get(field) or [] if v not in value]
            continue
        ct = schema.child_type(t, key)
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and not (isinstance(ct, schema.Struct) and ct.atomic):
            merged = strategic_merge(out.get(key), value, ct)
            if merged is None:
                out.pop(key, None)
            else:
                out[key] = merged
        elif isinstance(value, list) and isinstance(ct, ListOf) and ct.merge_key is not None:
            out[key] = _merge_list(out.get(key) or [], value, ct)
        else:
            out[key] = copy.deepcopy(value)
    if isinstance(retain, list):
        out = {k: v for k, v in out.items() if k in retain}
    return out


def _merge_list(original: list[Any], patch: list[Any], t: ListOf) -> list[Any]:
    if any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
        return [copy.deepcopy(p) for p in patch if not (isinstance(p, dict) and "$patch" in p)]
    if t.merge_key == "":  # a merged list of scalars: union, keeping order
        out = list(original)
        for v in patch:
            if v not in out:
                out.append(copy.deepcopy(v))
        return out
    key = t.merge_key
    out = [copy.deepcopy(v) for v in original]
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise PatchError(f"map: {item} does not contain declared merge key: {key}")
        idx = next((i for i, v in enumerate(out) if isinstance(v, dict) and v.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
            continue
        if idx is None:
            out.append({k: copy.deepcopy(v) for k, v in item.items() if not k.startswith("$")})
        else:
            out[idx] = strategic_merge(out[idx], item, t.item)
    return out


# --- RFC 6902 --------------------------------------------------------------------------------


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str]) -> tuple[Any, str]:
    node = doc
    for p in parts[:-1]:
        if isinstance(node, dict) and p in node:
            node = node[p]
        elif isinstance(node, list) and p.isdigit() and int(p) < len(node):
            node = node[int(p)]
        else:
            raise PatchError(f"doc is missing path: /{'/'.join(parts)}")
    return node, parts[-1]


def _get(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        return doc
    parent, last = _parent(doc, parts)
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent[int(last)]
    raise PatchError(f"doc is missing path: {path}")


def json_patch(original: dict[str, Any], ops: list[Any]) -> dict[str, Any]:
    doc = copy.deepcopy(original)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError("invalid JSON patch operation", code=400)
        kind, path = op["op"], op["path"]
        if kind == "test":
            if _get(doc, path) != op.get("value"):
                raise PatchError(f"testing value {path} failed")
            continue
        if kind in ("move", "copy"):
            value = copy.deepcopy(_get(doc, op["from"]))
            if kind == "move":
                doc = json_patch(doc, [{"op": "remove", "path": op["from"]}])
            doc = json_patch(doc, [{"op": "add", "path": path, "value": value}])
            continue
        parts = _pointer(path)
        if not parts:
            if kind in ("add", "replace"):
                doc = copy.deepcopy(op.get("value"))
                continue
            raise PatchError("cannot remove the whole document")
        parent, last = _parent(doc, parts)
        if kind == "add":
            if isinstance(parent, list):
                idx = len(parent) if last == "-" else int(last) if last.isdigit() else -1
                if not 0 <= idx <= len(parent):
                    raise PatchError(f"add operation does not apply: index out of range: {path}")
                parent.insert(idx, copy.deepcopy(op.get("value")))
            elif isinstance(parent, dict):
                parent[last] = copy.deepcopy(op.get("value"))
            else:
                raise PatchError(f"add operation does not apply: doc is missing path: {path}")
        elif kind in ("remove", "replace"):
            _get(doc, path)  # raises if missing
            if isinstance(parent, list):
                if kind == "remove":
                    parent.pop(int(last))
                else:
                    parent[int(last)] = copy.deepcopy(op.get("value"))
            elif kind == "remove":
                del parent[last]
            else:
                parent[last] = copy.deepcopy(op.get("value"))
        else:
            raise PatchError(f"Unexpected kind: {kind}")
    return doc
