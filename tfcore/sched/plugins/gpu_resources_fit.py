"""GPUResourcesFit: does a node have GPUs with enough free TFLOPS and VRAM, and how packed is it.

Filter chain per node (first failing stage is the reason): pool -> workers (maxWorkerPerNode)
-> index -> isolation -> resource (free >= request) -> model -> vendor -> node affinity ->
count (gpu-count GPUs on this one node).

GPU score = clamp(round(vram% x vramWeight + tflops% x tflopsWeight), 0, 100) where the
percentages are of *used* virtual capacity (compact-first) or *available* (low-load-first).
Node score = mean of the scores of the node's schedulable GPUs, rounded half up. Because it
does not depend on the pod, it is kept per node in an index updated on every allocation
change, so the framework can walk nodes best-first instead of scoring all of them.

placementMode (our extension; the values of SchedulingConfigTemplate placement.mode):
NodeCompactGPULowLoad (default: pack nodes, spread over a node's GPUs), CompactFirst (pack
both), LowLoadFirst (spread both).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from tfcore.sched.allocator import AllocationError, Allocator, Usage, native_wait_reason
from tfcore.sched.framework import SUCCESS, CycleState, Handle, Status
from tfcore.sched.plugins.args import ArgsReader
from tfcore.sched.request import PodRequest
from tfcore.sched.state import GPUState, NodeState
from tfcore.sched.units import bytes_text, tflops_text

NAME: Final = "GPUResourcesFit"
PLACEMENT_MODES: Final = ("NodeCompactGPULowLoad", "CompactFirst", "LowLoadFirst")
STAGES: Final = ("pool", "workers", "index", "isolation", "resource", "model", "vendor", "affinity", "count")


@dataclass(frozen=True, slots=True)
class GPUResourcesFitArgs:
    max_worker_per_node: int = 256
    vram_weight: float = 0.7
    tflops_weight: float = 0.3
    placement_mode: str = "NodeCompactGPULowLoad"

    @property
    def nodes_by_used(self) -> bool:
        return self.placement_mode != "LowLoadFirst"

    @property
    def gpus_by_used(self) -> bool:
        return self.placement_mode == "CompactFirst"


def parse_args(raw: Mapping[str, Any] | None, where: str = "") -> GPUResourcesFitArgs:
    reader = ArgsReader(NAME, raw, where)
    args = GPUResourcesFitArgs(
        max_worker_per_node=reader.integer("maxWorkerPerNode", 256, minimum=1),
        vram_weight=reader.number("vramWeight", 0.7, low=0.0, high=1.0) or 0.0,
        tflops_weight=reader.number("tflopsWeight", 0.3, low=0.0, high=1.0) or 0.0,
        placement_mode=reader.choice("placementMode", "NodeCompactGPULowLoad", PLACEMENT_MODES),
    )
    reader.done()
    return args


def gpu_score(gpu: GPUState, args: GPUResourcesFitArgs, *, used: bool) -> int:
    """The GPU's score in 0..100: weighted used % (or available %) of its virtual capacity."""
    vram_pct = 100.0 * (gpu.used_vram if used else gpu.free_vram) / gpu.virtual_vram if gpu.virtual_vram > 0 else 100.0
    tflops_pct = (
        100.0 * (gpu.used_tflops if used else gpu.free_tflops) / gpu.virtual_tflops if gpu.virtual_tflops > 0 else 100.0
    )
    if not used and gpu.virtual_vram <= 0:
        vram_pct = 0.0
    if not used and gpu.virtual_tflops <= 0:
        tflops_pct = 0.0
    score = int(vram_pct * args.vram_weight + tflops_pct * args.tflops_weight + 0.5)
    return 0 if score < 0 else min(score, 100)


def node_score(node: NodeState, args: GPUResourcesFitArgs, *, used: bool) -> int:
    scores = [gpu_score(g, args, used=used) for g in node.gpus if g.spec.schedulable]
    if not scores:
        return 0
    return (2 * sum(scores) + len(scores)) // (2 * len(scores))


def model_matches(wanted: str, actual: str) -> bool:
    """Case-insensitive; "A100" matches "NVIDIA A100-SXM4-80GB" but not "NVIDIA A1000"."""
    w, a = wanted.lower(), actual.lower()
    if w == a:
        return True
    start = 0
    while True:
        pos = a.find(w, start)
        if pos < 0:
            return False
        end = pos + len(w)
        if (pos == 0 or a[pos - 1] in " -_") and (end == len(a) or a[end] in " -_"):
            return True
        start = pos + 1


class NodeScoreIndex:
    """Node scores per pool in 101 buckets of name-sorted nodes, updated on allocator changes."""

    def __init__(self, allocator: Allocator, args: GPUResourcesFitArgs) -> None:
        self.args = args
        self.scores: dict[str, int] = {}
        self.pools: dict[str, frozenset[str]] = {}
        self.buckets: dict[str, list[list[str]]] = {}
        for node in allocator.nodes.values():
            self.node_changed(node)

    def node_changed(self, node: NodeState) -> None:
        score = node_score(node, self.args, used=self.args.nodes_by_used)
        pools = node.pools | {node.spec.pool}
        name = node.name
        if self.scores.get(name) == score and self.pools.get(name) == pools:
            return
        self._drop(name)
        self.scores[name] = score
        self.pools[name] = pools
        for pool in pools:
            buckets = self.buckets.get(pool)
            if buckets is None:
                buckets = self.buckets[pool] = [[] for _ in range(101)]
            bisect.insort(buckets[score], name)

    def node_removed(self, node: NodeState) -> None:
        self._drop(node.name)

    def _drop(self, name: str) -> None:
        score = self.scores.pop(name, None)
        for pool in self.pools.pop(name, frozenset()):
            bucket = self.buckets[pool][score if score is not None else 0]
            at = bisect.bisect_left(bucket, name)
            if at < len(bucket) and bucket[at] == name:
                del bucket[at]

    def ranked(self, pool: str) -> Iterator[str]:
        for bucket in reversed(self.buckets.get(pool, ())):
            yield from bucket


_QUICK_RESOURCE: Final = Status.unschedulable(NAME, "no GPU has enough free TFLOPS and VRAM", "resource")


class GPUResourcesFit:
    """PreFilter, Filter, Score (ranked), Reserve/Unreserve for fractional GPU requests."""

    stages = STAGES

    def __init__(self, args: GPUResourcesFitArgs, handle: Handle) -> None:
        self.args = args
        self.allocator = handle.allocator
        self.index = NodeScoreIndex(self.allocator, args)
        self.allocator.subscribe(self.index)

    @property
    def name(self) -> str:
        return NAME

    def close(self) -> None:
        self.allocator.unsubscribe(self.index)

    # ---- PreFilter ----

    def pre_filter(self, state: CycleState, pod: PodRequest) -> Status:
        pool = pod.pool or self.allocator.default_pool
        if pool is None:
            return Status.unresolvable(NAME, "the pod names no tensor-fusion.ai/gpupool and there is no default pool")
        if pool not in self.allocator.pools and pool not in self.index.buckets:
            return Status.unresolvable(NAME, f"unknown GPU pool {pool!r}")
        state.data[NAME] = pool
        quota = self.allocator.quota
        if quota is not None and not pod.dedicated and not pod.percent_ppm:
            k = pod.gpu_count
            adding = Usage(pod.tflops * k, pod.vram * k, pod.tflops_limit * k, pod.vram_limit * k, 1)
            used = self.allocator.namespace_usage.get(pod.namespace, Usage())
            reason = quota.check(pod.namespace, used, adding)
            if reason is not None:
                return Status.unschedulable(NAME, reason, "quota")
        return SUCCESS

    # ---- Filter ----

    def filter(self, state: CycleState, pod: PodRequest, node: NodeState) -> Status:
        pool = state.data.get(NAME) or pod.pool or self.allocator.default_pool
        if node.pools == {pool}:
            gpus = node.gpus
        else:
            gpus = [g for g in node.gpus if g.pool.name == pool]
            if not gpus:
                return Status.unresolvable(NAME, f"node has no GPUs of pool {pool}", "pool")
        if node.native_unsettled:
            return Status.unschedulable(NAME, native_wait_reason(node), "native")
        limit = self.args.max_worker_per_node
        if len(node.workers) >= limit:
            return Status.unschedulable(
                NAME, f"node already runs {len(node.workers)} workers (maximum {limit})", "workers"
            )
        quick = not state.diagnose and not pod.dedicated and not pod.gpu_indices and not pod.percent_ppm
        if quick:
            # One pass over the GPUs for the common case; the staged pass below only runs to say why.
            t, v = pod.tflops, pod.vram
            if v > node.max_free_vram or t > node.max_free_tflops:
                return _QUICK_RESOURCE
            plain = not pod.gpu_model and not pod.vendor and not pod.has_affinity
            if plain and pod.gpu_count == 1 and (node.tflops_beside_max_vram >= t or node.vram_beside_max_tflops >= v):
                return SUCCESS  # one GPU surely fits; Reserve lists the candidates if this node wins
            fit = [
                g
                for g in gpus
                if g.spec.schedulable
                and not g.dedicated
                and g.virtual_tflops - g.used_tflops >= t
                and g.virtual_vram - g.used_vram >= v
            ]
            if fit and plain and len(fit) >= pod.gpu_count:
                state.gpu_candidates[node.name] = fit
                return SUCCESS
        if pod.gpu_indices:
            gpus = [g for g in gpus if g.spec.index in pod.gpu_indices]
            if not gpus:
                wanted = ",".join(str(i) for i in sorted(pod.gpu_indices))
                return Status.unresolvable(NAME, f"no GPU with index {wanted}", "index")
        if pod.dedicated:
            gpus = [g for g in gpus if g.spec.schedulable and not g.workers]
        else:
            gpus = [g for g in gpus if g.spec.schedulable and not g.dedicated]
        if not gpus:
            what = "idle" if pod.dedicated else "shareable"
            return Status.unschedulable(NAME, f"no {what} GPU (dedicated, in use or not schedulable)", "isolation")
        before = gpus
        if pod.percent_ppm or pod.dedicated:
            gpus = [g for g in gpus if _fits(pod, g)]
        else:
            t, v = pod.tflops, pod.vram
            gpus = [g for g in gpus if g.virtual_tflops - g.used_tflops >= t and g.virtual_vram - g.used_vram >= v]
        if not gpus:
            return Status.unschedulable(NAME, _resource_reason(pod, before), "resource")
        if pod.gpu_model:
            wanted = pod.gpu_model
            gpus = [g for g in gpus if model_matches(wanted, g.spec.model)]
            if not gpus:
                return Status.unresolvable(NAME, f"no free GPU of model {wanted}", "model")
        if pod.vendor:
            vendor = pod.vendor.lower()
            gpus = [g for g in gpus if g.spec.vendor.lower() == vendor]
            if not gpus:
                return Status.unresolvable(NAME, f"no free GPU of vendor {pod.vendor}", "vendor")
        if pod.has_affinity and not pod.matches_node_labels(node.spec.labels):
            return Status.unresolvable(NAME, "node does not match the pod's node selector or affinity", "affinity")
        if len(gpus) < pod.gpu_count:
            return Status.unschedulable(
                NAME, f"{len(gpus)} suitable GPU(s) on this node, the pod needs {pod.gpu_count}", "count"
            )
        state.gpu_candidates[node.name] = gpus
        return SUCCESS

    # ---- Score ----

    def score(self, state: CycleState, pod: PodRequest, node: NodeState) -> int:
        score = self.index.scores.get(node.name)
        return score if score is not None else node_score(node, self.args, used=self.args.nodes_by_used)

    def uniform(self, state: CycleState, pod: PodRequest) -> bool:
        return False

    def ranked_nodes(self, state: CycleState, pod: PodRequest) -> Iterator[NodeState]:
        """Nodes best-first, leaving out those the node aggregates already prove cannot fit
        (this plugin's filter would reject them), which is most of the walk on a packed pool."""
        pool = state.data.get(NAME) or pod.pool or self.allocator.default_pool or ""
        nodes = self.allocator.nodes
        ranked = (nodes[name] for name in self.index.ranked(pool))
        if pod.dedicated or pod.gpu_indices:
            return ranked
        vram, tflops = pod.vram, 0 if pod.percent_ppm else pod.tflops
        return (n for n in ranked if n.max_free_vram >= vram and n.max_free_tflops >= tflops)

    # ---- Reserve ----

    def choose_gpus(self, state: CycleState, pod: PodRequest, node: NodeState) -> list[GPUState] | None:
        """The gpu-count GPUs to use on `node`: low-load first (or most used, CompactFirst), then by index."""
        candidates = state.gpu_candidates.get(node.name)
        if candidates is None:
            staged = CycleState(diagnose=True, dry_run=state.dry_run)  # the full chain always lists candidates
            staged.data = state.data
            if not self.filter(staged, pod, node).ok:
                return None
            candidates = staged.gpu_candidates[node.name]
        used = self.args.gpus_by_used
        ranked = sorted(candidates, key=lambda g: (-gpu_score(g, self.args, used=used), g.spec.index, g.name))
        return ranked[: pod.gpu_count]

    def reserve(self, state: CycleState, pod: PodRequest, node: NodeState) -> Status:
        chosen = self.choose_gpus(state, pod, node)
        if chosen is None or len(chosen) < pod.gpu_count:
            return Status.unschedulable(NAME, f"node {node.name} no longer fits the pod")
        state.chosen_gpus = chosen
        if state.dry_run:
            return SUCCESS
        try:
            state.allocation = self.allocator.allocate(pod, [g.name for g in chosen])
        except AllocationError as exc:
            return Status.unschedulable(NAME, str(exc))
        return SUCCESS

    def unreserve(self, state: CycleState, pod: PodRequest, node: NodeState) -> None:
        if state.allocation is not None and state.allocation.key == pod.key:
            self.allocator.release(pod.key)
            state.allocation = None


def _fits(pod: PodRequest, gpu: GPUState) -> bool:
    tflops, vram, _, _ = pod.amounts_on(gpu)
    return tflops <= gpu.free_tflops and vram <= gpu.free_vram


def _resource_reason(pod: PodRequest, gpus: list[GPUState]) -> str:
    best = max(gpus, key=lambda g: (g.free_vram, g.free_tflops))
    tflops, vram, _, _ = pod.amounts_on(best)
    free_tflops, free_vram = tflops_text(max(best.free_tflops, 0)), bytes_text(max(best.free_vram, 0))
    return (
        f"no GPU has {tflops_text(tflops)} TFLOPS and {bytes_text(vram)} VRAM free "
        f"(most free: {free_tflops} TFLOPS, {free_vram} on {best.name})"
    )


def factory(args: GPUResourcesFitArgs, handle: Handle) -> GPUResourcesFit:
    return GPUResourcesFit(args, handle)
