"""Per-node filter verdicts and scores, reused across pods of the same shape until the node changes.

kube-scheduler calls filter and prioritize with (nearly) every node for every pod. A node's
verdict and score depend only on the pod's shape (amounts, count, pool, model, vendor,
indices, dedication, node selector and affinity: everything but its identity) and on that
node's state, so they are kept per shape and dropped for a node whenever the allocator says
it changed (AllocatorListener). A bind changes one node: the next pod of the same shape
recomputes one node and reuses the rest. PreFilter (pool, quota) runs for every call.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Final

from tfcore.sched import PodRequest, Status
from tfcore.sched.state import NodeState

MAX_SHAPES: Final = 64
Shape = tuple[Hashable, ...]


def shape_of(pod: PodRequest) -> Shape:
    """Everything of a request that filters and scores may read: all fields but its identity."""
    return (
        pod.tflops,
        pod.tflops_limit,
        pod.percent_ppm,
        pod.percent_limit_ppm,
        pod.vram,
        pod.vram_limit,
        pod.gpu_count,
        pod.pool,
        pod.gpu_model,
        pod.vendor,
        pod.gpu_indices,
        pod.dedicated,
        pod.qos,
        tuple(sorted(pod.node_selector.items())),
        pod.affinity_terms,
    )


class ShapeDecisions:
    """For one pod shape: node -> filter Status, node -> weighted score total."""

    __slots__ = ("scaled", "totals", "verdicts")

    def __init__(self) -> None:
        self.verdicts: dict[str, Status] = {}
        self.totals: dict[str, int] = {}
        self.scaled: dict[str, int] = {}  # totals as extender priorities (0..9)


class DecisionCache:
    """Bounded (least recently used shapes are dropped); subscribe it to the Allocator."""

    def __init__(self, max_shapes: int = MAX_SHAPES) -> None:
        self.max_shapes = max_shapes
        self._shapes: OrderedDict[Shape, ShapeDecisions] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def for_shape(self, shape: Shape) -> ShapeDecisions:
        entry = self._shapes.get(shape)
        if entry is None:
            entry = self._shapes[shape] = ShapeDecisions()
            if len(self._shapes) > self.max_shapes:
                self._shapes.popitem(last=False)
        else:
            self._shapes.move_to_end(shape)
        return entry

    def clear(self) -> None:
        self._shapes.clear()

    # AllocatorListener
    def node_changed(self, node: NodeState) -> None:
        name = node.name
        for entry in self._shapes.values():
            entry.verdicts.pop(name, None)
            entry.totals.pop(name, None)
            entry.scaled.pop(name, None)

    def node_removed(self, node: NodeState) -> None:
        self.node_changed(node)
