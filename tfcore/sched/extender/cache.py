"""Per-node filter verdicts and scores, a layer over the Framework, kept per request shape.

kube-scheduler calls filter and prioritize with (nearly) every node for every pod. A node's
verdict and score depend only on the pod's shape (tfcore.sched.request.RequestShape:
everything but its identity) and on that node's state, so they are kept per shape and dropped
for a node whenever the allocator says it changed (AllocatorListener). A bind changes one
node: the next pod of the same shape recomputes one node and reuses the rest. PreFilter (pool,
quota) is not cached: the verbs run it for every call.

Disabled (`enabled=False`, the daemon's `--reuse-decisions=false`), every call gets a fresh
entry that is never kept: the same code computes every node every time, which is what the
cached answers are tested against.

Each entry also keeps what the replies are made of, so that answering 1,000 nodes is a few
C-level passes (set operations, dict lookups, bytes join) instead of a Python loop per node:
the set of nodes rejected, their messages, and each node's prioritize item already encoded.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from operator import add
from typing import Final

import msgspec

from tfcore.sched.extender.wire import MAX_EXTENDER_PRIORITY
from tfcore.sched.framework import SUCCESS, Code, CycleState, Framework, Status
from tfcore.sched.request import PodRequest, RequestShape
from tfcore.sched.state import NodeState

MAX_SHAPES: Final = 64


_HOST_PREFIXES: dict[str, bytes] = {}  # node name -> b'{"Host":"<name>","Score":'
_MAX_PREFIXES: Final = 100_000
_SCORE_TAILS: Final = tuple(b"%d}" % score for score in range(MAX_EXTENDER_PRIORITY + 1))


def _host_prefix(host: str) -> bytes:
    if len(_HOST_PREFIXES) >= _MAX_PREFIXES:  # node names come and go: bounded, not exact
        _HOST_PREFIXES.clear()
    prefix = _HOST_PREFIXES[host] = b'{"Host":%s,"Score":' % msgspec.json.encode(host)
    return prefix


def host_priority_json(host: str, score: int) -> bytes:
    """One HostPriority as the extender encoder writes it: {"Host":...,"Score":...}."""
    tail = _SCORE_TAILS[score] if 0 <= score <= MAX_EXTENDER_PRIORITY else b"%d}" % score
    return (_HOST_PREFIXES.get(host) or _host_prefix(host)) + tail


def host_priorities_json(scores: Mapping[str, int]) -> Iterator[tuple[str, bytes]]:
    """(host, host_priority_json(host, score)) for many at once, without a Python step per host."""
    names = list(scores)
    if names and not 0 <= min(scores.values()) <= max(scores.values()) <= MAX_EXTENDER_PRIORITY:
        return ((n, host_priority_json(n, score)) for n, score in scores.items())
    prefixes = list(map(_HOST_PREFIXES.get, names))
    if None in prefixes:
        prefixes = [p or _host_prefix(n) for n, p in zip(names, prefixes, strict=True)]
    return zip(names, map(add, prefixes, map(_SCORE_TAILS.__getitem__, scores.values())), strict=True)


def in_order(subset: set[str], names: list[str]) -> list[str]:
    """The members of `subset` (drawn from `names`) in the order of `names`, cheaply when it is small."""
    if len(subset) == 1:
        return list(subset)
    if len(subset) <= 16:
        position = {n: i for i, n in enumerate(names) if n in subset} if len(names) <= 64 else None
        if position is None:
            return sorted(subset, key=names.index)
        return sorted(subset, key=position.__getitem__)
    return list(dict.fromkeys(n for n in names if n in subset))


def rejection_reason(status: Status) -> str:
    """A bounded label for metrics: plugin/stage ("GPUResourcesFit/resource"), never the node-specific text."""
    if status.plugin:
        return f"{status.plugin}/{status.stage}" if status.stage else status.plugin
    return "unmanaged-node"


class ShapeDecisions:
    """For one request shape: each node's filter verdict and score, and the pieces of the replies."""

    __slots__ = ("failed", "host_json", "reasons", "rejected", "scaled", "totals", "unresolvable", "verdicts")

    def __init__(self) -> None:
        self.verdicts: dict[str, Status] = {}
        self.rejected: set[str] = set()  # verdict other than SUCCESS
        self.failed: dict[str, str] = {}  # verdict UNSCHEDULABLE (or ERROR): its message
        self.unresolvable: dict[str, str] = {}  # verdict UNSCHEDULABLE_AND_UNRESOLVABLE: its message
        self.reasons: dict[str, str] = {}  # rejected node -> rejection_reason, for metrics
        self.totals: dict[str, int] = {}
        self.scaled: dict[str, int] = {}  # totals as extender priorities (0..9)
        self.host_json: dict[str, bytes] = {}  # host_priority_json(node, scaled)

    def record_verdict(self, name: str, status: Status) -> None:
        self.verdicts[name] = status
        if status.ok:
            return
        self.rejected.add(name)
        if status.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
            self.unresolvable[name] = status.message()
        else:
            self.failed[name] = status.message()
        self.reasons[name] = rejection_reason(status)

    def rejection(self, name: str) -> tuple[bool, str] | None:
        """(unresolvable?, message) for a rejected node; None when it fits."""
        message = self.unresolvable.get(name)
        if message is not None:
            return True, message
        message = self.failed.get(name)
        return (False, message) if message is not None else None

    def forget(self, name: str) -> None:
        if self.verdicts.pop(name, None) is not None:
            self.rejected.discard(name)
            self.failed.pop(name, None)
            self.unresolvable.pop(name, None)
            self.reasons.pop(name, None)
        if self.totals.pop(name, None) is not None:
            self.scaled.pop(name, None)
            self.host_json.pop(name, None)


class DecisionCache:
    """Framework.filter_nodes and Framework.prioritize, remembered per shape and node.

    Bounded (least recently used shapes are dropped); subscribe it to the Allocator. `generation`
    changes whenever everything is dropped (a new framework, a new default pool), so that what
    was built on earlier answers (tfcore.sched.extender.memo) can tell.
    """

    def __init__(self, framework: Framework, *, enabled: bool = True, max_shapes: int = MAX_SHAPES) -> None:
        self.framework = framework
        self.enabled = enabled
        self.max_shapes = max_shapes
        self.generation = 0
        self._shapes: OrderedDict[RequestShape, ShapeDecisions] = OrderedDict()

    def use(self, framework: Framework) -> None:
        """A new framework (a reloaded config): nothing the old one said holds."""
        self.framework = framework
        self.clear()

    def clear(self) -> None:
        self._shapes.clear()
        self.generation += 1

    def for_shape(self, shape: RequestShape) -> ShapeDecisions:
        """The shape's entry; disabled, a fresh one each call."""
        if not self.enabled:
            return ShapeDecisions()
        entry = self._shapes.get(shape)
        if entry is None:
            entry = self._shapes[shape] = ShapeDecisions()
            if len(self._shapes) > self.max_shapes:
                self._shapes.popitem(last=False)
        else:
            self._shapes.move_to_end(shape)
        return entry

    def filter(self, entry: ShapeDecisions, state: CycleState, request: PodRequest, unknown: Iterable[str]) -> None:
        """Verdicts for the nodes in `unknown` (no verdict in `entry` yet), in that order."""
        verdicts = self.framework.filter_nodes(state, request, unknown)
        entry.verdicts.update(verdicts)
        record = entry.record_verdict
        for name in [n for n, status in verdicts.items() if status is not SUCCESS]:  # few: look closer
            record(name, verdicts[name])

    def score(self, entry: ShapeDecisions, state: CycleState, request: PodRequest, unscored: Iterable[str]) -> None:
        """Scores for the nodes in `unscored` (known nodes only; others stay unscored), in that order."""
        framework = self.framework
        scale = max(1, 100 * sum(weight for _, weight in framework.scorers))
        top = MAX_EXTENDER_PRIORITY - 1
        totals = framework.prioritize(state, request, unscored)
        scaled = {name: (total if total > 0 else 0) * top // scale for name, total in totals.items()}
        entry.totals.update(totals)
        entry.scaled.update(scaled)
        entry.host_json.update(host_priorities_json(scaled))

    # AllocatorListener
    def node_changed(self, node: NodeState) -> None:
        name = node.name
        for entry in self._shapes.values():
            entry.forget(name)

    def node_removed(self, node: NodeState) -> None:
        self.node_changed(node)
