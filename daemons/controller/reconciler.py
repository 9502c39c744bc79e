"""The controller's I/O edge: informer caches, a work queue, and writes of what tfcore.operator plans.

Informers run on every replica (a follower's caches are warm when it takes over); only the
leader drains the queue, and every write checks `is_leader()` first (a fence against a stalled
leader). State lives in the cluster only: a restarted or new leader lists everything, queues
every object and converges; all writes are idempotent (create answers 409 when the object is
there, patches that change nothing are not sent).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from daemons.controller.queue import WorkQueue
from tfcore.k8s import ApiError, Conflict, Event, Informer, KubeClient, KubeError, NotFound, Resource, request_json
from tfcore.k8s.events import EventRecorder
from tfcore.model.annotations import ENABLED_REPLICAS, GPU_POOL, LABEL_ENABLED
from tfcore.model.codec import decode
from tfcore.model.errors import ValidationError
from tfcore.model.pool import GPUPool
from tfcore.operator import canary, fleet, taints, workload
from tfcore.operator import cluster as clusters
from tfcore.operator.objects import (
    FINALIZER,
    Obj,
    controller_of,
    deleting,
    has_finalizer,
    is_controlled_by,
    labels_of,
    meta,
    name_of,
)

log = logging.getLogger(__name__)

GROUP_PATH: Final = "/apis/tensor-fusion.ai/v1"
PATHS: Final = {
    "TensorFusionCluster": f"{GROUP_PATH}/tensorfusionclusters",
    "GPUPool": f"{GROUP_PATH}/gpupools",
    "GPUNode": f"{GROUP_PATH}/gpunodes",
    "GPU": f"{GROUP_PATH}/gpus",
    "Node": "/api/v1/nodes",
    "Pod": "/api/v1/pods",
    "TensorFusionWorkload": f"{GROUP_PATH}/tensorfusionworkloads",
}
MERGE: Final = "application/merge-patch+json"
FINALIZER_WAIT: Final = 0.5  # seconds between checks that a deleting cluster's pools are gone

Key = tuple[str, str]  # (reconciler, object name or "namespace/name")


class NotLeader(Exception):
    """Leadership ended: drop the work, the next leader redoes it."""


class Controller:
    def __init__(
        self,
        api: KubeClient,
        *,
        is_leader: Callable[[], bool],
        recorder: EventRecorder,
        watch_timeout: int = 300,
        taint_used_nodes: bool = False,
        canary_settle: float = canary.SETTLE_SECONDS,
    ) -> None:
        self.api = api
        self.is_leader = is_leader
        self.taint_used_nodes = taint_used_nodes  # NVIDIA coexistence (progressive migration)
        self.canary_settle = canary_settle
        self.recorder = recorder
        self.queue: WorkQueue[Key] = WorkQueue()
        self.cache: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in PATHS}
        self.reconciles: Counter[tuple[str, str]] = Counter()  # (reconciler, result)
        self.writes = 0
        self._decoded_pools: dict[tuple[str, str], GPUPool] = {}
        selectors = {"Pod": f"{LABEL_ENABLED}=true"}
        self.informers = [
            Informer(
                api,
                Resource(path, kind, label_selector=selectors.get(kind)),
                self._on_event,
                watch_timeout=watch_timeout,
            )
            for kind, path in PATHS.items()
        ]

    # ---- observing -----------------------------------------------------------------------

    def synced(self) -> bool:
        return all(i.synced.is_set() for i in self.informers)

    async def watch(self) -> None:
        async with asyncio.TaskGroup() as group:
            for informer in self.informers:
                group.create_task(informer.run())

    def _on_event(self, event: Event) -> None:
        store = self.cache[event.kind]
        if event.type == "SYNC":
            listed = {_key(o) for o in event.objects}
            gone = [obj for key, obj in store.items() if key not in listed]
            store.clear()
            store.update((_key(o), o) for o in event.objects)
            for obj in (*event.objects, *gone):
                self._route(event.kind, obj)
            return
        previous = store.get(_key(event.obj))
        if event.type == "DELETED":
            store.pop(_key(event.obj), None)
        elif previous is None or _version(event.obj) >= _version(previous):
            store[_key(event.obj)] = event.obj
        self._route(event.kind, event.obj, previous=previous if event.type == "MODIFIED" else None)

    def _remember(self, obj: dict[str, Any]) -> None:
        """Put a write's answer in the cache now, so the next reconcile does not act on the old state."""
        kind = str(obj.get("kind") or "")
        store = self.cache.get(kind)
        if store is not None:
            current = store.get(_key(obj))
            if current is None or _version(obj) >= _version(current):
                store[_key(obj)] = obj

    def _route(self, kind: str, obj: Obj, *, previous: Obj | None = None) -> None:
        """Queue every reconcile whose outcome this object can change (`previous`: before a MODIFIED)."""
        name = name_of(obj)
        add = self.queue.add
        match kind:
            case "TensorFusionCluster":
                add(("cluster", name))
            case "GPUPool":
                add(("pool", name))
                owner = controller_of(obj)
                if owner and owner.get("kind") == "TensorFusionCluster":
                    add(("cluster", str(owner.get("name"))))
                if previous is None or _membership(previous) != _membership(obj):  # not on status writes
                    for node in self.cache["Node"]:
                        add(("node", node))
                    for gpunode in self.cache["GPUNode"]:
                        add(("node", gpunode))
            case "Node":
                add(("node", name))
                if self.taint_used_nodes:
                    add(("taint", name))
            case "GPUNode":
                add(("gpunode", name))
                add(("node", name))
                pool = labels_of(obj).get(GPU_POOL)
                if pool:
                    add(("pool", pool))
                for gpu_name, gpu in self.cache["GPU"].items():
                    if fleet.gpu_node_name(gpu) == name:
                        add(("gpu", gpu_name))
            case "GPU":
                add(("gpu", name))
                holder = fleet.gpu_node_name(obj)
                if holder:
                    add(("gpunode", holder))
            case "Pod":
                key = workload.workload_key(obj)
                if key:
                    add(("workload", f"{key[0]}/{key[1]}"))
                owner = controller_of(obj)
                canary_pod = ENABLED_REPLICAS in (meta(obj).get("annotations") or {})
                if canary_pod and owner and owner.get("kind") == "ReplicaSet":
                    add(("canary", f"{meta(obj).get('namespace') or 'default'}/{owner.get('name')}"))
                if self.taint_used_nodes:
                    for pod in (obj, previous):
                        where = ((pod or {}).get("spec") or {}).get("nodeName")
                        if where:
                            add(("taint", str(where)))
            case "TensorFusionWorkload":
                add(("workload", _key(obj)))

    def queue_everything(self) -> None:
        for kind, store in self.cache.items():
            for obj in list(store.values()):
                self._route(kind, obj)

    # ---- leading -------------------------------------------------------------------------

    async def lead(self) -> None:
        """Drain the queue while leading (cancelled by the elector when leadership ends)."""
        while not self.synced():
            await asyncio.sleep(0.05)
        self.queue.clear()
        self.queue_everything()
        while True:
            key = await self.queue.get()
            while not self.is_leader():  # renewal is late: hold the work until it lands or we are cancelled
                await asyncio.sleep(0.05)
            await self.reconcile(key)

    async def reconcile(self, key: Key) -> None:
        reconciler, name = key
        try:
            await getattr(self, f"_reconcile_{reconciler}")(name)
        except NotLeader:
            self.queue.add(key)  # the next leader (maybe us again) redoes it
            self.reconciles[(reconciler, "not-leader")] += 1
        except Conflict as exc:
            self.reconciles[(reconciler, "conflict")] += 1
            log.debug("%s %s: %s; retrying", reconciler, name, exc)
            self.queue.retry(key)
        except (KubeError, TimeoutError) as exc:
            self.reconciles[(reconciler, "error")] += 1
            delay = self.queue.retry(key)
            log.warning("%s %s: %s; retrying in %.2fs", reconciler, name, exc, delay)
        except ValidationError as exc:  # bad objects are reported, not retried: a change requeues them
            self.reconciles[(reconciler, "invalid")] += 1
            log.warning("%s %s: %s", reconciler, name, exc)
        else:
            self.reconciles[(reconciler, "ok")] += 1
            self.queue.forget(key)

    # ---- writes --------------------------------------------------------------------------

    def _fence(self) -> None:
        if not self.is_leader():
            raise NotLeader

    async def _call(self, method: str, path: str, body: Any = None, *, content_type: str = "application/json") -> Any:
        self._fence()
        self.writes += 1
        result = await request_json(self.api, method, path, body=body, content_type=content_type)
        if isinstance(result, dict) and result.get("metadata"):
            self._remember(result)
        return result

    async def _create(self, kind: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """Create; None when it exists already (another write got there first: not an error)."""
        namespace = (body.get("metadata") or {}).get("namespace")
        path = _collection(kind, namespace)
        try:
            created: dict[str, Any] = await self._call("POST", path, body)
        except ApiError as exc:
            if exc.status == 409:
                return None
            raise
        return created

    async def _patch(self, kind: str, obj: Obj, patch: dict[str, Any], *, status: bool = False) -> None:
        path = _object(kind, obj) + ("/status" if status else "")
        await self._call("PATCH", path, patch, content_type=MERGE)

    async def _delete(self, kind: str, obj: Obj) -> bool:
        try:
            await self._call("DELETE", _object(kind, obj))
        except NotFound:
            return False
        return True

    async def _status(self, kind: str, obj: Obj, desired: dict[str, Any]) -> bool:
        if not fleet.changed(obj.get("status"), desired):
            return False
        await self._patch(kind, obj, {"status": desired}, status=True)
        return True

    async def _finalizers(self, kind: str, obj: Obj, finalizers: list[str]) -> None:
        """Set the finalizers, guarded by resourceVersion (409 if someone changed the object)."""
        patch = {"metadata": {"finalizers": finalizers, "resourceVersion": meta(obj).get("resourceVersion")}}
        await self._patch(kind, obj, patch)

    # ---- reconcilers ---------------------------------------------------------------------

    async def _reconcile_cluster(self, name: str) -> None:
        cluster = self.cache["TensorFusionCluster"].get(name)
        if cluster is None:
            return
        pools = list(self.cache["GPUPool"].values())
        owned = [p for p in pools if is_controlled_by(p, cluster)]
        if deleting(cluster):
            if not has_finalizer(cluster):
                return
            for pool in owned:
                if not deleting(pool) and await self._delete("GPUPool", pool):
                    await self.recorder.emit(cluster, "Normal", "PoolDeleted", f"deleting GPUPool {name_of(pool)}")
            if owned:
                self.queue.add_after(("cluster", name), FINALIZER_WAIT)
                return
            await self._finalizers(
                "TensorFusionCluster", cluster, [f for f in meta(cluster)["finalizers"] if f != FINALIZER]
            )
            return
        if not has_finalizer(cluster):
            await self._finalizers(
                "TensorFusionCluster", cluster, [*(meta(cluster).get("finalizers") or []), FINALIZER]
            )
            return  # the update event queues the rest
        problem, reason = None, "InvalidSpec"
        try:
            clusters.check_cluster(cluster)
        except ValidationError as exc:
            problem = str(exc)
        if problem is None:
            plan = clusters.plan_pools(cluster, pools)
            for body in plan.create:
                try:
                    created = await self._create("GPUPool", body)
                except ApiError as exc:
                    if exc.status not in (400, 422):  # not the object's fault: retried with backoff
                        raise
                    problem, reason = f"GPUPool {name_of(body)} refused by the API server: {exc.reason}", "PoolRejected"
                    continue
                if created is not None:
                    await self.recorder.emit(cluster, "Normal", "PoolCreated", f"created GPUPool {name_of(body)}")
            for pool_name, patch in plan.update:
                await self._patch("GPUPool", self.cache["GPUPool"][pool_name], patch)
                await self.recorder.emit(
                    cluster, "Normal", "PoolUpdated", f"updated GPUPool {pool_name} from its template"
                )
            for pool_name in plan.delete:
                if await self._delete("GPUPool", self.cache["GPUPool"][pool_name]):
                    await self.recorder.emit(
                        cluster, "Normal", "PoolDeleted", f"deleted GPUPool {pool_name}: no longer in gpuPools"
                    )
        status = clusters.cluster_status(
            cluster, self.cache["GPUPool"].values(), now=_now(), problem=problem, problem_reason=reason
        )
        became_invalid = problem is not None and _reason(cluster) != reason
        if await self._status("TensorFusionCluster", cluster, status) and became_invalid:
            await self.recorder.emit(cluster, "Warning", reason, problem or "")

    async def _reconcile_pool(self, name: str) -> None:
        pool = self.cache["GPUPool"].get(name)
        if pool is None or deleting(pool):
            return
        status = fleet.pool_status(pool, self.cache["GPUNode"].values(), now=_now())
        await self._status("GPUPool", pool, status)

    async def _reconcile_node(self, name: str) -> None:
        node = self.cache["Node"].get(name)
        gpunode = self.cache["GPUNode"].get(name)
        pool_name = fleet.pool_for_node(self._pools(), node) if node is not None and not deleting(node) else None
        pool = self.cache["GPUPool"].get(pool_name) if pool_name else None
        if pool is None:
            leaves = gpunode is not None and fleet.owned_by_pool(gpunode) and not deleting(gpunode)
            if leaves and gpunode is not None and await self._delete("GPUNode", gpunode):
                former = self.cache["GPUPool"].get(labels_of(gpunode).get(GPU_POOL, ""))
                if former is not None:
                    await self.recorder.emit(former, "Normal", "NodeLeft", f"node {name} left the pool")
            return
        if gpunode is None:
            if await self._create("GPUNode", fleet.desired_gpunode(node or {}, pool)) is not None:
                await self.recorder.emit(pool, "Normal", "NodeJoined", f"node {name} joined the pool")
            return
        patch = fleet.gpunode_patch(gpunode, pool)
        if patch is not None and not deleting(gpunode):
            await self._patch("GPUNode", gpunode, patch)
            await self.recorder.emit(pool, "Normal", "NodeJoined", f"node {name} moved into the pool")

    async def _reconcile_gpunode(self, name: str) -> None:
        gpunode = self.cache["GPUNode"].get(name)
        if gpunode is None or deleting(gpunode):
            return
        pool = self.cache["GPUPool"].get(labels_of(gpunode).get(GPU_POOL, ""))
        gpus = [g for g in self.cache["GPU"].values() if fleet.gpu_node_name(g) == name]
        report = fleet.gpunode_status(gpunode, pool, gpus, now=_now())
        for problem in report.invalid:
            log.warning("GPUNode %s: skipped a GPU: %s", name, problem)
        await self._status("GPUNode", gpunode, report.status)

    async def _reconcile_gpu(self, name: str) -> None:
        gpu = self.cache["GPU"].get(name)
        if gpu is None or deleting(gpu):
            return
        node = fleet.gpu_node_name(gpu)
        gpunode = self.cache["GPUNode"].get(node) if node else None
        if gpunode is not None and deleting(gpunode):
            gpunode = None
        patch = fleet.gpu_patch(gpu, gpunode)
        if patch is not None:
            await self._patch("GPU", gpu, patch)

    async def _reconcile_taint(self, name: str) -> None:
        node = self.cache["Node"].get(name)
        if node is None or deleting(node) or not self.taint_used_nodes:
            return
        used = name in taints.nodes_with_workers(self.cache["Pod"].values())
        patch = taints.taint_patch(node, used)
        if patch is not None:
            await self._patch("Node", node, patch)
            verb = "added" if used else "removed"
            await self.recorder.emit(node, "Normal", "TensorFusionTaint", f"{taints.USED_BY_TAINT} {verb}")

    async def _reconcile_canary(self, key: str) -> None:
        namespace, name = key.split("/", 1)
        try:
            owner = await request_json(self.api, "GET", f"/apis/apps/v1/namespaces/{namespace}/replicasets/{name}")
        except NotFound:
            return
        owner.setdefault("kind", "ReplicaSet")
        owner.setdefault("apiVersion", "apps/v1")
        decision = canary.rebalance(owner, self.cache["Pod"].values(), datetime.now(UTC), self.canary_settle)
        if isinstance(decision, canary.Wait):
            self.queue.add_after(("canary", key), decision.seconds)
        elif isinstance(decision, canary.Replace):
            path = f"/api/v1/namespaces/{namespace}/pods/{decision.pod}"
            try:
                await self._call("DELETE", path, {"preconditions": {"uid": decision.uid}})
            except NotFound:
                return  # gone already: its successor brings us back
            await self.recorder.emit(owner, "Normal", "CanaryRebalance", decision.message)

    async def _reconcile_workload(self, key: str) -> None:
        namespace, name = key.split("/", 1)
        pods = [p for p in self.cache["Pod"].values() if workload.workload_key(p) == (namespace, name)]
        current = self.cache["TensorFusionWorkload"].get(key)
        if current is None:
            if not pods:
                return
            owner = await self._top_owner(pods[0])
            body = workload.desired_workload((namespace, name), pods, owner)
            created = await self._create("TensorFusionWorkload", body)
            if created is None:
                return  # it exists: its event brings us back with the cached object
            await self.recorder.emit(created, "Normal", "WorkloadCreated", f"{len(pods)} worker pod(s)")
            current = created
        elif pods:
            owner = await self._top_owner(pods[0])
            spec = workload.desired_spec(pods, workload.owner_replicas(owner))
            if spec and spec != {k: v for k, v in (current.get("spec") or {}).items() if k in spec}:
                await self._patch("TensorFusionWorkload", current, {"spec": spec})
                current = self.cache["TensorFusionWorkload"].get(key, current)
        await self._status("TensorFusionWorkload", current, workload.workload_status(current, pods, now=_now()))

    async def _top_owner(self, pod: Obj) -> dict[str, Any] | None:
        """The pod's owner, following a ReplicaSet up to its Deployment; None for a bare pod."""
        namespace = str(meta(pod).get("namespace") or "default")
        ref = controller_of(pod)
        owner: dict[str, Any] | None = None
        for _ in range(2):
            if ref is None or ref.get("kind") not in ("ReplicaSet", "Deployment", "StatefulSet"):
                break
            plural = {"ReplicaSet": "replicasets", "Deployment": "deployments", "StatefulSet": "statefulsets"}[
                str(ref["kind"])
            ]
            try:
                found = await request_json(
                    self.api, "GET", f"/apis/apps/v1/namespaces/{namespace}/{plural}/{ref['name']}"
                )
            except NotFound:
                break
            found.setdefault("kind", ref["kind"])
            found.setdefault("apiVersion", "apps/v1")
            owner = found
            ref = controller_of(found)
        if owner is None and ref is not None:  # a Job or another kind: own by reference as it is
            owner = {
                "apiVersion": ref.get("apiVersion"),
                "kind": ref.get("kind"),
                "metadata": {"name": ref.get("name"), "uid": ref.get("uid")},
            }
        return owner

    def _pools(self) -> list[GPUPool]:
        """The cached pools decoded (memoized per resourceVersion: node reconciles read them all)."""
        decoded = []
        for obj in self.cache["GPUPool"].values():
            version = (name_of(obj), str(meta(obj).get("resourceVersion")))
            pool = self._decoded_pools.get(version)
            if pool is None:
                try:
                    pool = decode(obj, GPUPool, where=f"GPUPool/{name_of(obj)}")
                except ValidationError as exc:
                    log.warning("ignoring an invalid pool: %s", exc)
                    continue
                if len(self._decoded_pools) > 4 * len(self.cache["GPUPool"]) + 16:
                    self._decoded_pools.clear()
                self._decoded_pools[version] = pool
            decoded.append(pool)
        return decoded


def _membership(pool: Obj) -> tuple[object, object]:
    """What decides which nodes a pool holds: its node selector and whether it is being deleted."""
    config = (pool.get("spec") or {}).get("nodeManagerConfig") or {}
    return config.get("nodeSelector"), meta(pool).get("deletionTimestamp")


def _key(obj: Obj) -> str:
    namespace = meta(obj).get("namespace")
    return f"{namespace}/{name_of(obj)}" if namespace else name_of(obj)


def _version(obj: Obj) -> int:
    try:
        return int(meta(obj).get("resourceVersion") or 0)
    except ValueError:  # resourceVersions are opaque; ours and the API server's are integers
        return 0


def _collection(kind: str, namespace: str | None) -> str:
    base = PATHS[kind]
    if namespace:
        prefix, plural = base.rsplit("/", 1)
        return f"{prefix}/namespaces/{namespace}/{plural}"
    return base


def _object(kind: str, obj: Obj) -> str:
    return f"{_collection(kind, meta(obj).get('namespace'))}/{name_of(obj)}"


def _reason(obj: Obj) -> str | None:
    for condition in (obj.get("status") or {}).get("conditions") or ():
        if condition.get("type") == "Ready":
            return str(condition.get("reason"))
    return None


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
