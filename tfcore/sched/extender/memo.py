"""The extender's last replies, as bytes, reused while what they say still holds.

kube-scheduler sends the same candidate list pod after pod. The verbs' answers for it are
kept encoded per request shape (a FilterView, a PriorityView), with the nodes that changed
since (AllocatorListener): the next call with the same list (the same NodeNames bytes) only
looks at those nodes. This is an optional last stage over the verbs (tfcore.sched.extender.
verbs): without it the same answers are built and encoded every time.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Final

from tfcore.sched.extender.cache import MAX_SHAPES, DecisionCache, ShapeDecisions, in_order
from tfcore.sched.extender.wire import ExtenderFilterResult, encoder
from tfcore.sched.request import RequestShape
from tfcore.sched.state import NodeState

DIGIT_ZERO: Final = 0x30


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
        self.body[self.digit_at[i]] = DIGIT_ZERO + scaled
        if total > self.top:
            self.top, self.top_count = total, 1
        elif total == self.top:
            self.top_count += old != total
        elif old == self.top:
            self.top_count -= 1
            if not self.top_count:
                self.top = max(self.values)
                self.top_count = self.values.count(self.top)

    def best(self) -> int:
        """The position of the best node: the highest total, ties to the smallest name (as Framework)."""
        if self.top_count == 1:
            return self.values.index(self.top)
        names = self.names
        return names.index(min(n for n, v in zip(names, self.values, strict=True) if v == self.top))

    def reply(self, best: int) -> bytes:
        """The body with the item at `best` scored MAX_EXTENDER_PRIORITY (10)."""
        at = self.digit_at[best]
        view = memoryview(self.body)
        return b"".join((view[:at], b"10", view[at + 1 :]))


class ShapeReplies:
    __slots__ = ("filter_view", "generation", "priority_view")

    def __init__(self, generation: int) -> None:
        self.generation = generation
        self.filter_view: FilterView | None = None
        self.priority_view: PriorityView | None = None


class ReplyMemo:
    """The last filter and prioritize reply per shape; subscribe it to the Allocator.

    Built on a DecisionCache: a changed node's verdict is looked up there again, and the memo
    drops everything when the cache does (its `generation` moves on).
    """

    def __init__(self, cache: DecisionCache, max_shapes: int = MAX_SHAPES) -> None:
        self.cache = cache
        self.max_shapes = max_shapes
        self._shapes: OrderedDict[RequestShape, ShapeReplies] = OrderedDict()

    def _replies(self, shape: RequestShape) -> ShapeReplies:
        generation = self.cache.generation
        replies = self._shapes.get(shape)
        if replies is None or replies.generation != generation:
            replies = self._shapes[shape] = ShapeReplies(generation)
            if len(self._shapes) > self.max_shapes:
                self._shapes.popitem(last=False)
        self._shapes.move_to_end(shape)
        return replies

    # ---- filter -------------------------------------------------------------------------------

    def filter_reply(
        self,
        shape: RequestShape,
        names_json: bytes,
        entry: ShapeDecisions,
        look_up: Callable[[list[str]], None],
    ) -> tuple[bytes, dict[str, int]] | None:
        """(the last reply, its rejection counts) when it was for these NodeNames bytes and every
        verdict it reported holds; `look_up(names)` fills `entry` with the verdicts of changed nodes."""
        replies = self._replies(shape)
        view = replies.filter_view
        if view is None or names_json != view.names_json:
            return None
        if view.stale:
            changed = in_order(view.stale, view.names)
            look_up([n for n in changed if n not in entry.verdicts])
            for name in changed:
                if entry.rejection(name) != view.rejected.get(name):
                    replies.filter_view = None
                    return None
            view.stale.clear()
        if view.body is None:
            view.body = encoder.encode(view.result)
        return view.body, view.reasons

    def keep_filter(
        self,
        shape: RequestShape,
        *,
        names: list[str],
        names_json: bytes,
        members: set[str],
        result: ExtenderFilterResult,
        reasons: dict[str, int],
    ) -> None:
        self._replies(shape).filter_view = FilterView(names, names_json, members, result, reasons)

    # ---- prioritize ---------------------------------------------------------------------------

    def priority_view(self, shape: RequestShape, names_json: bytes | None) -> PriorityView | None:
        view = self._replies(shape).priority_view
        return view if view is not None and names_json == view.names_json else None

    def keep_priority(self, shape: RequestShape, view: PriorityView) -> None:
        self._replies(shape).priority_view = view

    def drop_priority(self, shape: RequestShape) -> None:
        self._replies(shape).priority_view = None

    # AllocatorListener
    def node_changed(self, node: NodeState) -> None:
        name = node.name
        for replies in self._shapes.values():
            if replies.filter_view is not None and name in replies.filter_view.members:
                replies.filter_view.stale.add(name)
            if replies.priority_view is not None and name in replies.priority_view.position:
                replies.priority_view.stale.add(name)

    def node_removed(self, node: NodeState) -> None:
        self.node_changed(node)
