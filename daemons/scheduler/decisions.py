"""Per-node filter verdicts and scores, reused across pods of the same shape until the node changes.

kube-scheduler calls filter and prioritize with (nearly) every node for every pod. A node's
verdict and score depend only on the pod's shape (amounts, count, pool, model, vendor,
indices, dedication, node selector and affinity: everything but its identity) and on that
node's state, so they are kept per shape and dropped for a node whenever the allocator says
it changed (AllocatorListener). A bind changes one node: the next pod of the same shape
recomputes one node and reuses the rest. PreFilter (pool, quota) runs for every call.

Each entry also keeps what the replies are made of, so that answering 1,000 nodes is a few
C-level passes (set operations, dict lookups, bytes join) instead of a Python loop per node:
the set of nodes rejected, their messages, and each node's prioritize item already
encoded as JSON. kube-scheduler sends the same candidate list pod after pod, so the last
reply per shape is kept too (a FilterView, a PriorityView) with the nodes changed since it
was made; the next call with the same list only looks at those nodes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Final

import msgspec

from daemons.scheduler.wire import ExtenderFilterResult
from tfcore.sched import PodRequest, Status
from tfcore.sched.framework import Code
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


def host_priority_json(host: str, score: int) -> bytes:
    """One HostPriority as the extender encoder writes it: {"Host":...,"Score":...}."""
    return b'{"Host":%s,"Score":%d}' % (msgspec.json.encode(host), score)


def rejection_reason(status: Status) -> str:
    """A bounded label for metrics: plugin/stage ("GPUResourcesFit/resource"), never the node-specific text."""
    if status.plugin:
        return f"{status.plugin}/{status.stage}" if status.stage else status.plugin
    return "unmanaged-node"


class FilterView:
    """A shape's last filter reply for one candidate list, kept while the verdicts it reports hold."""

    __slots__ = ("body", "members", "names", "names_json", "reasons", "rejected", "result", "stale")

    def __init__(
        self,
        names: list[str],
        names_json: bytes,
        members: set[str],
        result: ExtenderFilterResult,
        reasons: dict[str, int],
    ) -> None:
        self.names = names
        self.names_json = names_json  # NodeNames as received: the next call matches these bytes
        self.members = members  # set(names)
        self.result = result
        self.body: bytes | None = None  # result, encoded on first use
        self.reasons = reasons
        self.rejected = {n: (False, m) for n, m in result.failed_nodes.items()}
        self.rejected.update((n, (True, m)) for n, m in result.failed_and_unresolvable_nodes.items())
        self.stale: set[str] = set()  # nodes changed since: their verdicts must be checked again


class PriorityView:
    """A shape's last prioritize answer for one candidate list (no duplicates), patched per changed node.

    The answer is kept encoded: every item has a one-digit score (0..9), so a changed node is one
    byte to overwrite, and the reply is that body with "10" spliced in for the best node. The
    best total and how many nodes share it are kept up to date the same way.
    """

    __slots__ = ("body", "digit_at", "names", "names_json", "position", "stale", "top", "top_count", "values")

    def __init__(self, names: list[str], names_json: bytes, values: list[int], items: list[bytes]) -> None:
        self.names = names
        self.names_json = names_json
        self.position = {n: i for i, n in enumerate(names)}
        self.values = values  # totals, -1 for a node we do not know
        self.body = bytearray(b"[" + b",".join(items) + b"]")
        self.digit_at: list[int] = []  # offset of each item's score digit in body
        offset = 1
        for item in items:  # an item ends with <digit>}
            self.digit_at.append(offset + len(item) - 2)
            offset += len(item) + 1
        self.top = max(values)
        self.top_count = values.count(self.top)
        self.stale: set[str] = set()

    def patch(self, name: str, total: int, scaled: int) -> None:
        i = self.position[name]
        old, self.values[i] = self.values[i], total
        self.body[self.digit_at[i]] = 0x30 + scaled
        if total > self.top:
            self.top, self.top_count = total, 1
        elif total == self.top:
            self.top_count += old != total
        elif old == self.top:
            self.top_count -= 1
            if not self.top_count:
                self.top = max(self.values)
                self.top_count = self.values.count(self.top)

    def reply(self, best: int) -> bytes:
        """The body with the item at `best` scored MAX_EXTENDER_PRIORITY (10)."""
        at = self.digit_at[best]
        view = memoryview(self.body)
        return b"".join((view[:at], b"10", view[at + 1 :]))


class ShapeDecisions:
    """For one pod shape: each node's filter verdict and score, and the pieces of the replies."""

    __slots__ = (
        "failed",
        "filter_view",
        "host_json",
        "priority_view",
        "reasons",
        "rejected",
        "scaled",
        "totals",
        "unresolvable",
        "verdicts",
    )

    def __init__(self) -> None:
        self.verdicts: dict[str, Status] = {}
        self.rejected: set[str] = set()  # verdict other than SUCCESS
        self.failed: dict[str, str] = {}  # verdict UNSCHEDULABLE (or ERROR): its message
        self.unresolvable: dict[str, str] = {}  # verdict UNSCHEDULABLE_AND_UNRESOLVABLE: its message
        self.reasons: dict[str, str] = {}  # rejected node -> rejection_reason, for metrics
        self.totals: dict[str, int] = {}
        self.scaled: dict[str, int] = {}  # totals as extender priorities (0..9)
        self.host_json: dict[str, bytes] = {}  # host_priority_json(node, scaled)
        self.filter_view: FilterView | None = None
        self.priority_view: PriorityView | None = None

    def record_verdict(self, name: str, status: Status) -> None:
        self.verdicts[name] = status
        if status.code is Code.SUCCESS:
            return
        self.rejected.add(name)
        if status.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
            self.unresolvable[name] = status.message()
        else:
            self.failed[name] = status.message()
        self.reasons[name] = rejection_reason(status)

    def record_score(self, name: str, total: int, scaled: int) -> None:
        self.totals[name] = total
        self.scaled[name] = scaled
        self.host_json[name] = host_priority_json(name, scaled)

    def forget(self, name: str) -> None:
        if self.filter_view is not None and name in self.filter_view.members:
            self.filter_view.stale.add(name)
        if self.priority_view is not None and name in self.priority_view.position:
            self.priority_view.stale.add(name)
        if self.verdicts.pop(name, None) is not None:
            self.rejected.discard(name)
            self.failed.pop(name, None)
            self.unresolvable.pop(name, None)
            self.reasons.pop(name, None)
        if self.totals.pop(name, None) is not None:
            self.scaled.pop(name, None)
            self.host_json.pop(name, None)


class DecisionCache:
    """Bounded (least recently used shapes are dropped); subscribe it to the Allocator."""

    def __init__(self, max_shapes: int = MAX_SHAPES) -> None:
        self.max_shapes = max_shapes
        self._shapes: OrderedDict[Shape, ShapeDecisions] = OrderedDict()

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
            entry.forget(name)

    def node_removed(self, node: NodeState) -> None:
        self.node_changed(node)
