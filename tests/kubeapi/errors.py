"""Kubernetes `Status` failures, shaped as the API server sends them (kind Status, reason, code)."""

from __future__ import annotations

from typing import Any

from tests.kubeapi.resources import ResourceType

Json = dict[str, Any]


class ApiError(Exception):
    """A request the server refuses; `status()` is the body the client receives."""

    def __init__(self, code: int, reason: str, message: str, details: Json | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> Json:
        body: Json = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def _details(rtype: ResourceType, name: str) -> Json:
    details: Json = {"name": name, "kind": rtype.plural}
    if rtype.group:
        details["group"] = rtype.group
    return details


def not_found(rtype: ResourceType, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{rtype.group_resource} "{name}" not found', _details(rtype, name))


def already_exists(rtype: ResourceType, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{rtype.group_resource} "{name}" already exists', _details(rtype, name))


def conflict(rtype: ResourceType, name: str, why: str) -> ApiError:
    message = f'Operation cannot be fulfilled on {rtype.group_resource} "{name}": {why}'
    return ApiError(409, "Conflict", message, _details(rtype, name))


STALE = "the object has been modified; please apply your changes to the latest version and try again"


def invalid(rtype: ResourceType, name: str, causes: list[Json]) -> ApiError:
    """422 with one cause per field, as field validation reports them."""
    summary = "; ".join(f"{c['field']}: {c['message']}" for c in causes) if causes else "invalid"
    qualified = f"{rtype.kind}.{rtype.group}" if rtype.group else rtype.kind
    details = {"name": name, "group": rtype.group, "kind": rtype.kind, "causes": causes}
    return ApiError(422, "Invalid", f'{qualified} "{name}" is invalid: {summary}', details)


def cause(field: str, reason: str, message: str) -> Json:
    return {"reason": reason, "message": message, "field": field}


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def forbidden(message: str) -> ApiError:
    return ApiError(403, "Forbidden", message)


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def unsupported_media(accepted: list[str]) -> ApiError:
    message = f"the body of the request was in an unknown format - accepted media types include: {', '.join(accepted)}"
    return ApiError(415, "UnsupportedMediaType", message)


def method_not_allowed(message: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)
