"""The in-memory object store: what etcd plus the generic registry do for the real server.

Every write goes through here, from HTTP handlers, controllers and tests alike, so uid,
resourceVersion (one global counter), creationTimestamp, generation, managedFields and watch
events are always consistent. Admission and authorization are the HTTP layer's business; direct
calls skip them unless an `admit` callback is passed.
"""

from __future__ import annotations

import copy
import random
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.apiserver import apierrors, fieldmanager, patch, schema, strategies
from tests.apiserver.clock import Clock
from tests.apiserver.schema import Resource

DEFAULT_MANAGER = "kbootd-tests"
Admit = Callable[[str, Resource, "dict[str, Any] | None", "dict[str, Any] | None"], None]
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' name generator alphabet
_EVENT_LOG = 5000


@dataclass(frozen=True)
class Event:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    resource: Resource
    object: dict[str, Any]


def _key(res: Resource, namespace: str, name: str) -> tuple[str, str, str, str]:
    return (res.group, res.plural, namespace if res.namespaced else "", name)


def _res(ref: str | Resource) -> Resource:
    return ref if isinstance(ref, Resource) else schema.resource_for(ref)


class Store:
    def __init__(self, clock: Clock | None = None, service_cidr: str = "10.96.0.0/12") -> None:
        self.clock = clock or Clock()
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self._objects: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self._rv = 0
        self._events: deque[Event] = deque(maxlen=_EVENT_LOG)
        self.service_ips = strategies.ServiceIPs(service_cidr)

    # --- reads ---------------------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        with self.lock:
            return self._rv

    def get(self, resource: str | Resource, name: str, namespace: str = "") -> dict[str, Any] | None:
        res = _res(resource)
        with self.lock:
            obj = self._objects.get(_key(res, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def list(self, resource: str | Resource, namespace: str | None = None) -> list[dict[str, Any]]:
        """Objects of one resource, in one namespace (None: all), ordered by namespace and name."""
        res = _res(resource)
        with self.lock:
            out = [copy.deepcopy(o) for (g, p, ns, _), o in sorted(self._objects.items())
                   if g == res.group and p == res.plural and (namespace is None or ns == namespace)]
        return out

    def events_after(self, rv: int) -> list[Event] | None:
        """Events newer than rv, or None when rv is older than the log keeps (a watch gets 410)."""
        with self.lock:
            if self._events and len(self._events) == self._events.maxlen and rv < self._events[0].rv - 1:
                return None
            return [e for e in self._events if e.rv > rv]

    def wait_for_change(self, rv: int, timeout: float) -> int:
        """Block until the resourceVersion passes rv or timeout; returns the current one."""
        with self.changed:
            self.changed.wait_for(lambda: self._rv > rv, timeout=timeout)
            return self._rv

    # --- writes --------------------------------------------------------------------------------

    def _commit(self, res: Resource, event: str, obj: dict[str, Any]) -> dict[str, Any]:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        obj = schema.shape(obj, res.schema)
        key = _key(res, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if event == "DELETED":
            self._objects.pop(key, None)
        else:
            self._objects[key] = obj
        self._events.append(Event(self._rv, event, res, copy.deepcopy(obj)))
        self.changed.notify_all()
        return copy.deepcopy(obj)

    def _prepare_new(self, res: Resource, obj: dict[str, Any], namespace: str | None) -> dict[str, Any]:
        obj = copy.deepcopy(obj)
        if not isinstance(obj, dict) or not isinstance(obj.get("metadata", {}), dict):
            raise apierrors.bad_request("the body of the request is not a JSON object")
        obj.setdefault("metadata", {})
        for field, want in (("apiVersion", res.api_version), ("kind", res.kind)):
            if obj.get(field) and obj[field] != want:
                raise apierrors.bad_request(
                    f"the {'API version' if field == 'apiVersion' else 'kind'} in the data ({obj[field]}) does "
                    f"not match the expected {'API version' if field == 'apiVersion' else 'kind'} ({want})")
            obj[field] = want
        meta = obj["metadata"]
        if res.namespaced:
            body_ns = meta.get("namespace") or ""
            if namespace is not None and body_ns and body_ns != namespace:
                raise apierrors.bad_request("the namespace of the provided object does not match the namespace "
                                            "sent on the request")
            meta["namespace"] = namespace or body_ns or "default"
        else:
            meta.pop("namespace", None)
        strategies.default(res, obj)
        return obj

    def create(
        self,
        obj: dict[str, Any],
        *,
        manager: str = DEFAULT_MANAGER,
        namespace: str | None = None,
        user: Any = None,
        admit: Admit | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """POST semantics: AlreadyExists, generateName, uid/resourceVersion/creationTimestamp."""
        res = schema.resource_for_object(obj) if obj.get("kind") else None
        if res is None:
            raise apierrors.bad_request("Object 'Kind' is missing in the request body")
        return self.create_as(res, obj, manager=manager, namespace=namespace, user=user, admit=admit,
                              dry_run=dry_run)

    def create_as(self, res: Resource, obj: dict[str, Any], *, manager: str = DEFAULT_MANAGER,
                  namespace: str | None = None, user: Any = None, admit: Admit | None = None,
                  dry_run: bool = False) -> dict[str, Any]:
        obj = self._prepare_new(res, obj, namespace)
        meta = obj["metadata"]
        if meta.get("resourceVersion"):
            raise apierrors.generic(500, "resourceVersion should not be set on objects to be created")
        for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields",
                  "selfLink", "generation"):
            meta.pop(k, None)
        with self.lock:
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = self._generate_name(res, meta)
            obj = schema.shape(obj, res.schema)
            now = self.clock.timestamp()
            if res.managed_fields:
                obj["metadata"]["managedFields"] = fieldmanager.update(None, obj, res, manager, now)
            if admit:
                admit("CREATE", res, obj, None)
            causes = strategies.validate(res, obj)
            name = obj["metadata"].get("name", "")
            if causes:
                raise apierrors.invalid(res, name, causes)
            if res.namespaced and self.get("namespaces", obj["metadata"]["namespace"]) is None:
                raise apierrors.not_found(schema.resource_for("namespaces"), obj["metadata"]["namespace"])
            causes = strategies.allocation_causes(res, obj, self.service_ips)
            if causes:
                raise apierrors.invalid(res, name, causes)
            if self._objects.get(_key(res, obj["metadata"].get("namespace", ""), name)) is not None:
                raise apierrors.already_exists(res, name)
            if dry_run:
                return schema.shape(obj, res.schema)
            strategies.prepare_for_create(res, obj, user, self.service_ips)
            obj["metadata"]["uid"] = str(uuid.uuid4())
            obj["metadata"]["creationTimestamp"] = now
            return self._commit(res, "ADDED", obj)

    def _generate_name(self, res: Resource, meta: dict[str, Any]) -> str:
        for _ in range(20):
            name = meta["generateName"] + "".join(random.choice(_GENERATE_ALPHABET) for _ in range(5))
            if _key(res, meta.get("namespace", ""), name) not in self._objects:
                return name
        raise apierrors.generic(500, "could not generate a unique name")

    def update(
        self,
        obj: dict[str, Any],
        *,
        manager: str = DEFAULT_MANAGER,
        subresource: str = "",
        name: str | None = None,
        namespace: str | None = None,
        user: Any = None,
        admit: Admit | None = None,
        dry_run: bool = False,
        resource: Resource | None = None,
    ) -> dict[str, Any]:
        """PUT semantics: 404 if missing (unless the type creates on update), 409 on a stale resourceVersion."""
        res = resource or schema.resource_for_object(obj)
        new = self._prepare_new(res, obj, namespace)
        meta = new["metadata"]
        if name is not None and meta.get("name") and meta["name"] != name:
            raise apierrors.bad_request(f"the name of the object ({meta['name']}) does not match the name on "
                                        f"the URL ({name})")
        name = name or meta.get("name", "")
        meta["name"] = name
        ns = meta.get("namespace", "")
        with self.lock:
            old = self._objects.get(_key(res, ns, name))
            if old is None:
                if res.create_on_update and not subresource:
                    meta.pop("resourceVersion", None)
                    return self.create_as(res, new, manager=manager, namespace=ns or None, user=user, admit=admit,
                                          dry_run=dry_run)
                raise apierrors.not_found(res, name)
            wanted_rv = meta.get("resourceVersion")
            if wanted_rv and wanted_rv != old["metadata"]["resourceVersion"]:
                raise apierrors.stale(res, name)
            return self._update_locked(res, old, new, manager=manager, subresource=subresource, admit=admit,
                                       dry_run=dry_run)

    def _update_locked(self, res: Resource, old: dict[str, Any], new: dict[str, Any], *, manager: str,
                       subresource: str, admit: Admit | None, dry_run: bool) -> dict[str, Any]:
        name = old["metadata"]["name"]
        meta = new["metadata"]
        for k in ("uid", "creationTimestamp", "namespace", "deletionTimestamp", "generation", "generateName"):
            if k in old["metadata"]:
                meta[k] = old["metadata"][k]
            else:
                meta.pop(k, None)
        meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        meta["managedFields"] = copy.deepcopy(old["metadata"].get("managedFields"))
        new = strategies.prepare_for_update(res, schema.shape(new, res.schema), old, subresource, self.service_ips)
        new = schema.shape(new, res.schema)
        if res.managed_fields:
            new["metadata"]["managedFields"] = fieldmanager.update(old, new, res, manager, self.clock.timestamp(),
                                                                   subresource)
        if admit:
            admit("UPDATE", res, new, copy.deepcopy(old))
        causes = strategies.validate(res, new, old)
        if causes:
            raise apierrors.invalid(res, name, causes)
        if new == old or dry_run:
            return copy.deepcopy(new)  # a no-op write keeps its resourceVersion, like the real server
        return self._commit(res, "MODIFIED", new)

    def patch(
        self,
        resource: str | Resource,
        name: str,
        body: Any,
        *,
        namespace: str = "",
        content_type: str = patch.STRATEGIC_MERGE_PATCH,
        manager: str = DEFAULT_MANAGER,
        subresource: str = "",
        user: Any = None,
        admit: Admit | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        res = _res(resource)
        with self.lock:
            old = self._objects.get(_key(res, namespace, name))
            if old is None:
                raise apierrors.not_found(res, name)
            try:
                patched = patch.apply(content_type, copy.deepcopy(old), body, res.schema)
            except patch.PatchError as e:
                if e.code == 422:
                    raise apierrors.APIError(422, "Invalid", str(e), {"name": name, "group": res.group,
                                                                      "kind": res.kind}) from None
                raise apierrors.APIError(e.code, apierrors.REASONS.get(e.code, "BadRequest"), str(e)) from None
            if not isinstance(patched, dict):
                raise apierrors.bad_request("the patch produced an object that is not a JSON object")
            patched.setdefault("metadata", {})
            wanted_rv = patched["metadata"].get("resourceVersion")
            if wanted_rv and wanted_rv != old["metadata"]["resourceVersion"]:
                raise apierrors.stale(res, name)
            patched["metadata"]["name"] = name
            if res.namespaced:
                patched["metadata"]["namespace"] = namespace
            new = self._prepare_new(res, patched, namespace if res.namespaced else None)
            return self._update_locked(res, old, new, manager=manager, subresource=subresource, admit=admit,
                                       dry_run=dry_run)

    def mutate(
        self,
        resource: str | Resource,
        name: str,
        fn: Callable[[dict[str, Any]], dict[str, Any] | None],
        *,
        namespace: str = "",
        manager: str = DEFAULT_MANAGER,
        subresource: str = "",
    ) -> dict[str, Any] | None:
        """Read-modify-write under the store lock (what controllers do with retries). None if missing."""
        res = _res(resource)
        with self.lock:
            old = self._objects.get(_key(res, namespace, name))
            if old is None:
                return None
            draft = copy.deepcopy(old)
            draft = fn(draft) or draft
            new = self._prepare_new(res, draft, namespace if res.namespaced else None)
            return self._update_locked(res, old, new, manager=manager, subresource=subresource, admit=None,
                                       dry_run=False)

    def delete(
        self,
        resource: str | Resource,
        name: str,
        namespace: str = "",
        *,
        preconditions: dict[str, str] | None = None,
        admit: Admit | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Removes the object and returns it as it was last stored. 404 if missing."""
        res = _res(resource)
        with self.lock:
            old = self._objects.get(_key(res, namespace, name))
            if old is None:
                raise apierrors.not_found(res, name)
            pre = preconditions or {}
            if pre.get("uid") and pre["uid"] != old["metadata"]["uid"]:
                raise apierrors.conflict(res, name, f"Precondition failed: UID in precondition: {pre['uid']}, UID in "
                                                    f"object meta: {old['metadata']['uid']}")
            if pre.get("resourceVersion") and pre["resourceVersion"] != old["metadata"]["resourceVersion"]:
                raise apierrors.conflict(res, name, "the object has been modified; please apply your changes to "
                                                    "the latest version and try again")
            if admit:
                admit("DELETE", res, None, copy.deepcopy(old))
            if dry_run:
                return copy.deepcopy(old)
            if res.plural == "namespaces":
                # The namespace controller's work, done at once: contents go, then the namespace.
                for (g, p, ns, n) in [k for k in self._objects if k[2] == name and k[1] != "namespaces"]:
                    self._commit(schema.BY_PLURAL[(g, p)], "DELETED", copy.deepcopy(self._objects[(g, p, ns, n)]))
            if res.plural == "services":
                for ip in (old.get("spec") or {}).get("clusterIPs") or []:
                    self.service_ips.release(ip)
            self._commit(res, "DELETED", copy.deepcopy(old))  # the event carries the deletion's version
            return copy.deepcopy(old)

    def seed(self, obj: dict[str, Any], *, manager: str = DEFAULT_MANAGER) -> dict[str, Any]:
        """Create, or update in place if it exists (handy for tests that set the scene)."""
        res = schema.resource_for_object(obj)
        meta = obj.get("metadata") or {}
        with self.lock:
            if self.get(res, meta.get("name", ""), meta.get("namespace", "")) is None:
                return self.create(obj, manager=manager)
            obj = copy.deepcopy(obj)
            obj["metadata"].pop("resourceVersion", None)
            return self.update(obj, manager=manager)
