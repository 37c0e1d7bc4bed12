"""`Status` error objects with the messages and details Kubernetes' apimachinery errors produce."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.apiserver import schema

REASONS = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
    406: "NotAcceptable", 409: "Conflict", 410: "Expired", 413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType", 422: "Invalid", 429: "TooManyRequests", 500: "InternalError",
    503: "ServiceUnavailable", 504: "Timeout",
}


@dataclass
class APIError(Exception):
    """An error answered as a Status object. `headers` are extra response headers."""

    code: int
    reason: str
    message: str
    details: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code} {self.reason}: {self.message}"

    def status(self) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "details": self.details, "code": self.code,
        }
        return schema.shape(obj, schema.STATUS)


def _details(res: schema.Resource | None, name: str, **extra: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"name": name}
    if res is not None:
        d["group"] = res.group
        d["kind"] = res.plural
    d.update(extra)
    return d


def not_found(res: schema.Resource, name: str) -> APIError:
    return APIError(404, "NotFound", f'{res.group_resource} "{name}" not found', _details(res, name))


def already_exists(res: schema.Resource, name: str) -> APIError:
    return APIError(409, "AlreadyExists", f'{res.group_resource} "{name}" already exists', _details(res, name))


def conflict(res: schema.Resource, name: str, why: str) -> APIError:
    return APIError(409, "Conflict", f'Operation cannot be fulfilled on {res.group_resource} "{name}": {why}',
                    _details(res, name))


def stale(res: schema.Resource, name: str) -> APIError:
    return conflict(res, name, "the object has been modified; please apply your changes to the latest "
                               "version and try again")


def forbidden(res: schema.Resource | None, name: str, why: str, *, group: str = "", resource: str = "") -> APIError:
    """NewForbidden: `<resource>[.<group>] ["<name>"] is forbidden: <why>`, or `forbidden: <why>`."""
    gr = res.group_resource if res else (f"{resource}.{group}" if group else resource)
    if not gr:
        message = f"forbidden: {why}"
    elif not name:
        message = f"{gr} is forbidden: {why}"
    else:
        message = f'{gr} "{name}" is forbidden: {why}'
    details = {"name": name, "group": res.group if res else group, "kind": res.plural if res else resource}
    return APIError(403, "Forbidden", message, details)


def unauthorized() -> APIError:
    return APIError(401, "Unauthorized", "Unauthorized")


def bad_request(message: str) -> APIError:
    return APIError(400, "BadRequest", message)


def method_not_allowed() -> APIError:
    return APIError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource",
                    {})


def unsupported_media_type(content_type: str) -> APIError:
    return APIError(415, "UnsupportedMediaType", 'the body of the request was in an unknown format - accepted '
                                                 'media types include: application/json-patch+json, '
                                                 'application/merge-patch+json, '
                                                 'application/strategic-merge-patch+json',
                    {})


@dataclass
class Cause:
    type: str  # FieldValueRequired, FieldValueInvalid, ...
    field: str
    detail: str
    value: Any = None

    def message(self) -> str:
        kinds = {
            "FieldValueRequired": "Required value",
            "FieldValueInvalid": "Invalid value",
            "FieldValueNotSupported": "Unsupported value",
            "FieldValueForbidden": "Forbidden",
            "FieldValueDuplicate": "Duplicate value",
        }
        head = kinds.get(self.type, self.type)
        if self.type in ("FieldValueInvalid", "FieldValueNotSupported", "FieldValueDuplicate"):
            value = _go_value(self.value)
            head = f"{head}: {value}"
        return f"{head}: {self.detail}" if self.detail else head


def _go_value(value: Any) -> str:
    """A value as Go's %#v prints it in field errors: "x", []string{"a", "b"}, 5."""
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "[]string{" + ", ".join(f'"{v}"' for v in value) + "}"
    return str(value)


def invalid(res: schema.Resource, name: str, causes: list[Cause]) -> APIError:
    """NewInvalid: `<Kind>[.<group>] "<name>" is invalid: <field>: <message>` (aggregated as [a, b])."""
    parts = [f"{c.field}: {c.message()}" for c in causes]
    joined = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    details = {
        "name": name, "group": res.group, "kind": res.kind,
        "causes": [{"reason": c.type, "message": c.message(), "field": c.field} for c in causes],
    }
    return APIError(422, "Invalid", f'{res.group_kind} "{name}" is invalid: {joined}', details)


def service_unavailable(message: str = "the server is currently unable to handle the request",
                        retry_after: int | None = None) -> APIError:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    details = {"retryAfterSeconds": retry_after} if retry_after is not None else {}
    return APIError(503, "ServiceUnavailable", message, details, headers)


def generic(code: int, message: str, retry_after: int | None = None) -> APIError:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    details = {"retryAfterSeconds": retry_after} if retry_after is not None else None
    return APIError(code, REASONS.get(code, "Unknown"), message, details, headers)


def expired(message: str) -> APIError:
    return APIError(410, "Expired", message)
