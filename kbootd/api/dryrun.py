"""The dry-run client: prints every action as kubeadm's dry-run client does and changes nothing."""

from __future__ import annotations

import copy
from collections.abc import Callable

from kbootd import kyaml, redact
from kbootd.api.client import Client
from kbootd.api.errors import APIError
from kbootd.api.objects import merge_patch_apply
from kbootd.api.resources import Obj, describe, meta, resource, with_type

# Bootstrap token Secret keys that are not secret: shown in dry-run output, the rest is redacted.
_PUBLIC_SECRET_KEYS = frozenset({"token-id", "expiration", "usage-bootstrap-authentication",
                                 "usage-bootstrap-signing", "auth-extra-groups", "description"})


def printable(obj: Obj) -> Obj:
    """A copy fit for printing: Secret values other than the public bootstrap-token fields redacted."""
    if obj.get("kind") != "Secret":
        return obj
    out = copy.deepcopy(obj)
    for key in ("data", "stringData"):
        for k in list(out.get(key) or {}):
            if k not in _PUBLIC_SECRET_KEYS:
                out[key][k] = redact.REDACTED
    return out


class DryRunClient(Client):
    """Prints what would be done, as kubeadm's dry-run client does, and changes nothing.

    Objects it "created" are remembered so later reads in the same run see them; a Node
    read returns a stand-in (the kubelet would have registered it), as kubeadm's does.
    """

    dry_run = True

    def __init__(self, say: Callable[[str], None], *, node_name: str | None = None) -> None:
        super().__init__(None, timeout=0.0, interval=0.0, sleep=lambda _s: None)
        self.say = say
        self.node_name = node_name
        self.objects: dict[tuple[str, str | None, str], Obj] = {}
        self.actions: list[tuple[str, str, str | None, str]] = []

    def _action(self, verb: str, kind: str, name: str | None, namespace: str | None) -> None:
        r = resource(kind)
        self.actions.append((verb, kind, namespace, name or ""))
        self.say(f'[dryrun] Would perform action {verb} on resource "{r.plural}" in API group "{r.group_label}"')
        if name is not None:
            self.say(f'[dryrun] Resource name "{name}", namespace "{namespace or ""}"')

    def _attach(self, label: str, obj: Obj) -> None:
        self.say(f"[dryrun] Attached {label}:\n{kyaml.dump(printable(obj)).rstrip()}\n")

    def get(self, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        self._action("GET", kind, name, namespace)
        obj = self.objects.get((kind, namespace, name))
        if obj is None and kind == "Node":
            obj = {"apiVersion": "v1", "kind": "Node",
                   "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}, "spec": {}}
        if obj is None:
            self.say("[dryrun] The object does not exist (nothing was created in this dry run)")
            return None
        return copy.deepcopy(obj)

    def create(self, obj: Obj) -> Obj:
        kind, name, ns = meta(obj)
        self._action("CREATE", kind, None, ns)
        self._attach("object", with_type(obj))
        if (kind, ns, name) in self.objects:
            raise APIError(409, "AlreadyExists", f'{resource(kind).plural} "{name}" already exists',
                           action=f"create {describe(kind, name, ns)}")
        self.objects[(kind, ns, name)] = copy.deepcopy(with_type(obj))
        return copy.deepcopy(obj)

    def update(self, obj: Obj) -> Obj:
        kind, name, ns = meta(obj)
        self._action("UPDATE", kind, None, ns)
        self._attach("object", with_type(obj))
        self.objects[(kind, ns, name)] = copy.deepcopy(with_type(obj))
        return copy.deepcopy(obj)

    def patch(self, kind: str, name: str, patch: Obj, namespace: str | None = None, *,
              patch_type: str = "strategic") -> Obj:
        self._action("PATCH", kind, name, namespace)
        self._attach("patch", patch)
        current = self.objects.get((kind, namespace, name)) or {"kind": kind, "metadata": {"name": name}}
        merged = merge_patch_apply(current, patch)
        self.objects[(kind, namespace, name)] = merged
        return copy.deepcopy(merged)

    def delete(self, kind: str, name: str, namespace: str | None = None) -> bool:
        self._action("DELETE", kind, name, namespace)
        return self.objects.pop((kind, namespace, name), None) is not None

    def list(self, kind: str, namespace: str | None = None, *, field_selector: str | None = None,
             label_selector: str | None = None) -> list[Obj]:
        self._action("LIST", kind, None, namespace)
        return [copy.deepcopy(o) for (k, ns, _), o in self.objects.items()
                if k == kind and (namespace is None or ns == namespace)]

    def raw_get(self, path: str) -> tuple[int, str]:
        self.say(f"[dryrun] Would GET {path}")
        return 200, "ok"
