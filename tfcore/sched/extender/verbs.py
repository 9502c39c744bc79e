"""The kube-scheduler extender's verbs over a Framework: filter, prioritize and the bind decision.

Pure: a request in, an answer out; the daemon (daemons/scheduler) does the HTTP and the API
calls. A pod that is not ours passes through (every node fits, all score 0). For ours, PreFilter
runs on every call; per-node verdicts and scores come from a DecisionCache (the Framework's
filter_nodes and prioritize, remembered per request shape), and, when a ReplyMemo is given,
the last encoded reply per shape is reused while the nodes it names have not changed.
`reuse_decisions=False` turns both off: the same code then asks the Framework about every node.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, Final, cast

from tfcore.model.errors import ValidationError
from tfcore.model.pods import SCHEDULER_NAME, pod_nvidia_gpus
from tfcore.sched.allocator import Allocator
from tfcore.sched.extender.cache import DecisionCache, ShapeDecisions, host_priority_json, in_order, rejection_reason
from tfcore.sched.extender.memo import PriorityView, ReplyMemo
from tfcore.sched.extender.wire import (
    MAX_EXTENDER_PRIORITY,
    EncodedExtenderArgs,
    ExtenderArgs,
    ExtenderFilterResult,
    HostPriority,
    encoder,
)
from tfcore.sched.framework import Code, CycleState, Framework, ScheduleResult
from tfcore.sched.request import PodRequest, RequestParser, RequestShape, shape_key

RECENT_PODS: Final = 4096


def wants_gpu(pod: Mapping[str, Any]) -> bool:
    """Is this a tensor-fusion pod for our scheduler (else the extender passes it through)?"""
    spec = pod.get("spec") or {}
    if not isinstance(spec, Mapping) or spec.get("schedulerName") != SCHEDULER_NAME:
        return False
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    return isinstance(annotations, Mapping) and any(str(k).startswith("tensor-fusion.ai/") for k in annotations)


@dataclass(slots=True)
class FilterAnswer:
    """A filter reply, the rejections to count (reason -> nodes) and the pod's request when it is ours."""

    result: ExtenderFilterResult
    reasons: dict[str, int] = field(default_factory=dict)
    request: PodRequest | None = None


@dataclass(slots=True)
class EncodedFilterAnswer:
    body: bytes
    ok: bool
    reasons: dict[str, int]
    request: PodRequest | None


class Extender:
    def __init__(
        self,
        allocator: Allocator,
        framework: Framework,
        *,
        reuse_decisions: bool = True,
        native_gpu_pods: bool = False,
    ) -> None:
        self.allocator = allocator
        self.native_gpu_pods = native_gpu_pods
        self.cache = DecisionCache(framework, enabled=reuse_decisions)
        allocator.subscribe(self.cache)
        self.memo = ReplyMemo(self.cache) if reuse_decisions else None
        if self.memo is not None:
            allocator.subscribe(self.memo)
        self._requests: OrderedDict[tuple[str, str], tuple[PodRequest, RequestShape]] = OrderedDict()
        self._parse = RequestParser()
        self._shapes: dict[Hashable, RequestShape] = {}  # shape_key -> the one RequestShape

    @property
    def framework(self) -> Framework:
        return self.cache.framework

    def use(self, framework: Framework) -> None:
        """A reloaded config: new plugins from the next call on, nothing remembered from the old ones."""
        self.cache.use(framework)

    def forget_decisions(self) -> None:
        """Something every verdict may depend on changed (the default pool)."""
        self.cache.clear()

    def request(self, pod: Mapping[str, Any]) -> tuple[PodRequest, RequestShape]:
        """The pod's request and shape, parsed once per pod version (filter, prioritize and bind see
        the same pod). ValidationError when its annotations are bad."""
        meta = pod.get("metadata") or {}
        uid, version = meta.get("uid"), meta.get("resourceVersion")
        if not isinstance(uid, str) or not uid:
            request = self._parse(pod)
            return request, self._shape(request)
        key = (uid, str(version))
        parsed = self._requests.get(key)
        if parsed is None:
            request = self._parse(pod)
            parsed = self._requests[key] = (request, self._shape(request))
            if len(self._requests) > RECENT_PODS:
                self._requests.popitem(last=False)
        return parsed

    def _shape(self, request: PodRequest) -> RequestShape:
        """One object per shape: the cache and memo look it up several times per call, and a
        dict finds the very same key without comparing fields."""
        key = shape_key(request)
        found = self._shapes.get(key)
        if found is None:
            if len(self._shapes) >= RECENT_PODS:
                self._shapes.clear()
            found = self._shapes[key] = request.shape
        return found

    # ---- filter -------------------------------------------------------------------------------

    def filter(self, args: ExtenderArgs, *, names_json: bytes | None = None) -> FilterAnswer:
        """`names_json`: NodeNames as received, for the memo (encoded here when not given)."""
        names = args.candidate_names()
        pod = args.pod
        if not isinstance(pod, dict) or not wants_gpu(pod):
            if self.native_gpu_pods and isinstance(pod, dict) and pod_nvidia_gpus(pod.get("spec") or {}):
                return self._native_filter(args, names)
            return FilterAnswer(_filtered(args, names, {}, {}))
        try:
            request, shape = self.request(pod)
        except ValidationError as exc:
            return FilterAnswer(ExtenderFilterResult(node_names=[], error=f"bad pod: {exc}"))
        state = CycleState()
        pre = self.framework.run_pre_filters(state, request)
        if not pre.ok:
            rejected = dict.fromkeys(names, pre.message())
            counted = {rejection_reason(pre): len(names)} if names else {}
            if pre.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
                return FilterAnswer(_filtered(args, [], {}, rejected), counted, request)
            return FilterAnswer(_filtered(args, [], rejected, {}), counted, request)
        entry = self.cache.for_shape(shape)
        candidates = set(names)
        missing = candidates - entry.verdicts.keys()
        if missing:  # in the order a node-by-node scan sees them
            self.cache.filter(
                entry, state, request, names if len(missing) == len(candidates) else in_order(missing, names)
            )
        refused = entry.rejected & candidates if len(entry.rejected) > len(candidates) else candidates & entry.rejected
        if not refused:  # the common case: every candidate fits, nothing to explain
            answer = FilterAnswer(_filtered(args, list(names), {}, {}), {}, request)
            self._keep(shape, args, names_json, candidates, answer)
            return answer
        if len(candidates) == len(names) and len(refused) <= len(names) // 8:
            fits = list(names)
            for name in refused:
                fits.remove(name)
            ordered = in_order(refused, names)
        else:
            fits = [n for n in names if n not in refused]
            ordered = [n for n in names if n in refused]
        failed = {n: m for n in ordered if (m := entry.failed.get(n)) is not None}
        unresolvable = {n: m for n in ordered if (m := entry.unresolvable.get(n)) is not None}
        reasons: dict[str, int] = {}
        for name in ordered:
            reason = entry.reasons[name]
            reasons[reason] = reasons.get(reason, 0) + 1
        answer = FilterAnswer(_filtered(args, fits, failed, unresolvable), reasons, request)
        self._keep(shape, args, names_json, candidates, answer)
        return answer

    def _keep(
        self,
        shape: RequestShape,
        args: ExtenderArgs,
        names_json: bytes | None,
        members: set[str],
        answer: FilterAnswer,
    ) -> None:
        """Hand the reply to the memo (NodeNames calls only: those are what it matches)."""
        if self.memo is not None and args.node_names is not None:
            encoded = names_json if names_json is not None else encoder.encode(args.node_names)
            self.memo.keep_filter(
                shape,
                names=args.node_names,
                names_json=encoded,
                members=members,
                result=answer.result,
                reasons=answer.reasons,
            )

    def filter_reply(self, args: EncodedExtenderArgs) -> EncodedFilterAnswer:
        """filter, encoded: the memo's last reply when nothing it said has changed. ValidationError
        (a 400) when Nodes or NodeNames is malformed."""
        names_json = args.names_json()
        if self.memo is not None and names_json is not None:
            reused = self._reused_filter_reply(self.memo, args.pod, names_json)
            if reused is not None:
                return reused
        answer = self.filter(args.decoded(), names_json=names_json)
        result = answer.result
        return EncodedFilterAnswer(encoder.encode(result), not result.error, answer.reasons, answer.request)

    def _reused_filter_reply(self, memo: ReplyMemo, pod: Any, names_json: bytes) -> EncodedFilterAnswer | None:
        if not isinstance(pod, dict) or not wants_gpu(pod):
            return None
        try:
            request, shape = self.request(pod)
        except ValidationError:
            return None
        state = CycleState()
        if not self.framework.run_pre_filters(state, request).ok:
            return None
        entry = self.cache.for_shape(shape)

        def look_up(names: list[str]) -> None:
            self.cache.filter(entry, state, request, names)

        reused = memo.filter_reply(shape, names_json, entry, look_up)
        if reused is None:
            return None
        body, reasons = reused
        return EncodedFilterAnswer(body, True, reasons, request)

    def _native_filter(self, args: ExtenderArgs, names: list[str]) -> FilterAnswer:
        """NVIDIA coexistence: a native nvidia.com/gpu pod only goes where no TensorFusion worker
        holds a GPU, since the device plugin may hand it any GPU it thinks free."""
        failed = {n: reason for n in names if (reason := self.native_refusal(n)) is not None}
        reasons = {"native": len(failed)} if failed else {}
        return FilterAnswer(_filtered(args, [n for n in names if n not in failed], failed, {}), reasons)

    def native_refusal(self, name: str) -> str | None:
        node = self.allocator.nodes.get(name)
        if node is None or not node.workers:
            return None
        return (
            f"{len(node.workers)} TensorFusion worker(s) hold GPUs on this node; native nvidia.com/gpu pods go "
            "to nodes without them (NVIDIA GPU Operator coexistence)"
        )

    # ---- prioritize ---------------------------------------------------------------------------

    def prioritize_reply(self, args: EncodedExtenderArgs) -> bytes:
        """The encoded HostPriorityList, 0..10 per node: the node our framework would choose gets 10,
        the others their total scaled to 0..9. ValidationError (a 400) for a malformed body."""
        pod = args.pod
        if not isinstance(pod, dict) or not wants_gpu(pod):
            return _zero_priorities(args.decoded().candidate_names())
        try:
            request, shape = self.request(pod)
        except ValidationError:
            return _zero_priorities(args.decoded().candidate_names())
        state = CycleState()
        if not self.framework.run_pre_filters(state, request).ok:
            return _zero_priorities(args.decoded().candidate_names())
        entry = self.cache.for_shape(shape)
        names_json = args.names_json()
        memo = self.memo
        if memo is not None:
            view = memo.priority_view(shape, names_json)
            if view is not None and self._patch(entry, view, state, request):
                return view.reply(view.best())
            if view is not None:
                memo.drop_priority(shape)
        names = args.decoded().candidate_names()
        candidates = set(names)
        totals = entry.totals
        unscored = candidates - totals.keys()
        if unscored:
            self.cache.score(
                entry, state, request, names if len(unscored) == len(candidates) else in_order(unscored, names)
            )
        if not any(map(totals.__contains__, names)):  # no known node among the candidates
            return _zero_priorities(names)
        values = list(map(totals.get, names, repeat(-1)))
        found = list(map(entry.host_json.get, names))
        if None in found:  # candidates that are not ours score 0
            items = [item or host_priority_json(n, 0) for n, item in zip(names, found, strict=True)]
        else:
            items = cast(list[bytes], found)
        one_digit = max(map(entry.scaled.get, names, repeat(0))) < MAX_EXTENDER_PRIORITY
        if memo is not None and names_json is not None and len(candidates) == len(names) and one_digit:
            memo.keep_priority(shape, PriorityView(names, names_json, values, items))
        best_total = max(values)
        if values.count(best_total) == 1:
            best = values.index(best_total)
        else:  # ties: smallest name, as Framework
            best = names.index(min(n for n, v in zip(names, values, strict=True) if v == best_total))
        items[best] = host_priority_json(names[best], MAX_EXTENDER_PRIORITY)
        return b"[" + b",".join(items) + b"]"

    def _patch(self, entry: ShapeDecisions, view: PriorityView, state: CycleState, request: PodRequest) -> bool:
        """Bring `view` up to date with its changed nodes; False if it cannot be."""
        if view.stale:
            totals, scaled = entry.totals, entry.scaled
            unscored = {n for n in view.stale if n not in totals}  # not stale - keys(): that walks every key
            if unscored:
                self.cache.score(entry, state, request, in_order(unscored, view.names))
            for name in sorted(view.stale):  # one order, whatever the hash seed
                score = scaled.get(name, 0)
                if score >= MAX_EXTENDER_PRIORITY:
                    return False
                view.patch(name, totals.get(name, -1), score)
            view.stale.clear()
        return any(map(entry.totals.__contains__, view.names))  # else: no known node among the candidates

    # ---- bind ---------------------------------------------------------------------------------

    def reserve(self, request: PodRequest, node: str, where: str) -> ScheduleResult | str:
        """Place the pod (`where`: how to name it) on the node kube-scheduler chose, its filters run
        again; why not, as text."""
        result = self.framework.reserve_on(request, node)
        if not result.ok:
            return f"{where} does not fit on {node}: {result.status.message()}"
        if result.node != node:
            return f"{where} already holds GPUs on {result.node}, not {node}"
        return result


def _filtered(
    args: ExtenderArgs, fits: list[str], failed: dict[str, str], unresolvable: dict[str, str]
) -> ExtenderFilterResult:
    if args.node_names is None and args.nodes is not None:  # not nodeCacheCapable: answer with Nodes
        keep = set(fits)
        items = [n for n in args.nodes.get("items") or [] if (n.get("metadata") or {}).get("name") in keep]
        nodes = {**args.nodes, "items": items}
        return ExtenderFilterResult(nodes=nodes, failed_nodes=failed, failed_and_unresolvable_nodes=unresolvable)
    return ExtenderFilterResult(node_names=fits, failed_nodes=failed, failed_and_unresolvable_nodes=unresolvable)


def _zero_priorities(names: list[str]) -> bytes:
    return encoder.encode([HostPriority(n, 0) for n in names])
