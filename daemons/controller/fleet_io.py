"""The fleet reconcilers' narrow view of the API server: list what they plan over, fenced writes.

Every write first calls `fence()`, which raises when this replica no longer leads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

from tfcore.fleet.view import Snapshot
from tfcore.k8s import ApiError, KubeClient, NotFound, request_json

log = logging.getLogger(__name__)

MERGE: Final = "application/merge-patch+json"
GROUP: Final = "/apis/tensor-fusion.ai/v1"
LISTS: Final = {
    "GPUPool": f"{GROUP}/gpupools",
    "GPUNode": f"{GROUP}/gpunodes",
    "GPUNodeClaim": f"{GROUP}/gpunodeclaims",
    "GPUNodeClass": f"{GROUP}/gpunodeclasses",
    "TensorFusionCluster": f"{GROUP}/tensorfusionclusters",
    "Node": "/api/v1/nodes",
    "Pod": "/api/v1/pods",
    "DaemonSet": "/apis/apps/v1/daemonsets",
    "Deployment": "/apis/apps/v1/deployments",
    "ControllerRevision": "/apis/apps/v1/controllerrevisions",
    "NodeClaim": "/apis/karpenter.sh/v1/nodeclaims",
}
OPTIONAL: Final = frozenset({"NodeClaim"})  # Karpenter's CRD may not be installed
SELECTORS: Final = {
    "DaemonSet": {"labelSelector": "app.kubernetes.io/component=hypervisor"},
    "ControllerRevision": {"labelSelector": "app.kubernetes.io/component=hypervisor"},
    "Deployment": {"labelSelector": "app.kubernetes.io/component=webhook"},
}


class FleetApi:
    def __init__(self, api: KubeClient, fence: Callable[[], None]) -> None:
        self.api = api
        self.fence = fence

    async def snapshot(self, kinds: tuple[str, ...]) -> Snapshot:
        objects: list[dict[str, Any]] = []
        for kind in kinds:
            query = SELECTORS.get(kind)
            try:
                listed = await request_json(self.api, "GET", LISTS[kind], query=query)
            except NotFound:
                if kind in OPTIONAL:
                    continue
                raise
            for item in listed.get("items") or ():
                item.setdefault("kind", kind)
                objects.append(item)
        return Snapshot.of(objects)

    async def call(self, method: str, path: str, body: Any = None, *, content_type: str = "application/json") -> Any:
        self.fence()
        return await request_json(self.api, method, path, body=body, content_type=content_type)

    async def create(self, kind: str, body: dict[str, Any]) -> bool:
        """Create; False when the name is taken (another writer got there first)."""
        try:
            await self.call("POST", LISTS[kind], body)
        except ApiError as exc:
            if exc.status == 409:
                return False
            raise
        return True

    async def patch(self, kind: str, name: str, patch: dict[str, Any], *, status: bool = False) -> None:
        await self.call("PATCH", f"{LISTS[kind]}/{name}" + ("/status" if status else ""), patch, content_type=MERGE)

    async def delete(self, path: str, *, uid: str | None = None) -> bool:
        """Delete (only the object with `uid` when given); False when it is gone already."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": uid}} if uid else None
        try:
            await self.call("DELETE", path, body)
        except NotFound:
            return False
        except ApiError as exc:
            if exc.status == 409:  # the uid precondition failed: a newer object took the name
                return False
            raise
        return True


def pod_path(pod: dict[str, Any]) -> str:
    meta = pod["metadata"]
    return f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"


async def evict(api: FleetApi, pod: dict[str, Any]) -> bool:
    """Evict through the Eviction API; False when a PodDisruptionBudget says not now (429)."""
    meta = pod["metadata"]
    body = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
    }
    try:
        await api.call("POST", pod_path(pod) + "/eviction", body)
    except NotFound:
        return True
    except ApiError as exc:
        if exc.status == 429:
            return False
        raise
    return True
