"""GPUNetworkTopologyAware: keep a multi-GPU pod's GPUs close together.

Tiers, best first: NVLink (all chosen GPUs in one NVLink domain of the node, from the node's
`tensor-fusion.ai/nvlink-groups`), NUMA (all on one NUMA node, from GPU status.numaNode), node
(anywhere on the node). Soft mode scores nodes by the best tier their free GPUs allow (100, 50,
0) and steers the GPU choice to that group; hard mode also rejects nodes that cannot reach
`requiredTier`. A one-GPU pod is the same everywhere (score 100, nothing narrowed).

`totalIntranetBandWidthGBps` (the spec's arg) is accepted and kept for the bandwidth-aware
scoring that needs the network monitor; without monitor data it has no effect.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from tfcore.sched.framework import SUCCESS, CycleState, Handle, Status
from tfcore.sched.plugins.args import ArgsReader
from tfcore.sched.request import PodRequest
from tfcore.sched.state import GPUState, NodeState

NAME: Final = "GPUNetworkTopologyAware"
TIERS: Final = ("NVLink", "NUMA", "Node")
TIER_SCORES: Final = {"NVLink": 100, "NUMA": 50, "Node": 0}


@dataclass(frozen=True, slots=True)
class TopologyArgs:
    mode: str = "soft"
    required_tier: str = "NUMA"
    total_intranet_bandwidth_gbps: float | None = None


def parse_args(raw: Mapping[str, Any] | None, where: str = "") -> TopologyArgs:
    reader = ArgsReader(NAME, raw, where)
    args = TopologyArgs(
        mode=reader.choice("mode", "soft", ("soft", "hard")),
        required_tier=reader.choice("requiredTier", "NUMA", TIERS[:2]),
        total_intranet_bandwidth_gbps=reader.number("totalIntranetBandWidthGBps", None, low=0.0),
    )
    reader.done()
    return args


def best_group(gpus: list[GPUState], node: NodeState, count: int) -> tuple[str, list[GPUState]]:
    """The tightest tier `count` of `gpus` can share, and the GPUs of that group (in input order)."""
    for group in node.spec.nvlink_groups:
        members = [g for g in gpus if g.spec.index in group]
        if len(members) >= count:
            return "NVLink", members
    by_numa: dict[int, list[GPUState]] = {}
    for g in gpus:
        if g.spec.numa_node >= 0:
            by_numa.setdefault(g.spec.numa_node, []).append(g)
    for numa in sorted(by_numa):
        if len(by_numa[numa]) >= count:
            return "NUMA", by_numa[numa]
    return "Node", gpus


class GPUNetworkTopologyAware:
    """Filter (narrows GPU candidates; rejects in hard mode) and Score by interconnect tier."""

    def __init__(self, args: TopologyArgs, handle: Handle) -> None:
        self.args = args
        self.allocator = handle.allocator
        # Nodes that can offer each tier at all, kept current from allocator events (for max_score).
        self.nvlink_nodes: set[str] = set()
        self.numa_nodes: set[str] = set()
        for node in self.allocator.nodes.values():
            self.node_changed(node)
        self.allocator.subscribe(self)

    def close(self) -> None:
        self.allocator.unsubscribe(self)

    def node_changed(self, node: NodeState) -> None:
        _mark(self.nvlink_nodes, node.name, bool(node.spec.nvlink_groups))
        _mark(self.numa_nodes, node.name, any(g.spec.numa_node >= 0 for g in node.gpus))

    def node_removed(self, node: NodeState) -> None:
        self.nvlink_nodes.discard(node.name)
        self.numa_nodes.discard(node.name)

    def max_score(self, state: CycleState, pod: PodRequest) -> int:
        """The best score any node can get: bounded by the tiers the fleet has at all."""
        if pod.gpu_count <= 1 or self.nvlink_nodes:
            return TIER_SCORES["NVLink"]
        return TIER_SCORES["NUMA"] if self.numa_nodes else TIER_SCORES["Node"]

    @property
    def name(self) -> str:
        return NAME

    def filter(self, state: CycleState, pod: PodRequest, node: NodeState) -> Status:
        if pod.gpu_count <= 1:
            return SUCCESS
        candidates = state.gpu_candidates.get(node.name)
        if candidates is None:
            return SUCCESS  # the resource filter did not run (or rejected the node already)
        tier, group = best_group(candidates, node, pod.gpu_count)
        state.data.setdefault(NAME, {})[node.name] = tier
        if self.args.mode == "hard" and TIERS.index(tier) > TIERS.index(self.args.required_tier):
            return Status.unschedulable(
                NAME, f"no {pod.gpu_count} free GPUs share {self.args.required_tier} (best: {tier})", "tier"
            )
        state.gpu_candidates[node.name] = group
        return SUCCESS

    def score(self, state: CycleState, pod: PodRequest, node: NodeState) -> int:
        if pod.gpu_count <= 1:
            return 100
        tiers: dict[str, str] = state.data.get(NAME, {})
        tier = tiers.get(node.name)
        if tier is None:  # scored without filtering (extender prioritize): use the GPUs the pod fits on
            candidates = state.gpu_candidates.get(node.name)
            if candidates is None:
                candidates = [g for g in node.gpus if g.spec.schedulable and not g.dedicated and _fits(pod, g)]
            tier, _ = best_group(candidates, node, pod.gpu_count)
        return TIER_SCORES[tier]

    def uniform(self, state: CycleState, pod: PodRequest) -> bool:
        return pod.gpu_count <= 1


def _mark(members: set[str], name: str, present: bool) -> None:
    if present:
        members.add(name)
    else:
        members.discard(name)


def _fits(pod: PodRequest, gpu: GPUState) -> bool:
    tflops, vram, _, _ = pod.amounts_on(gpu)
    return tflops <= gpu.free_tflops and vram <= gpu.free_vram


def factory(args: TopologyArgs, handle: Handle) -> GPUNetworkTopologyAware:
    return GPUNetworkTopologyAware(args, handle)
