"""List+watch of one resource into a handler, surviving disconnects and expired resourceVersions.

The first list delivers a SYNC event with every object (the handler replaces what it knew);
then watch events arrive in order. A dropped, cut or timed-out watch resumes from the last
resourceVersion seen (bookmarks included); a 410 Gone (resourceVersion too old) lists again;
other failures wait with capped exponential backoff and retry.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp

from tfcore.k8s.client import KubeClient, raw_request, request_json
from tfcore.k8s.errors import ApiError, Gone, KubeError
from tfcore.k8s.resources import ApiResource, resource_for

log = logging.getLogger(__name__)

EventType = Literal["SYNC", "ADDED", "MODIFIED", "DELETED"]


@dataclass(frozen=True, slots=True)
class Resource:
    """A collection to list and watch, e.g. Resource("/api/v1/pods", "Pod")."""

    path: str
    kind: str
    label_selector: str | None = None
    field_selector: str | None = None

    @classmethod
    def of(
        cls, where: ApiResource | str, *, label_selector: str | None = None, field_selector: str | None = None
    ) -> Resource:
        """All objects of an API resource (or of a registered kind, by name) across namespaces."""
        api = resource_for(where) if isinstance(where, str) else where
        return cls(api.collection(), api.kind, label_selector, field_selector)


@dataclass(frozen=True, slots=True)
class Event:
    type: EventType
    kind: str
    obj: dict[str, Any] = field(default_factory=dict)
    objects: tuple[dict[str, Any], ...] = ()  # SYNC only: the whole collection


Handler = Callable[[Event], None]


class Informer:
    def __init__(
        self,
        api: KubeClient,
        resource: Resource,
        handler: Handler,
        *,
        watch_timeout: int = 300,
        page_size: int = 500,
        backoff: tuple[float, float] = (0.5, 30.0),
    ) -> None:
        self.api = api
        self.resource = resource
        self.handler = handler
        self.watch_timeout = watch_timeout
        self.page_size = page_size
        self.backoff = backoff
        self.resource_version: str | None = None
        self.synced = asyncio.Event()
        self.relists = 0
        self.failures = 0

    async def run(self) -> None:
        delay = self.backoff[0]
        while True:
            try:
                if self.resource_version is None:
                    await self._list()
                await self._watch()
                delay = self.backoff[0]
            except Gone:
                log.info("%s: resourceVersion %s expired, listing again", self.resource.kind, self.resource_version)
                self.resource_version = None
            except (TimeoutError, KubeError, ValueError) as exc:
                self.failures += 1
                log.warning("%s: %s; retrying in %.1fs", self.resource.kind, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff[1])

    def _selectors(self) -> dict[str, str]:
        query: dict[str, str] = {}
        if self.resource.label_selector:
            query["labelSelector"] = self.resource.label_selector
        if self.resource.field_selector:
            query["fieldSelector"] = self.resource.field_selector
        return query

    async def _list(self) -> None:
        objects: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            query = self._selectors() | {"limit": str(self.page_size)}
            if token:
                query["continue"] = token
            page = await request_json(self.api, "GET", self.resource.path, query=query)
            objects.extend(page.get("items") or [])
            metadata = page.get("metadata") or {}
            token = metadata.get("continue")
            if not token:
                break
        for obj in objects:  # typed lists omit each item's kind
            obj.setdefault("kind", self.resource.kind)
        self.resource_version = str(metadata.get("resourceVersion") or "") or None
        self.relists += 1
        self.handler(Event("SYNC", self.resource.kind, objects=tuple(objects)))
        self.synced.set()

    async def _watch(self) -> None:
        query = self._selectors() | {
            "watch": "true",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(self.watch_timeout),
        }
        if self.resource_version:
            query["resourceVersion"] = self.resource_version
        response = await raw_request(self.api, "GET", self.resource.path, query=query, timeout=self.watch_timeout + 30)
        async with response:
            if response.status != 200:
                body = await response.read()
                raise ApiError.of(response.status, _json_or_none(body))
            try:
                while line := await response.content.readline():
                    if line.strip():
                        self._on_line(line)
            except (aiohttp.ClientError, OSError) as exc:  # cut mid-stream: resume from the last version
                raise KubeError(f"watch {self.resource.path}: {exc or type(exc).__name__}") from None

    def _on_line(self, line: bytes) -> None:
        event = json.loads(line)
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            status = int(obj.get("code") or 0)
            if status == 410:
                raise Gone(410, str(obj.get("message") or "Expired"), obj)
            raise ApiError.of(status or 500, obj)
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if version:
            self.resource_version = str(version)
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            obj.setdefault("kind", self.resource.kind)
            self.handler(Event(kind, self.resource.kind, obj))


def _json_or_none(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None
