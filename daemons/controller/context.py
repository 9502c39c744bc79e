"""What every reconciler is handed: the store to read, fenced writes, events, the queue, settings.

Writes check `is_leader()` first (a fence against a stalled leader) and put the API's answer
in the store at once, so the next reconcile does not act on the state before the write.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple

from daemons.controller.queue import WorkQueue
from tfcore.k8s import ApiError, KubeClient, NotFound, Store, key_of, request_json, resource_for
from tfcore.k8s.events import EventRecorder
from tfcore.model.codec import decode
from tfcore.model.errors import ValidationError
from tfcore.model.pool import GPUPool
from tfcore.operator import canary, fleet
from tfcore.operator.objects import Obj, meta, name_of

log = logging.getLogger(__name__)

MERGE: Final = "application/merge-patch+json"
Raw = dict[str, Any]


class Key(NamedTuple):
    """One unit of work: a reconciler's name and the object it looks at ("name" or "namespace/name")."""

    reconciler: str
    name: str


class NotLeader(Exception):
    """Leadership ended: drop the work, the next leader redoes it."""


@dataclass(frozen=True, slots=True)
class Settings:
    taint_used_nodes: bool = False  # NVIDIA coexistence (progressive migration)
    canary_settle: float = canary.SETTLE_SECONDS  # seconds a ReplicaSet is left alone before rebalancing


class Writer:
    """The API writes of the leader, fenced and fed back into the store."""

    def __init__(self, api: KubeClient, store: Store, is_leader: Callable[[], bool]) -> None:
        self.api = api
        self.store = store
        self.is_leader = is_leader
        self.count = 0

    async def call(self, method: str, path: str, body: Any = None, *, content_type: str = "application/json") -> Any:
        if not self.is_leader():
            raise NotLeader
        self.count += 1
        result = await request_json(self.api, method, path, body=body, content_type=content_type)
        if isinstance(result, dict) and result.get("metadata"):
            self.store.remember(result)
        return result

    async def create(self, kind: str, body: Raw) -> Raw | None:
        """Create; None when it exists already (another write got there first: not an error)."""
        path = resource_for(kind).collection(meta(body).get("namespace"))
        try:
            created: Raw = await self.call("POST", path, body)
        except ApiError as exc:
            if exc.status == 409:
                return None
            raise
        return created

    async def patch(self, kind: str, obj: Obj, patch: Mapping[str, Any], *, status: bool = False) -> None:
        path = resource_for(kind).item(
            name_of(obj), meta(obj).get("namespace"), subresource="status" if status else None
        )
        await self.call("PATCH", path, patch, content_type=MERGE)

    async def delete(self, kind: str, obj: Obj, *, body: Any = None) -> bool:
        """Delete; False when it was gone already."""
        try:
            await self.call("DELETE", resource_for(kind).item(name_of(obj), meta(obj).get("namespace")), body)
        except NotFound:
            return False
        return True

    async def status(self, kind: str, obj: Obj, desired: Mapping[str, Any]) -> bool:
        """Write `desired` as the status unless it is what the object has; True when written."""
        if not fleet.changed(obj.get("status"), desired):
            return False
        await self.patch(kind, obj, {"status": desired}, status=True)
        return True

    async def finalizers(self, kind: str, obj: Obj, finalizers: list[str]) -> None:
        """Set the finalizers, guarded by resourceVersion (409 if someone changed the object)."""
        patch = {"metadata": {"finalizers": finalizers, "resourceVersion": meta(obj).get("resourceVersion")}}
        await self.patch(kind, obj, patch)


class Context:
    """Everything a reconciler may touch; one per controller."""

    def __init__(
        self,
        api: KubeClient,
        store: Store,
        *,
        writer: Writer,
        recorder: EventRecorder,
        queue: WorkQueue[Key],
        settings: Settings,
    ) -> None:
        self.api = api
        self.store = store
        self.write = writer
        self.recorder = recorder
        self.queue = queue
        self.settings = settings
        self._decoded_pools: dict[tuple[str, str], GPUPool] = {}

    async def read(self, kind: str, name: str, namespace: str | None = None) -> Raw:
        """GET an unwatched object (kind and apiVersion filled in); NotFound when it is not there."""
        api = resource_for(kind)
        found: Raw = await request_json(self.api, "GET", api.item(name, namespace))
        found.setdefault("kind", kind)
        found.setdefault("apiVersion", api.api_version)
        return found

    def pools(self) -> list[GPUPool]:
        """The stored pools decoded (memoized per resourceVersion: node reconciles read them all)."""
        decoded = []
        stored = self.store.of_kind("GPUPool")
        for obj in stored.values():
            version = (key_of(obj), str(meta(obj).get("resourceVersion")))
            pool = self._decoded_pools.get(version)
            if pool is None:
                try:
                    pool = decode(obj, GPUPool, where=f"GPUPool/{name_of(obj)}")
                except ValidationError as exc:
                    log.warning("ignoring an invalid pool: %s", exc)
                    continue
                if len(self._decoded_pools) > 4 * len(stored) + 16:
                    self._decoded_pools.clear()
                self._decoded_pools[version] = pool
            decoded.append(pool)
        return decoded


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
