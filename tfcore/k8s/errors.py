"""Errors of the Kubernetes API edge, free of kubernetes_asyncio types."""

from __future__ import annotations

from typing import Any


class KubeError(Exception):
    """Anything that went wrong talking to the API server."""


class ApiError(KubeError):
    """The server answered with an error status (its Status body, when it sent one)."""

    def __init__(self, status: int, reason: str, body: Any = None) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.body = body

    @staticmethod
    def of(status: int, body: Any) -> ApiError:
        reason = body.get("message") or body.get("reason") if isinstance(body, dict) else None
        cls = {404: NotFound, 409: Conflict, 410: Gone}.get(status, ApiError)
        return cls(status, str(reason or "error"), body)


class NotFound(ApiError):
    pass


class Conflict(ApiError):
    pass


class Gone(ApiError):
    """The resourceVersion asked for is too old: list again."""
