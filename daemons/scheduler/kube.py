"""The cluster through the Kubernetes API: informers into one Store, the Store into the mirror,
bind through the API.

Inventory (TensorFusionClusters, GPUPools, GPUNodes, Nodes, GPUs, GPUResourceQuotas) is listed
first; pods only once it is in, so a restarted scheduler records every pod's allocation against
known GPUs. The mirror hears each list (first one, relist after 410) whole, as `sync`, so what
was deleted while the watch was down is dropped, and each watch event as `upsert`/`delete`.
Bind writes the allocation annotations with a merge patch, then creates the pods/binding subresource.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, Final

from daemons.scheduler.mirror import INVENTORY_KINDS, ClusterMirror
from daemons.scheduler.service import BindError
from tfcore.k8s import Change, Informers, KubeClient, KubeError, Resource, Store, request_json

INVENTORY: Final = tuple(Resource.of(kind) for kind in INVENTORY_KINDS)
PODS: Final = Resource.of("Pod")


class KubeCluster:
    def __init__(
        self,
        api: KubeClient,
        mirror: ClusterMirror,
        *,
        watch_timeout: int = 300,
        on_synced: Callable[[], None] | None = None,
    ) -> None:
        self.api = api
        self.on_synced = on_synced  # once everything, pods included, is first listed
        self.mirror = mirror
        self.store = Store()
        self.store.subscribe_relists(mirror.sync)
        self.store.subscribe(self._route)
        # Two sets of informers into the one store: pods are started once the inventory is in.
        self.inventory = Informers(api, self.store, INVENTORY, watch_timeout=watch_timeout)
        self.pods = Informers(api, self.store, [PODS], watch_timeout=watch_timeout)

    def _route(self, change: Change) -> None:
        if change.relist:
            return  # the mirror had the whole list through sync
        if change.type == "DELETED":
            self.mirror.delete(change.kind, change.obj)
        else:
            self.mirror.upsert(change.kind, change.obj)

    def not_ready(self) -> str | None:
        waiting = [*self.inventory.unsynced(), *self.pods.unsynced()]
        return f"waiting for the first list of {', '.join(waiting)}" if waiting else None

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self.inventory.run())
            await self.inventory.wait_synced()
            group.create_task(self.pods.run())
            await self.pods.wait_synced()
            if self.on_synced is not None:
                self.on_synced()

    # ClusterWriter
    async def annotate_pod(self, namespace: str, name: str, annotations: Mapping[str, str | None]) -> None:
        patch = {"metadata": {"annotations": dict(annotations)}}
        await self._call("PATCH", f"/api/v1/namespaces/{namespace}/pods/{name}", patch, "application/merge-patch+json")

    async def bind_pod(self, namespace: str, name: str, uid: str, node: str) -> None:
        metadata: dict[str, Any] = {"name": name, "namespace": namespace}
        if uid:
            metadata["uid"] = uid
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": metadata,
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        await self._call("POST", f"/api/v1/namespaces/{namespace}/pods/{name}/binding", body, "application/json")

    async def _call(self, method: str, path: str, body: Any, content_type: str) -> None:
        try:
            await request_json(self.api, method, path, body=body, content_type=content_type, timeout=10)
        except KubeError as exc:
            raise BindError(str(exc)) from None
