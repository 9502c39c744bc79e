"""The cluster through the Kubernetes API: informers into the mirror, bind through the API.

Inventory (TensorFusionClusters, GPUPools, GPUNodes, Nodes, GPUs, GPUResourceQuotas) is listed
first; pods only once it is in, so a restarted scheduler records every pod's allocation against
known GPUs. Bind writes the allocation annotations with a merge patch, then creates the pods/binding subresource.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, Final

from daemons.scheduler.mirror import ClusterMirror
from daemons.scheduler.service import BindError
from tfcore.k8s import Event, Informer, KubeClient, KubeError, Resource, request_json

GROUP: Final = "/apis/tensor-fusion.ai/v1"
INVENTORY: Final = (
    Resource(f"{GROUP}/tensorfusionclusters", "TensorFusionCluster"),
    Resource(f"{GROUP}/gpupools", "GPUPool"),
    Resource(f"{GROUP}/gpunodes", "GPUNode"),
    Resource("/api/v1/nodes", "Node"),
    Resource(f"{GROUP}/gpus", "GPU"),
    Resource(f"{GROUP}/gpuresourcequotas", "GPUResourceQuota"),
)
PODS: Final = Resource("/api/v1/pods", "Pod")


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
        self.informers = [Informer(api, r, self._handle, watch_timeout=watch_timeout) for r in INVENTORY]
        self.pods = Informer(api, PODS, self._handle, watch_timeout=watch_timeout)

    def _handle(self, event: Event) -> None:
        if event.type == "SYNC":
            self.mirror.sync(event.kind, event.objects)
        elif event.type == "DELETED":
            self.mirror.delete(event.kind, event.obj)
        else:
            self.mirror.upsert(event.kind, event.obj)

    def not_ready(self) -> str | None:
        waiting = [i.resource.kind for i in [*self.informers, self.pods] if not i.synced.is_set()]
        return f"waiting for the first list of {', '.join(waiting)}" if waiting else None

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for informer in self.informers:
                group.create_task(informer.run())
            await asyncio.gather(*(i.synced.wait() for i in self.informers))
            group.create_task(self.pods.run())
            await self.pods.synced.wait()
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
