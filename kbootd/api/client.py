"""The API verbs on plain-dict objects, and their retries (kbootd.retry at kubeadm's fixed interval)."""

from __future__ import annotations

import contextvars
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from kbootd import redact
from kbootd.api.connection import APITransport
from kbootd.api.errors import APIError, is_transient
from kbootd.api.resources import Obj, describe, meta, resource, with_type
from kbootd.errors import WaitTimeout
from kbootd.retry import Backoff, Timing, retry

DEFAULT_TIMEOUT = 60.0  # kubeadm's timeouts.kubernetesAPICall
RETRY_INTERVAL = 0.5  # kubeadm's APICallRetryInterval

# The time.monotonic() by which the innermost real-time retry loop gives up: requests made
# inside it end by then too, so one slow request cannot carry the loop past its deadline.
_UNTIL: contextvars.ContextVar[float | None] = contextvars.ContextVar("kbootd_api_until", default=None)


def with_retries(fn: Callable[[], Any], *, what: str, timeout: float, interval: float = RETRY_INTERVAL,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 on_retry: Callable[[int, str, float], None] | None = None,
                 retryable: Callable[[BaseException], bool] = is_transient) -> Any:
    """Call fn until it succeeds, retrying what `retryable` accepts every `interval` until the deadline."""

    outer = _UNTIL.get()
    until = outer
    if clock is time.monotonic:  # a fake clock's deadline means nothing to real sockets
        until = min(time.monotonic() + timeout, outer if outer is not None else float("inf"))
    token = _UNTIL.set(until)
    try:
        return retry(fn, what=what, deadline=timeout, backoff=Backoff.constant(interval),
                     timing=Timing(clock=clock, sleep=sleep), on_retry=on_retry, retryable=retryable)
    except WaitTimeout as e:
        cause = e.__cause__
        raise WaitTimeout(f"{what}: still failing after {timeout:g}s: {cause}", hint=e.hint) from cause
    finally:
        _UNTIL.reset(token)


class Client:
    """API verbs on plain-dict objects. `get` returns None for 404; other errors raise APIError."""

    dry_run = False

    def __init__(self, transport: Any, *, timeout: float = DEFAULT_TIMEOUT, interval: float = RETRY_INTERVAL,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
        self.transport = transport
        self.timeout = timeout
        self.interval = interval
        self.sleep = sleep
        self.clock = clock

    # the verbs
    def get(self, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        try:
            return self._call("GET", resource(kind).path(namespace, name), action=f"get {describe(kind, name, namespace)}")
        except APIError as e:
            if e.not_found and e.details.get("kind") != "namespaces":
                return None
            raise

    def create(self, obj: Obj) -> Obj:
        kind, name, ns = meta(obj)
        return self._call("POST", resource(kind).path(ns), with_type(obj), action=f"create {describe(kind, name, ns)}")

    def update(self, obj: Obj) -> Obj:
        kind, name, ns = meta(obj)
        return self._call("PUT", resource(kind).path(ns, name), with_type(obj), action=f"update {describe(kind, name, ns)}")

    def patch(self, kind: str, name: str, patch: Obj, namespace: str | None = None, *,
              patch_type: str = "strategic") -> Obj:
        ct = {"strategic": "application/strategic-merge-patch+json",
              "merge": "application/merge-patch+json"}[patch_type]
        return self._call("PATCH", resource(kind).path(namespace, name), patch, ct,
                          action=f"patch {describe(kind, name, namespace)}")

    def delete(self, kind: str, name: str, namespace: str | None = None) -> bool:
        try:
            self._call("DELETE", resource(kind).path(namespace, name), action=f"delete {describe(kind, name, namespace)}")
        except APIError as e:
            if e.not_found:
                return False
            raise
        return True

    def list(self, kind: str, namespace: str | None = None, *, field_selector: str | None = None,
             label_selector: str | None = None) -> list[Obj]:
        r = resource(kind)
        path = r.path(namespace) if r.namespaced else r.path()
        query = {k: v for k, v in (("fieldSelector", field_selector), ("labelSelector", label_selector)) if v}
        if query:
            path += "?" + urlencode(query)
        out = self._call("GET", path, action=f"list {r.plural}" + (f" in {namespace}" if namespace else ""))
        return list(out.get("items") or [])

    def raw_get(self, path: str) -> tuple[int, str]:
        """A non-resource GET (/healthz, /livez): status and body text."""
        status, data = self._request("GET", path)
        return status, data.decode("utf-8", errors="replace")

    def close(self) -> None:
        close = getattr(self.transport, "close", None)
        if close:
            close()

    # retries with this client's deadline
    def retry(self, fn: Callable[[], Any], what: str, *, timeout: float | None = None,
              on_retry: Callable[[int, str, float], None] | None = None,
              retryable: Callable[[BaseException], bool] = is_transient) -> Any:
        return with_retries(fn, what=what, timeout=self.timeout if timeout is None else timeout,
                            interval=self.interval, sleep=self.sleep, clock=self.clock, on_retry=on_retry,
                            retryable=retryable)

    def _request(self, method: str, path: str, body: Any = None,
                 content_type: str = "application/json") -> tuple[int, bytes]:
        until = _UNTIL.get()
        if until is not None and isinstance(self.transport, APITransport):
            return self.transport.request(method, path, body, content_type, until=until)
        return self.transport.request(method, path, body, content_type)

    def _call(self, method: str, path: str, body: Any = None, content_type: str = "application/json", *,
              action: str) -> Obj:
        status, data = self._request(method, path, body, content_type)
        try:
            doc = json.loads(data) if data.strip() else {}
        except (ValueError, RecursionError):
            doc = {"message": data.decode("utf-8", errors="replace").strip()[:300]}
        if 200 <= status < 300:
            return doc if isinstance(doc, dict) else {}
        if not isinstance(doc, dict):
            doc = {}
        raise APIError(status, str(doc.get("reason") or ""), redact.redact(str(doc.get("message") or "")),
                       action=action, details=doc.get("details") if isinstance(doc.get("details"), dict) else {})

