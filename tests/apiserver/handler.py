"""One HTTP/1.1 request, handled in kube-apiserver's order.

fault injection -> authentication (401) -> priority-and-fairness headers -> authorization (403,
with nosniff) -> routing (text 404 for unknown paths) -> the REST verb -> admission -> store.

Wire details follow the recorded fixtures: compact JSON + newline unless pretty-printing is asked
for, /version always indented, `Content-Length` up to 2048 bytes and chunked above (Go's
net/http), `Cache-Control: no-cache, private`, an `Audit-Id` on everything, and no
priority-and-fairness headers on 401s.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
import uuid
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

from tests.apiserver import (
    apierrors,
    discovery,
    jsonwire,
    patch,
    rbac,
    requestinfo,
    schema,
    selectors,
)
from tests.apiserver.auth import Unauthenticated, User
from tests.apiserver.schema import Resource

if TYPE_CHECKING:
    from tests.apiserver.server import TestAPIServer

CHUNK_THRESHOLD = 2048  # Go buffers this much before it gives up on Content-Length
HANDSHAKE_TIMEOUT = 10.0
IDLE_TIMEOUT = 60.0
MAX_WATCH_SECONDS = 600.0
DEFAULT_WATCH_SECONDS = 60.0
TEXT = "text/plain; charset=utf-8"
JSON = "application/json"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kube-apiserver"  # never sent: send_response is overridden (Go sends no Server)

    @property
    def api(self) -> TestAPIServer:
        return self.server.api  # type: ignore[attr-defined]

    # --- connection lifecycle ----------------------------------------------------------------

    def setup(self) -> None:
        self.request.settimeout(HANDSHAKE_TIMEOUT)
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()
        self.request.settimeout(IDLE_TIMEOUT)
        # Small header and body writes must not wait for delayed ACKs (Nagle): ~40 ms per request.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.request, True)  # type: ignore[attr-defined]
        super().setup()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.request, False)  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # the request log on the server object is the record

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    # --- response writing ----------------------------------------------------------------------

    def _headers(self, content_type: str | None, *, nosniff: bool, pf: bool) -> dict[str, str]:
        h = {"Audit-Id": self._audit_id, "Cache-Control": "no-cache, private",
             "Date": formatdate(self.api.clock.time(), usegmt=True)}
        if content_type:
            h["Content-Type"] = content_type
        if nosniff:
            h["X-Content-Type-Options"] = "nosniff"
        if pf and self._user is not None:
            fs, pl = self.api.flow_schema_uids(self._user)
            h["X-Kubernetes-Pf-Flowschema-Uid"] = fs
            h["X-Kubernetes-Pf-Prioritylevel-Uid"] = pl
        return h

    def _send(self, code: int, body: bytes, content_type: str | None = JSON, *, nosniff: bool = False,
              pf: bool = True, extra: dict[str, str] | None = None) -> None:
        headers = self._headers(content_type, nosniff=nosniff, pf=pf)
        headers.update(extra or {})
        self._status = code
        self._record()  # before a byte leaves: a client that has its answer finds its request logged
        chunked = len(body) > CHUNK_THRESHOLD
        if chunked:
            headers["Transfer-Encoding"] = "chunked"
        else:
            headers["Content-Length"] = str(len(body))
        self.send_response_only(code)
        for k in sorted(headers):
            self.send_header(k, headers[k])
        if self.command != "HEAD":
            # Headers and body leave in one write (one TLS record where it fits).
            payload = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if chunked else body
            self._headers_buffer.append(b"\r\n" + payload)
            self.flush_headers()
        else:
            self.end_headers()

    def _send_json(self, code: int, obj: Any, **kw: Any) -> None:
        self._send(code, jsonwire.encode(obj, pretty=self._pretty), JSON, **kw)

    def _send_error(self, err: apierrors.APIError, *, nosniff: bool = False) -> None:
        self._send_json(err.code, err.status(), nosniff=nosniff, pf=err.code != 401, extra=err.headers)

    def _not_found_text(self) -> None:
        self._send(404, b"404 page not found\n", TEXT, nosniff=True)

    # --- the request -------------------------------------------------------------------------

    def _handle(self) -> None:
        # Like the apiserver, keep a caller-supplied Audit-ID, otherwise make one.
        self._audit_id = self.headers.get("Audit-ID") or str(uuid.uuid4())
        self._user: User | None = None
        self._status = 0
        self._recorded = False
        self._info: requestinfo.RequestInfo | None = None
        self._started = time.monotonic()
        url = urlsplit(self.path)
        path = unquote(url.path) or "/"
        self._path, self._raw_query = path, url.query
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        self._query = query
        self._pretty = jsonwire.wants_pretty(self.headers.get("User-Agent", ""), query.get("pretty"))
        body = self._read_body()
        info: requestinfo.RequestInfo | None = None
        try:
            fault = self.api.faults.take(self.command, path)
            if fault is not None and self._apply_fault(fault):
                return
            try:
                cert = self.request.getpeercert(binary_form=True) if isinstance(self.request, ssl.SSLSocket) else None
                self._user = self.api.authenticator.authenticate(cert, self.headers.get("Authorization"))
            except Unauthenticated:
                return self._send_error(apierrors.unauthorized())
            info = self._info = requestinfo.parse(self.command, path, query)
            attrs = rbac.Attributes(self._user, info.verb, info.resource_request, path, info.api_group,
                                    info.api_version, info.resource, info.subresource, info.name, info.namespace,
                                    info.field_selector)
            allowed, reason = self.api.authorizer.authorize(attrs)
            if not allowed:
                why = rbac.forbidden_message(attrs) + (f": {reason}" if reason else "")
                err = apierrors.forbidden(None, info.name if info.resource_request else "", why,
                                          group=info.api_group, resource=info.resource)
                return self._send_error(err, nosniff=True)
            if not info.resource_request:
                return self._non_resource(path, query)
            self._resource(info, query, body)
        except apierrors.APIError as e:
            self._send_error(e)
        except (TimeoutError, BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True
        except Exception as e:  # an internal bug must still answer like the apiserver would
            self.api.internal_errors.append(repr(e))
            if not self._status:
                self._send_error(apierrors.generic(500, f"Internal error occurred: {e!r}"))
            else:
                self.close_connection = True
        finally:
            self._record()  # requests that ended without an answer (a broken connection)

    def _record(self) -> None:
        """Log the request once, with the status about to be sent (0: no answer)."""
        if self._recorded:
            return
        self._recorded = True
        self.api.record(self.command, self._path, self._raw_query, self._user, self._status,
                        time.monotonic() - self._started, self._info.verb if self._info else "")

    def _drop(self) -> None:
        """Close the connection without an answer (logged first, with status 0)."""
        self._record()
        self.close_connection = True
        try:
            self.request.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            return self.rfile.read(length)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return b""

    def _apply_fault(self, fault: Any) -> bool:
        """True if the fault answered (or dropped) the request."""
        if fault.delay:
            time.sleep(fault.delay)
        if fault.drop:
            self._drop()
            return True
        if fault.status:
            err = apierrors.generic(fault.status, fault.message or "the server is currently unable to handle the "
                                                                    "request", fault.retry_after)
            self._send_error(err)
            return True
        return False

    # --- non-resource endpoints ----------------------------------------------------------------

    def _non_resource(self, path: str, query: dict[str, str]) -> None:
        if self.command not in ("GET", "HEAD"):
            return self._not_found_text()
        parts = [p for p in path.split("/") if p]
        if path in ("/version", "/version/"):
            # Always indented, no trailing newline (fixture 01).
            return self._send(200, jsonwire.encode(self.api.version, pretty=True), JSON)
        if parts and parts[0] in ("healthz", "livez", "readyz"):
            check = "/".join(parts[1:]) or None
            code, text = self.api.health.render(parts[0], check, "verbose" in query,
                                                [e for e in query.get("exclude", "").split(",") if e])
            return self._send(code, text, TEXT, nosniff=True)
        doc: dict[str, Any] | None = None
        if parts == ["api"]:
            doc = discovery.api_versions(self.api.server_address)
        elif parts == ["apis"]:
            doc = discovery.api_group_list()
        elif len(parts) == 2 and parts[0] == "api":
            doc = discovery.resource_list("", parts[1])
        elif len(parts) == 2 and parts[0] == "apis":
            doc = discovery.api_group(parts[1])
        elif len(parts) == 3 and parts[0] == "apis":
            doc = discovery.resource_list(parts[1], parts[2]) if parts[1] else None
        if doc is None:
            return self._not_found_text()
        self._send_json(200, doc)

    # --- REST ----------------------------------------------------------------------------------

    def _resource(self, info: requestinfo.RequestInfo, query: dict[str, str], body: bytes) -> None:
        res = schema.BY_PLURAL.get((info.api_group, info.resource))
        if (res is None or res.version != info.api_version or (info.api_prefix == "api") != (res.group == "")
                or len(info.parts) > 3 or (info.subresource and info.subresource not in res.subresources)):
            return self._not_found_text()
        name = "" if info.name_from_selector else info.name
        if not res.namespaced and info.namespace and res.plural != "namespaces":
            return self._not_found_text()
        ns = info.namespace if res.namespaced else ""
        manager = query.get("fieldManager") or self.headers.get("User-Agent", "").split("/")[0]
        dry_run = query.get("dryRun") == "All"
        admit = self.api.admission.for_user(self._user, info.subresource) if self._user else None
        store = self.api.store
        verb = info.verb
        if verb in ("list", "watch") or (name == "" and self.command in ("GET", "HEAD")):
            return self._list(res, ns, query, watch=verb == "watch")
        if not name:
            if self.command == "POST" and (ns or not res.namespaced):
                obj = self._decode(body)
                created = store.create_as(res, obj, manager=manager, namespace=ns or None, user=self._user,
                                          admit=admit, dry_run=dry_run)
                return self._answer_write(201, created, dry_run)
            if self.command == "DELETE" and (ns or not res.namespaced):
                return self._delete_collection(res, ns, query, admit, dry_run)
            raise apierrors.method_not_allowed()
        if self.command in ("GET", "HEAD"):
            if info.subresource not in ("", "status"):
                raise apierrors.method_not_allowed()
            obj = store.get(res, name, ns)
            if obj is None:
                raise apierrors.not_found(res, name)
            return self._send_json(200, obj)
        if self.command == "PUT":
            obj = self._decode(body)
            existed = store.get(res, name, ns) is not None
            out = store.update(obj, resource=res, name=name, namespace=ns if res.namespaced else None,
                               subresource=info.subresource, manager=manager, user=self._user, admit=admit,
                               dry_run=dry_run)
            return self._answer_write(200 if existed else 201, out, dry_run)
        if self.command == "PATCH":
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if ctype not in patch.SUPPORTED:
                raise apierrors.unsupported_media_type(ctype)
            try:
                doc = json.loads(body or b"null")
            except ValueError as e:
                raise apierrors.bad_request(f"error decoding patch: {e}") from None
            out = store.patch(res, name, doc, namespace=ns, content_type=ctype, manager=manager,
                              subresource=info.subresource, user=self._user, admit=admit, dry_run=dry_run)
            return self._answer_write(200, out, dry_run)
        if self.command == "DELETE" and not info.subresource:
            return self._delete(res, name, ns, body, admit, dry_run)
        raise apierrors.method_not_allowed()

    def _answer_write(self, code: int, obj: Any, dry_run: bool) -> None:
        """Answer a write the store has applied, unless an after-write fault loses the answer."""
        fault = None if dry_run else self.api.faults.applied_write(self.command, self._path)
        if fault is None:
            return self._send_json(code, obj)
        fault.fired.set()  # before the client can notice anything: it may turn this into its crash
        if not fault.status:
            return self._drop()
        self._send_error(apierrors.generic(fault.status, fault.message or "the server is currently unable to "
                                                                          "handle the request"))

    def _decode(self, body: bytes) -> dict[str, Any]:
        ctype = (self.headers.get("Content-Type") or JSON).split(";")[0].strip().lower()
        try:
            if ctype in ("application/yaml", "application/x-yaml", "text/yaml"):
                obj = yaml.safe_load(body)
            elif ctype == JSON:
                obj = json.loads(body or b"null")
            else:
                raise apierrors.APIError(415, "UnsupportedMediaType",
                                         'the body of the request was in an unknown format - accepted media types '
                                         'include: application/json, application/yaml', {})
        except (ValueError, yaml.YAMLError) as e:
            raise apierrors.bad_request(f"couldn't get version/kind; json parse error: {e}") from None
        if not isinstance(obj, dict):
            raise apierrors.bad_request("Object 'Kind' is missing in the request body")
        return obj

    def _selectors(self, res: Resource, query: dict[str, str]) -> tuple[list, list]:
        try:
            labels = selectors.parse_labels(query.get("labelSelector"))
            fields = selectors.parse_fields(query.get("fieldSelector"))
            selectors.check_fields(res, fields)
        except selectors.SelectorError as e:
            raise apierrors.bad_request(str(e)) from None
        return labels, fields

    def _list(self, res: Resource, ns: str, query: dict[str, str], *, watch: bool) -> None:
        labels, fields = self._selectors(res, query)
        if watch:
            return self._watch(res, ns, labels, fields, query)
        with self.api.store.lock:
            items = self.api.store.list(res, ns or None)
            rv = self.api.store.resource_version
        items = [i for i in items if selectors.matches(res, i, labels, fields)]
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        start = query.get("continue")
        if start:
            items = [i for i in items if (i["metadata"].get("namespace", ""), i["metadata"]["name"]) > tuple(
                json.loads(_b64d(start)))]
        limit = int(query.get("limit") or 0)
        if limit and len(items) > limit:
            last = items[limit - 1]["metadata"]
            meta["continue"] = _b64e(json.dumps([last.get("namespace", ""), last["name"]]))
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        for i in items:  # list items carry no TypeMeta (fixture 31)
            i.pop("kind", None)
            i.pop("apiVersion", None)
        self._send_json(200, {"kind": res.list_kind, "apiVersion": res.api_version, "metadata": meta, "items": items})

    def _watch(self, res: Resource, ns: str, labels: list, fields: list, query: dict[str, str]) -> None:
        store = self.api.store
        timeout = min(float(query.get("timeoutSeconds") or DEFAULT_WATCH_SECONDS), MAX_WATCH_SECONDS)
        deadline = time.monotonic() + timeout
        headers = self._headers(JSON, nosniff=False, pf=True)
        headers["Transfer-Encoding"] = "chunked"
        self._status = 200
        self._record()
        self.send_response_only(200)
        for k in sorted(headers):
            self.send_header(k, headers[k])
        self.end_headers()

        def send(kind: str, obj: dict[str, Any]) -> None:
            line = jsonwire.encode({"type": kind, "object": obj})
            self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
            self.wfile.flush()

        def visible(obj: dict[str, Any]) -> bool:
            in_ns = not ns or obj["metadata"].get("namespace") == ns
            return in_ns and selectors.matches(res, obj, labels, fields)

        start = query.get("resourceVersion") or "0"
        with store.lock:
            if start == "0":
                rv = store.resource_version
                initial = [o for o in store.list(res, ns or None) if visible(o)]
            else:
                rv, initial = int(start), []
        for obj in initial:
            send("ADDED", obj)
        while not self.api.stopping and time.monotonic() < deadline:
            events = store.events_after(rv)
            if events is None:
                send("ERROR", apierrors.expired(f"too old resource version: {rv} ({store.resource_version})").status())
                break
            for e in events:
                rv = e.rv
                if e.resource is res and visible(e.object):
                    send(e.type, e.object)
            store.wait_for_change(rv, timeout=max(0.0, min(0.2, deadline - time.monotonic())))
        self.wfile.write(b"0\r\n\r\n")  # a properly ended stream: the connection stays reusable

    def _delete_options(self, body: bytes) -> dict[str, Any]:
        if not body.strip():
            return {}
        try:
            opts = json.loads(body)
        except ValueError as e:
            raise apierrors.bad_request(f"error decoding DeleteOptions: {e}") from None
        return opts if isinstance(opts, dict) else {}

    def _delete(self, res: Resource, name: str, ns: str, body: bytes, admit: Any, dry_run: bool) -> None:
        opts = self._delete_options(body)
        dry_run = dry_run or opts.get("dryRun") == ["All"]
        old = self.api.store.delete(res, name, ns, preconditions=opts.get("preconditions"), admit=admit,
                                    dry_run=dry_run)
        if res.plural == "namespaces":  # the namespace is returned in its Terminating state
            old["metadata"]["deletionTimestamp"] = self.api.clock.timestamp()
            old["status"] = {"phase": "Terminating"}
            return self._answer_write(200, schema.shape(old, res.schema), dry_run)
        if res.returns_deleted:
            return self._answer_write(200, old, dry_run)
        details = {"name": name, "group": res.group, "kind": res.plural, "uid": old["metadata"]["uid"]}
        status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}
        self._answer_write(200, schema.shape(status, schema.STATUS), dry_run)

    def _delete_collection(self, res: Resource, ns: str, query: dict[str, str], admit: Any, dry_run: bool) -> None:
        labels, fields = self._selectors(res, query)
        deleted = []
        for obj in self.api.store.list(res, ns or None):
            if selectors.matches(res, obj, labels, fields):
                try:
                    deleted.append(self.api.store.delete(res, obj["metadata"]["name"],
                                                         obj["metadata"].get("namespace", ""), admit=admit,
                                                         dry_run=dry_run))
                except apierrors.APIError as e:
                    if e.code != 404:
                        raise
        for i in deleted:
            i.pop("kind", None)
            i.pop("apiVersion", None)
        self._answer_write(200, {"kind": res.list_kind, "apiVersion": res.api_version,
                                 "metadata": {"resourceVersion": str(self.api.store.resource_version)},
                                 "items": deleted}, dry_run)


def _b64e(text: str) -> str:
    import base64

    return base64.urlsafe_b64encode(text.encode()).decode()


def _b64d(text: str) -> str:
    import base64

    try:
        return base64.urlsafe_b64decode(text.encode()).decode()
    except ValueError:
        raise apierrors.bad_request("continue key is not valid") from None
