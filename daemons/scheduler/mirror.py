"""The cluster as the allocator sees it: inventory and pods in, allocator updates out.

Sources (the API server's informers, or the in-memory cluster) call `sync` with a whole
collection (first list, relist after 410) and `upsert`/`delete` per watch event. Inventory
(TensorFusionClusters, GPUPools, GPUNodes, Nodes, GPUs, GPUResourceQuotas) arrives before
pods. A pod holding GPUs (our annotations and a node) is recorded as it is; a finished or
deleted pod gives its GPUs back; an unbound pod of our scheduler is kept for bind. An unbound
pod with stale annotations (a bind whose pods/binding failed) holds nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any, Final

from daemons.scheduler.service import SchedulerService
from tfcore.admission.inject import pod_nvidia_gpus
from tfcore.config.scheduler import SCHEDULER_NAME
from tfcore.model.errors import ValidationError
from tfcore.model.kinds import decode_object
from tfcore.model.node import GPU, GPUNode
from tfcore.model.pool import GPUPool, TensorFusionCluster
from tfcore.model.workload import GPUResourceQuota
from tfcore.sched import gpu_from_model, node_from_model, pool_from_model, rebuild_from_pods
from tfcore.sched.quota import GPUResourceQuotaPolicy
from tfcore.sched.records import FINISHED_PHASES, holds_gpus
from tfcore.sched.request import pod_request

log = logging.getLogger(__name__)

# Quotas and the cluster's default pool come in before pods, so no decision is made without them.
INVENTORY_KINDS: Final = ("TensorFusionCluster", "GPUPool", "GPUNode", "Node", "GPU", "GPUResourceQuota")
KINDS: Final = (*INVENTORY_KINDS, "Pod")


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _namespaced(obj: Mapping[str, Any]) -> str:
    namespace = (obj.get("metadata") or {}).get("namespace") or "default"
    return f"{namespace}/{_name(obj)}"


def _uid(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")


class ClusterMirror:
    def __init__(self, service: SchedulerService, *, default_pool: str | None = None) -> None:
        self.service = service
        self.allocator = service.allocator
        self.fixed_default_pool = default_pool
        self.allocator.default_pool = default_pool
        self.quota = GPUResourceQuotaPolicy()
        self.allocator.quota = self.quota
        self.quotas: dict[str, GPUResourceQuota] = {}  # namespace/name -> object
        self.clusters: dict[str, TensorFusionCluster] = {}
        self.gpunodes: dict[str, GPUNode] = {}
        self.node_labels: dict[str, dict[str, str]] = {}
        self.problems: list[str] = []  # recent objects that could not be used, for the logs and tests

    # ---- entry points ---------------------------------------------------------------------------

    def sync(self, kind: str, objects: Iterable[Mapping[str, Any]]) -> None:
        items = list(objects)
        if kind == "Pod":
            present = {_uid(p) for p in items}
            for key in [k for k in self.allocator.allocations if k not in present]:
                if not self.service.binding_in_progress(key):
                    self.allocator.release(key)
            for key in [k for k in self.allocator.native_pods if k not in present]:
                self.allocator.forget_native_pod(key)
            self.service.pending = {}
        else:
            names = {_namespaced(o) if kind == "GPUResourceQuota" else _name(o) for o in items}
            for name in [n for n in self._known(kind) if n not in names]:
                self._remove(kind, name)
        for obj in items:
            self.upsert(kind, obj)

    def upsert(self, kind: str, obj: Mapping[str, Any]) -> None:
        try:
            if kind == "Pod":
                self._pod(obj)
            elif kind == "Node":
                self._node(obj)
            elif kind in ("GPUPool", "GPUNode", "GPU", "GPUResourceQuota", "TensorFusionCluster"):
                self._custom(kind, obj)
        except ValidationError as exc:
            self._problem(f"{kind} {_name(obj)}: {exc}")

    def delete(self, kind: str, obj: Mapping[str, Any]) -> None:
        if kind == "Pod":
            self.service.pending.pop(_uid(obj), None)
            self.allocator.release(_uid(obj))
            self.allocator.forget_native_pod(_uid(obj))
        else:
            self._remove(kind, _namespaced(obj) if kind == "GPUResourceQuota" else _name(obj))

    # ---- pods ---------------------------------------------------------------------------------

    def _pod(self, pod: Mapping[str, Any]) -> None:
        uid = _uid(pod)
        spec = pod.get("spec") or {}
        phase = (pod.get("status") or {}).get("phase")
        if phase in FINISHED_PHASES:
            self.service.pending.pop(uid, None)
            if not self.service.binding_in_progress(uid):
                self.allocator.release(uid)
            self.allocator.forget_native_pod(uid)
            return
        if spec.get("nodeName"):
            self.service.pending.pop(uid, None)
            if self.service.native_gpu_pods and not holds_gpus(pod):
                # Any scheduler's native GPU pod counts: the device plugin serves them all.
                self.allocator.set_native_pod(uid, str(spec["nodeName"]), pod_nvidia_gpus(spec))
            if holds_gpus(pod) and self._resized(uid, pod):
                self.allocator.release(uid)  # resized in place (autoscaling): book what it holds now
            if holds_gpus(pod) and uid not in self.allocator.allocations:
                report = rebuild_from_pods(self.allocator, [pod])
                for problem in report.problems:
                    self._problem(str(problem))
            return
        if spec.get("schedulerName") == SCHEDULER_NAME and uid:
            self.service.pending[uid] = dict(pod)

    def _resized(self, uid: str, pod: Mapping[str, Any]) -> bool:
        """Whether a recorded pod's annotations now ask for other amounts than it holds."""
        recorded = self.allocator.allocations.get(uid)
        if recorded is None or self.service.binding_in_progress(uid):
            return False
        try:
            request = pod_request(pod)
        except ValidationError:
            return False  # a broken edit changes nothing: the pod keeps what it holds
        for share in recorded.shares:
            gpu = self.allocator.gpus.get(share.gpu)
            if gpu is not None and request.amounts_on(gpu) != (
                share.tflops,
                share.vram,
                share.tflops_limit,
                share.vram_limit,
            ):
                return True
        return False

    # ---- inventory ------------------------------------------------------------------------------

    def _node(self, node: Mapping[str, Any]) -> None:
        name = _name(node)
        self.node_labels[name] = dict((node.get("metadata") or {}).get("labels") or {})
        if name in self.gpunodes:
            self.allocator.set_node(node_from_model(self.gpunodes[name], labels=self._labels(name)))

    def _labels(self, name: str) -> dict[str, str] | None:
        labels = self.node_labels.get(name)
        if labels is None:
            return None
        gpunode = self.gpunodes.get(name)
        own = dict(gpunode.metadata.labels or {}) if gpunode and gpunode.metadata else {}
        return {**own, **labels}

    def _custom(self, kind: str, obj: Mapping[str, Any]) -> None:
        model = decode_object(dict(obj), where=f"{kind} {_name(obj)}")
        if isinstance(model, GPUPool):
            self.allocator.set_pool(pool_from_model(model))
            self._default_pool()
        elif isinstance(model, GPUNode):
            spec = node_from_model(model)
            self.gpunodes[spec.name] = model
            self.allocator.set_node(node_from_model(model, labels=self._labels(spec.name)))
        elif isinstance(model, GPU):
            self.allocator.set_gpu(gpu_from_model(model))
        elif isinstance(model, GPUResourceQuota):
            self.quotas[_namespaced(obj)] = model
            self._quota_of(_namespaced(obj).split("/", 1)[0])
        elif isinstance(model, TensorFusionCluster):
            self.clusters[_name(obj)] = model
            self._default_pool()

    def _quota_of(self, namespace: str) -> None:
        """One GPUResourceQuota per namespace counts; with several, the first by name (and a warning)."""
        mine = sorted((key, q) for key, q in self.quotas.items() if key.split("/", 1)[0] == namespace)
        if not mine:
            self.quota.remove(namespace)
            return
        if len(mine) > 1:
            self._problem(f"namespace {namespace} has {len(mine)} GPUResourceQuotas; only {mine[0][0]} is enforced")
        self.quota.set(mine[0][1])

    def _default_pool(self) -> None:
        """--default-pool, else the pool a TensorFusionCluster marks isDefault, else the only pool there is."""
        pools = self.allocator.pools
        chosen = self.fixed_default_pool or self._marked_default() or (next(iter(pools)) if len(pools) == 1 else None)
        if chosen != self.allocator.default_pool:
            self.allocator.default_pool = chosen
            self.service.extender.forget_decisions()

    def _marked_default(self) -> str | None:
        """The first isDefault pool of the TensorFusionClusters (by name): its GPUPool is named
        <cluster>-<pool> by the operator, or <pool>; whichever exists, else <pool>."""
        for cluster_name, cluster in sorted(self.clusters.items()):
            for definition in (cluster.spec.gpu_pools or []) if cluster.spec else []:
                if definition.is_default:
                    prefixed = f"{cluster_name}-{definition.name}"
                    if prefixed in self.allocator.pools and definition.name not in self.allocator.pools:
                        return prefixed
                    return definition.name
        return None

    def _known(self, kind: str) -> list[str]:
        if kind == "GPUPool":
            return list(self.allocator.pools)
        if kind == "GPUNode":
            return list(self.gpunodes)
        if kind == "Node":
            return list(self.node_labels)
        if kind == "GPUResourceQuota":
            return list(self.quotas)
        if kind == "TensorFusionCluster":
            return list(self.clusters)
        return list(self.allocator.gpus)

    def _remove(self, kind: str, name: str) -> None:
        if kind == "GPUPool":
            if self.allocator.pools.pop(name, None) is not None:
                self._default_pool()
        elif kind == "GPUNode":
            self.gpunodes.pop(name, None)
            self.allocator.remove_node(name)
        elif kind == "Node":
            self.node_labels.pop(name, None)
            if name in self.gpunodes:
                self.allocator.set_node(node_from_model(self.gpunodes[name]))
        elif kind == "GPU":
            self.allocator.remove_gpu(name)
        elif kind == "GPUResourceQuota":
            if self.quotas.pop(name, None) is not None:
                self._quota_of(name.split("/", 1)[0])
        elif kind == "TensorFusionCluster" and self.clusters.pop(name, None) is not None:
            self._default_pool()

    def _problem(self, text: str) -> None:
        log.warning("ignored: %s", text)
        self.problems = [*self.problems[-99:], text]
