"""Objects on the server: comparing, merge patches, and kubeadm's idempotent writes
(util/apiclient/idempotency.go): create-or-update, create-or-keep, create-or-mutate, patch_node."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kbootd.api.errors import APIError, APIUnavailable
from kbootd.api.resources import Obj, describe, meta
from kbootd.errors import TransientError

if TYPE_CHECKING:
    from kbootd.api.client import Client


def _empty(v: Any) -> bool:
    return v is None or v == {} or v == [] or v == "" or v is False or v == 0


def contains(actual: Any, desired: Any) -> bool:
    """True when every field of desired is in actual with the same value.

    Fields the server adds (defaults, uid, status) do not count, and an empty desired
    value matches an absent one (the server omits empty fields).
    """
    if isinstance(desired, dict):
        if not isinstance(actual, dict):
            return actual is None and all(_empty(v) for v in desired.values())
        return all(contains(actual[k], v) if k in actual else _empty(v) for k, v in desired.items())
    if isinstance(desired, list):
        return (isinstance(actual, list) and len(actual) == len(desired)
                and all(contains(a, d) for a, d in zip(actual, desired, strict=True)))
    if actual is None:
        return _empty(desired)
    return bool(actual == desired)


def merge_patch(old: Any, new: Any) -> Any:
    """The RFC 7386 patch from old to new: changed keys, None for removed ones, lists whole.

    Sent as a strategic-merge patch this is what kubeadm's CreateTwoWayMergePatch gives
    for the fields it touches: labels and annotations merge, and taints (an atomic list)
    travel whole.
    """
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return new
    out: dict[str, Any] = {}
    for k, v in new.items():
        if k not in old:
            out[k] = v
        elif old[k] != v:
            sub = merge_patch(old[k], v)
            if sub != {} or not isinstance(v, dict):
                out[k] = sub
    for k in old:
        if k not in new:
            out[k] = None
    return out


def merge_patch_apply(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch_apply(out.get(k), v)
    return out


# --- idempotent writes (kubeadm's util/apiclient/idempotency.go) -----------------------------------

def _create_or_current(client: Client, obj: Obj) -> Obj | None:
    """Create obj: None when created, else the live object (kubeadm's AlreadyExists branch)."""
    kind, name, ns = meta(obj)
    try:
        client.create(obj)
        return None
    except APIError as e:
        if not e.already_exists:
            raise
    current = client.get(kind, name, ns)
    if current is None:
        raise APIUnavailable(f"{describe(kind, name, ns)} vanished while being read")
    return current


def create_or_update(client: Client, obj: Obj) -> str:
    """Create; if it exists, update it unless it already holds everything. Returns what happened."""
    kind, name, ns = meta(obj)

    def attempt() -> str:
        current = _create_or_current(client, obj)
        if current is None:
            return "created"
        if contains(current, obj):
            return "unchanged"
        new = copy.deepcopy(obj)
        # The read version makes the update conditional: a concurrent writer gives 409, and we retry.
        new.setdefault("metadata", {})["resourceVersion"] = (current.get("metadata") or {}).get("resourceVersion")
        client.update(new)
        return "updated"

    return client.retry(attempt, f"create or update {describe(kind, name, ns)}")


def create_or_keep(client: Client, obj: Obj) -> tuple[str, Obj | None]:
    """Create, or keep what is there. Returns ("created", None) or ("kept", existing)."""
    kind, name, ns = meta(obj)

    def attempt() -> tuple[str, Obj | None]:
        current = _create_or_current(client, obj)
        return ("created", None) if current is None else ("kept", current)

    return client.retry(attempt, f"create {describe(kind, name, ns)}")


def create_or_mutate(client: Client, obj: Obj, mutate: Callable[[Obj], None]) -> str:
    """Create; if it exists, apply mutate to the live object (keeping what others added) and update."""
    kind, name, ns = meta(obj)

    def attempt() -> str:
        current = _create_or_current(client, obj)
        if current is None:
            return "created"
        new = copy.deepcopy(current)
        mutate(new)
        if new == current:
            return "unchanged"
        client.update(new)
        return "updated"

    return client.retry(attempt, f"create or update {describe(kind, name, ns)}")


class NodeNotRegistered(TransientError):
    """The kubelet has not registered the Node yet."""


def patch_node(client: Client, name: str, mutate: Callable[[Obj], None], *,
               timeout: float | None = None,
               on_retry: Callable[[int, str, float], None] | None = None) -> bool:
    """Read the Node, apply mutate, send the difference as a strategic-merge patch.

    Retries while the Node does not exist yet and on conflicts. The patch carries the
    read resourceVersion, so a taint another controller added in between is never lost.
    Returns False when there was nothing to change.
    """

    def attempt() -> bool:
        node = client.get("Node", name)
        if node is None:
            raise NodeNotRegistered(f'node "{name}" is not registered yet')
        new = copy.deepcopy(node)
        mutate(new)
        patch = merge_patch(node, new)
        if not patch:
            return False
        rv = (node.get("metadata") or {}).get("resourceVersion")
        if rv:
            patch.setdefault("metadata", {})["resourceVersion"] = rv
        client.patch("Node", name, patch)
        return True

    return client.retry(attempt, f'patch node "{name}"', timeout=timeout, on_retry=on_retry)
