"""The in-memory allocator: pools, nodes, GPUs and the allocations of pods on them.

Invariant (checked by a property test): on every GPU, the sum of the requests of its workers
is at most its virtual capacity, and release gives back exactly what allocate took. Rebuilding
from pods (`force=True`) records what the cluster says even beyond capacity, because the pods
are running there; such GPUs then show negative free capacity until pods leave.

Pure and single-threaded: the caller (the scheduler daemon) serializes access.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tfcore.model.annotations import GPU_IDS, INDEX
from tfcore.sched.request import PodRequest
from tfcore.sched.state import GPUSpec, GPUState, NodeSpec, NodeState, PoolInfo
from tfcore.sched.units import bytes_text, tflops_text


class AllocationError(ValueError):
    """An allocation the allocator refuses: unknown GPU, no capacity, quota, conflict."""


@dataclass(frozen=True, slots=True)
class GPUShare:
    """What one pod holds on one GPU (milli-TFLOPS and bytes)."""

    gpu: str
    index: int
    tflops: int
    vram: int
    tflops_limit: int
    vram_limit: int


@dataclass(frozen=True, slots=True)
class Allocation:
    """A pod's placement: node and GPU shares. Written on the pod as annotations, read back on restart."""

    key: str
    namespace: str
    name: str
    node: str
    pool: str
    shares: tuple[GPUShare, ...]
    qos: str | None = None
    dedicated: bool = False

    @property
    def gpu_ids(self) -> tuple[str, ...]:
        return tuple(s.gpu for s in self.shares)

    def to_annotations(self) -> dict[str, str]:
        """The annotations the bind step writes on the pod (tensor-fusion.ai/gpu-ids, index)."""
        return {GPU_IDS: ",".join(self.gpu_ids), INDEX: ",".join(str(s.index) for s in self.shares)}

    def to_builtins(self) -> dict[str, Any]:
        return {
            "pod": {"uid": self.key, "namespace": self.namespace, "name": self.name},
            "node": self.node,
            "pool": self.pool,
            "qos": self.qos,
            "dedicated": self.dedicated,
            "gpus": [
                {
                    "gpu": s.gpu,
                    "index": s.index,
                    "requests": {"tflops": tflops_text(s.tflops), "vram": bytes_text(s.vram)},
                    "limits": {"tflops": tflops_text(s.tflops_limit), "vram": bytes_text(s.vram_limit)},
                }
                for s in self.shares
            ],
        }


@dataclass(frozen=True, slots=True)
class Usage:
    """Totals of a namespace (or of one allocation): requests, limits and workers."""

    tflops: int = 0
    vram: int = 0
    tflops_limit: int = 0
    vram_limit: int = 0
    workers: int = 0

    def plus(self, other: Usage, sign: int = 1) -> Usage:
        return Usage(
            self.tflops + sign * other.tflops,
            self.vram + sign * other.vram,
            self.tflops_limit + sign * other.tflops_limit,
            self.vram_limit + sign * other.vram_limit,
            self.workers + sign * other.workers,
        )


def usage_of(shares: Iterable[GPUShare]) -> Usage:
    total = Usage(workers=1)
    for s in shares:
        total = total.plus(Usage(s.tflops, s.vram, s.tflops_limit, s.vram_limit))
    return total


class QuotaPolicy(Protocol):
    """Caller-supplied quota (e.g. GPUResourceQuota per namespace, see tfcore.sched.quota)."""

    def check(self, namespace: str, used: Usage, adding: Usage) -> str | None:
        """None to allow `adding` on top of `used`; otherwise the reason it is refused."""
        ...


class AllocatorListener(Protocol):
    """Told after any change of a node's GPUs (capacity, allocation), e.g. to keep score indexes."""

    def node_changed(self, node: NodeState) -> None: ...

    def node_removed(self, node: NodeState) -> None: ...


class Allocator:
    """GPUs, nodes, pools and allocations; idempotent allocate/release keyed by pod uid."""

    def __init__(self, *, default_pool: str | None = None, quota: QuotaPolicy | None = None) -> None:
        self.default_pool = default_pool
        self.quota = quota
        self.pools: dict[str, PoolInfo] = {}
        self.nodes: dict[str, NodeState] = {}
        self.gpus: dict[str, GPUState] = {}
        self.allocations: dict[str, Allocation] = {}
        self.namespace_usage: dict[str, Usage] = {}
        self._gpu_specs: dict[str, GPUSpec] = {}
        self._specs_by_node: dict[str, dict[str, GPUSpec]] = {}
        self._listeners: list[AllocatorListener] = []
        self.native_pods: dict[str, tuple[str, int]] = {}  # pod uid -> (node, nvidia.com/gpu)

    # ---- inventory ------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        pools: Iterable[PoolInfo],
        nodes: Iterable[NodeSpec],
        gpus: Iterable[GPUSpec],
        *,
        default_pool: str | None = None,
        quota: QuotaPolicy | None = None,
    ) -> Allocator:
        allocator = cls(default_pool=default_pool, quota=quota)
        for pool in pools:
            allocator.set_pool(pool)
        for node in nodes:
            allocator.set_node(node)
        for gpu in gpus:
            allocator.set_gpu(gpu)
        return allocator

    def subscribe(self, listener: AllocatorListener) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: AllocatorListener) -> None:
        self._listeners = [x for x in self._listeners if x is not listener]

    def pool(self, name: str) -> PoolInfo:
        """A pool by name; one not (yet) known gets the documented default ratios."""
        return self.pools.get(name) or PoolInfo(name)

    def set_pool(self, pool: PoolInfo) -> None:
        self.pools[pool.name] = pool
        for node in [n for n in self.nodes.values() if n.spec.pool == pool.name or _has_pool_gpu(n, pool.name)]:
            self._rebuild_node(node)

    def set_node(self, spec: NodeSpec) -> None:
        node = self.nodes.get(spec.name)
        if node is None:
            node = self.nodes[spec.name] = NodeState(spec)
            # Allocations outlive a node's removal (its pods still hold them): take them back.
            node.workers = {key for key, a in self.allocations.items() if a.node == spec.name}
            node.native_requested = self._native_on(spec.name)
        node.spec = spec
        self._rebuild_node(node)

    def set_gpu(self, spec: GPUSpec) -> None:
        if spec.node not in self.nodes:
            # A GPU can arrive (watch order) before its GPUNode: hold it on a placeholder node.
            placeholder = self.nodes[spec.node] = NodeState(NodeSpec(spec.node, spec.pool or self.default_pool or ""))
            placeholder.native_requested = self._native_on(spec.node)
        old = self._gpu_specs.get(spec.name)
        if old is not None and old.node != spec.node:
            self.remove_gpu(old.name)
        self._gpu_specs[spec.name] = spec
        self._specs_by_node.setdefault(spec.node, {})[spec.name] = spec
        self._rebuild_node(self.nodes[spec.node])

    def remove_gpu(self, name: str) -> None:
        spec = self._gpu_specs.pop(name, None)
        if spec is None:
            return
        self._specs_by_node.get(spec.node, {}).pop(name, None)
        if spec.node in self.nodes:
            self._rebuild_node(self.nodes[spec.node])

    def remove_node(self, name: str) -> None:
        node = self.nodes.pop(name, None)
        if node is None:
            return
        for spec in self._specs_by_node.pop(name, {}).values():
            self._gpu_specs.pop(spec.name, None)
        for gpu in node.gpus:
            self.gpus.pop(gpu.name, None)
        for listener in self._listeners:
            listener.node_removed(node)

    # ---- native nvidia.com/gpu pods (NVIDIA coexistence) ------------------------------------

    def set_native_pod(self, key: str, node: str, gpus: int) -> None:
        """A native pod bound to `node` asking for `gpus` nvidia.com/gpu (idempotent by key)."""
        before = self.native_pods.get(key)
        if before == (node, gpus) or (before is None and gpus <= 0):
            return  # most pods: no GPUs, nothing to tell the listeners
        if gpus > 0:
            self.native_pods[key] = (node, gpus)
        else:
            self.native_pods.pop(key, None)
        for name in {node, before[0] if before else node}:
            self._native_changed(name)

    def forget_native_pod(self, key: str) -> None:
        before = self.native_pods.pop(key, None)
        if before is not None:
            self._native_changed(before[0])

    def _native_on(self, node: str) -> int:
        return sum(gpus for where, gpus in self.native_pods.values() if where == node)

    def _native_changed(self, name: str) -> None:
        node = self.nodes.get(name)
        if node is not None:
            node.native_requested = self._native_on(name)
            self._changed(node)

    def _rebuild_node(self, node: NodeState) -> None:
        """Recreate a node's GPU states from their specs, re-applying the allocations held there."""
        specs = sorted(self._specs_by_node.get(node.name, {}).values(), key=lambda s: (s.index, s.name))
        for gpu in node.gpus:
            self.gpus.pop(gpu.name, None)
        node.gpus = []
        by_pool: dict[str, int] = {}
        for spec in specs:
            pool_name = spec.pool or node.spec.pool
            by_pool[pool_name] = by_pool.get(pool_name, 0) + 1
        for spec in specs:
            pool = self.pool(spec.pool or node.spec.pool)
            host_share = pool.host_vram_bytes(node.spec.ram_bytes, node.spec.disk_bytes) // by_pool[pool.name]
            gpu = GPUState(spec, node, pool, host_share)
            node.gpus.append(gpu)
            self.gpus[spec.name] = gpu
        for key in node.workers:
            allocation = self.allocations[key]
            for share in allocation.shares:
                held = self.gpus.get(share.gpu)
                if held is not None and held.node is node:
                    _apply(held, allocation, share, 1)
        self._changed(node)

    def _changed(self, node: NodeState) -> None:
        node.refresh()
        for listener in self._listeners:
            listener.node_changed(node)

    # ---- allocations ----------------------------------------------------------------------

    def check(self, request: PodRequest, gpus: Sequence[GPUState]) -> str | None:
        """Why `request` cannot go on `gpus` (capacity, dedication, quota), or None if it can."""
        for gpu in gpus:
            if gpu.node.native_unsettled:
                return native_wait_reason(gpu.node)
            if not gpu.spec.schedulable:
                return f"GPU {gpu.name} is not schedulable"
            if gpu.dedicated or (request.dedicated and gpu.workers):
                return f"GPU {gpu.name} is dedicated to another pod" if gpu.dedicated else f"GPU {gpu.name} is in use"
            tflops, vram, _, _ = request.amounts_on(gpu)
            if tflops > gpu.free_tflops or vram > gpu.free_vram:
                return f"GPU {gpu.name} has too little free capacity"
        if self.quota is not None:
            adding = usage_of(self._shares(request, gpus))
            return self.quota.check(request.namespace, self.namespace_usage.get(request.namespace, Usage()), adding)
        return None

    def allocate(self, request: PodRequest, gpu_names: Sequence[str], *, force: bool = False) -> Allocation:
        """Record `request` on `gpu_names` (all on one node). Idempotent for the same pod and GPUs.

        `force` skips capacity and quota checks: used when rebuilding from pods that run already.
        """
        existing = self.allocations.get(request.key)
        if existing is not None:
            if existing.gpu_ids == tuple(gpu_names):
                return existing
            raise AllocationError(f"pod {request.key} already holds GPUs {', '.join(existing.gpu_ids)}")
        if not gpu_names or len(set(gpu_names)) != len(gpu_names):
            raise AllocationError("an allocation needs one or more distinct GPUs")
        missing = [name for name in gpu_names if name not in self.gpus]
        if missing:
            raise AllocationError(f"unknown GPU {', '.join(missing)}")
        gpus = [self.gpus[name] for name in gpu_names]
        node = gpus[0].node
        if any(g.node is not node for g in gpus):
            raise AllocationError("all GPUs of one pod must be on the same node")
        if not force:
            reason = self.check(request, gpus)
            if reason is not None:
                raise AllocationError(reason)
        pool = gpus[0].pool
        allocation = Allocation(
            key=request.key,
            namespace=request.namespace,
            name=request.name,
            node=node.name,
            pool=pool.name,
            shares=self._shares(request, gpus),
            qos=request.qos or pool.default_qos,
            dedicated=request.dedicated,
        )
        self._record(allocation)
        return allocation

    def release(self, key: str) -> Allocation | None:
        """Give back everything the pod holds; None (and no change) if it holds nothing."""
        allocation = self.allocations.pop(key, None)
        if allocation is None:
            return None
        self._account(allocation, -1)
        node = self.nodes.get(allocation.node)
        if node is not None:
            for share in allocation.shares:
                gpu = self.gpus.get(share.gpu)
                if gpu is not None:
                    _apply(gpu, allocation, share, -1)
            node.workers.discard(key)
            self._changed(node)
        return allocation

    def _record(self, allocation: Allocation) -> None:
        self.allocations[allocation.key] = allocation
        self._account(allocation, 1)
        node = self.nodes[allocation.node]
        for share in allocation.shares:
            _apply(self.gpus[share.gpu], allocation, share, 1)
        node.workers.add(allocation.key)
        self._changed(node)

    def _account(self, allocation: Allocation, sign: int) -> None:
        ns = allocation.namespace
        usage = self.namespace_usage.get(ns, Usage()).plus(usage_of(allocation.shares), sign)
        if usage == Usage():
            self.namespace_usage.pop(ns, None)
        else:
            self.namespace_usage[ns] = usage

    @staticmethod
    def _shares(request: PodRequest, gpus: Sequence[GPUState]) -> tuple[GPUShare, ...]:
        return tuple(GPUShare(g.name, g.spec.index, *request.amounts_on(g)) for g in gpus)

    # ---- reading --------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The whole state as plain data (what GET /api/allocation returns)."""
        return {
            "pools": {p.name: _pool_builtins(p) for p in self.pools.values()},
            "gpus": {g.name: _gpu_builtins(g, self.allocations) for g in self.gpus.values()},
            "nodes": {
                n.name: {"pool": n.spec.pool, "gpus": [g.name for g in n.gpus], "workers": sorted(n.workers)}
                for n in self.nodes.values()
            },
            "allocations": {key: a.to_builtins() for key, a in sorted(self.allocations.items())},
        }

    def state_fingerprint(self) -> dict[str, tuple[int, int, int, int, bool, tuple[str, ...]]]:
        """Per GPU: used and limit totals, dedication and workers; equal state gives an equal value."""
        return {
            g.name: (g.used_tflops, g.used_vram, g.limit_tflops, g.limit_vram, g.dedicated, tuple(sorted(g.workers)))
            for g in self.gpus.values()
        }


def native_wait_reason(node: NodeState) -> str:
    return (
        f"native nvidia.com/gpu pods hold {node.native_requested} GPU(s) here and the hypervisor has not yet "
        f"reported which ({node.native_unsettled} unknown): no TensorFusion placement until it does"
    )


def _has_pool_gpu(node: NodeState, pool: str) -> bool:
    return any(g.spec.pool == pool for g in node.gpus)


def _apply(gpu: GPUState, allocation: Allocation, share: GPUShare, sign: int) -> None:
    gpu.used_tflops += sign * share.tflops
    gpu.used_vram += sign * share.vram
    gpu.limit_tflops += sign * share.tflops_limit
    gpu.limit_vram += sign * share.vram_limit
    if sign > 0:
        gpu.workers[allocation.key] = (share.tflops, share.vram, share.tflops_limit, share.vram_limit)
        gpu.dedicated = gpu.dedicated or allocation.dedicated
    else:
        gpu.workers.pop(allocation.key, None)
        if allocation.dedicated:
            gpu.dedicated = False


def _pool_builtins(pool: PoolInfo) -> dict[str, Any]:
    return {
        "tflopsOversellRatio": pool.tflops_oversell_ratio,
        "vramExpandToHostMem": pool.vram_expand_to_host_mem,
        "vramExpandToHostDisk": pool.vram_expand_to_host_disk,
    }


def _gpu_builtins(gpu: GPUState, allocations: Mapping[str, Allocation]) -> dict[str, Any]:
    return {
        "node": gpu.node.name,
        "pool": gpu.pool.name,
        "index": gpu.spec.index,
        "model": gpu.spec.model,
        "vendor": gpu.spec.vendor,
        "capacity": {"tflops": tflops_text(gpu.spec.tflops_milli), "vram": bytes_text(gpu.spec.vram_bytes)},
        "virtual": {"tflops": tflops_text(gpu.virtual_tflops), "vram": bytes_text(gpu.virtual_vram)},
        "available": {"tflops": tflops_text(gpu.free_tflops), "vram": bytes_text(gpu.free_vram)},
        "limits": {"tflops": tflops_text(gpu.limit_tflops), "vram": bytes_text(gpu.limit_vram)},
        "dedicated": gpu.dedicated,
        "workers": {
            key: _worker_builtins(amounts, allocations.get(key)) for key, amounts in sorted(gpu.workers.items())
        },
    }


def _worker_builtins(amounts: tuple[int, int, int, int], allocation: Allocation | None) -> Mapping[str, Any]:
    tflops, vram, tflops_limit, vram_limit = amounts
    return {
        "pod": {"namespace": allocation.namespace, "name": allocation.name} if allocation else None,
        "qos": allocation.qos if allocation else None,
        "requests": {"tflops": tflops_text(tflops), "vram": bytes_text(vram)},
        "limits": {"tflops": tflops_text(tflops_limit), "vram": bytes_text(vram_limit)},
    }
