"""The scheduler's state and verbs: allocator + framework + config, answering the extender and the admin API.

Everything here runs on the event loop; the allocator is only touched between awaits, so a
filter/reserve sequence is atomic. Bind awaits the API (annotations, then pods/binding) after
the allocation is recorded, and forgets it if the API refuses.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping
from itertools import repeat
from typing import Any, Final, Protocol

from daemons.scheduler.decisions import (
    DecisionCache,
    FilterView,
    PriorityView,
    Shape,
    ShapeDecisions,
    host_priority_json,
    rejection_reason,
    shape_of,
)
from daemons.scheduler.metrics import SchedulerMetrics
from daemons.scheduler.wire import (
    MAX_EXTENDER_PRIORITY,
    EncodedExtenderArgs,
    ExtenderArgs,
    ExtenderBindingArgs,
    ExtenderBindingResult,
    ExtenderFilterResult,
    HostPriority,
    encoder,
)
from tfcore.admission.inject import pod_nvidia_gpus
from tfcore.config.scheduler import SCHEDULER_NAME, SchedulerConfig
from tfcore.model.errors import ValidationError
from tfcore.sched import CycleState, Framework, PodRequest, Status, default_registry, pod_request
from tfcore.sched.allocator import Allocator
from tfcore.sched.framework import Code, PluginUse
from tfcore.sched.plugins import default_plugin_uses
from tfcore.sched.request import RequestParser

log = logging.getLogger(__name__)

NOT_MANAGED: Final = "node has no GPUs managed by tensor-fusion"
RECENT_PODS: Final = 4096
_UNKNOWN_NODE: Final = Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, (NOT_MANAGED,))


class BindError(Exception):
    """The API refused to record the allocation or to bind the pod."""


class ClusterWriter(Protocol):
    """Where bind makes the placement real (the API server, or the in-memory cluster)."""

    async def annotate_pod(self, namespace: str, name: str, annotations: Mapping[str, str | None]) -> None: ...

    async def bind_pod(self, namespace: str, name: str, uid: str, node: str) -> None: ...


def wants_gpu(pod: Mapping[str, Any]) -> bool:
    """Is this a tensor-fusion pod for our scheduler (else the extender passes it through)?"""
    spec = pod.get("spec") or {}
    if not isinstance(spec, Mapping) or spec.get("schedulerName") != SCHEDULER_NAME:
        return False
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    return isinstance(annotations, Mapping) and any(str(k).startswith("tensor-fusion.ai/") for k in annotations)


class SchedulerService:
    def __init__(
        self,
        allocator: Allocator,
        config: SchedulerConfig | None = None,
        *,
        reuse_decisions: bool = True,
        metrics: SchedulerMetrics | None = None,
        native_gpu_pods: bool = False,
    ) -> None:
        self.allocator = allocator
        self.native_gpu_pods = native_gpu_pods
        self.metrics = metrics if metrics is not None else SchedulerMetrics()
        self.metrics.watch_allocator(allocator)
        self.config = config
        self.reuse_decisions = reuse_decisions
        self.decisions = DecisionCache()
        allocator.subscribe(self.decisions)
        self.framework = self._framework(config)
        self.pending: dict[str, dict[str, Any]] = {}  # uid -> pod, from the cluster (pods not yet bound)
        self._recent: OrderedDict[str, dict[str, Any]] = OrderedDict()  # uid -> pod seen by filter
        self._binding: set[str] = set()
        self._requests: OrderedDict[tuple[str, str], tuple[PodRequest, Shape]] = OrderedDict()
        self._parse = RequestParser()

    def _framework(self, config: SchedulerConfig | None) -> Framework:
        uses: list[PluginUse] = config.plugin_uses() if config is not None else default_plugin_uses()
        return Framework(self.allocator, uses, default_registry())

    def apply_config(self, config: SchedulerConfig) -> None:
        """A reloaded scheduler-config.yaml: new plugin args from the next decision on."""
        framework = self._framework(config)
        self.framework.close()
        self.framework, self.config = framework, config
        self.decisions.clear()
        log.info("scheduler config applied: %s", ", ".join(u.name for u in config.plugin_uses()))

    def _max_total(self) -> int:
        return max(1, 100 * sum(weight for _, weight in self.framework.scorers))

    # ---- extender: filter ---------------------------------------------------------------------

    def filter(self, args: ExtenderArgs, *, names_json: bytes | None = None) -> ExtenderFilterResult:
        """The extender's filter verb. `names_json`: NodeNames as received, for reusing the reply."""
        names = args.candidate_names()
        pod = args.pod
        if not isinstance(pod, dict) or not wants_gpu(pod):
            if self.native_gpu_pods and isinstance(pod, dict) and pod_nvidia_gpus(pod.get("spec") or {}):
                return self._native_filter(args, names)
            return self._filtered(args, names, {}, {})
        try:
            request, shape = self._request(pod)
        except ValidationError as exc:
            return ExtenderFilterResult(node_names=[], error=f"bad pod: {exc}")
        self._remember(pod)
        state = CycleState()
        pre = self.framework.run_pre_filters(state, request)
        if not pre.ok:
            rejected = dict.fromkeys(names, pre.message())
            if names:
                self.metrics.rejected({rejection_reason(pre): len(names)})
            if pre.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
                return self._filtered(args, [], {}, rejected)
            return self._filtered(args, [], rejected, {})
        if not self.reuse_decisions:
            return self._filter_each(args, state, request, names)
        entry = self.decisions.for_shape(shape)
        candidates = set(names)
        missing = candidates - entry.verdicts.keys()
        if missing:
            known, framework = self.allocator.nodes, self.framework
            for name in _in_order(missing, names):  # the order the naive path sees them in
                node = known.get(name)
                entry.record_verdict(
                    name, framework.filter_node(state, request, node) if node is not None else _UNKNOWN_NODE
                )
        refused = entry.rejected & candidates if len(entry.rejected) > len(candidates) else candidates & entry.rejected
        if not refused:  # the common case: every candidate fits, nothing to explain
            everything = self._filtered(args, list(names), {}, {})
            return self._keep_view(entry, args, everything, names_json=names_json, members=candidates, reasons={})
        if len(candidates) == len(names) and len(refused) <= len(names) // 8:
            fits = list(names)
            for name in refused:
                fits.remove(name)
            ordered = _in_order(refused, names)
        else:
            fits = [n for n in names if n not in refused]
            ordered = [n for n in names if n in refused]
        failed = {n: m for n in ordered if (m := entry.failed.get(n)) is not None}
        unresolvable = {n: m for n in ordered if (m := entry.unresolvable.get(n)) is not None}
        reasons: dict[str, int] = {}
        for name in ordered:
            reason = entry.reasons[name]
            reasons[reason] = reasons.get(reason, 0) + 1
        self.metrics.rejected(reasons)
        return self._keep_view(
            entry,
            args,
            self._filtered(args, fits, failed, unresolvable),
            names_json=names_json,
            members=candidates,
            reasons=reasons,
        )

    def _native_filter(self, args: ExtenderArgs, names: list[str]) -> ExtenderFilterResult:
        """NVIDIA coexistence: a native nvidia.com/gpu pod only goes where no TensorFusion worker
        holds a GPU, since the device plugin may hand it any GPU it thinks free."""
        failed = {n: reason for n in names if (reason := self._native_refusal(n)) is not None}
        if failed:
            self.metrics.rejected({"native": len(failed)})
        return self._filtered(args, [n for n in names if n not in failed], failed, {})

    def _native_refusal(self, name: str) -> str | None:
        node = self.allocator.nodes.get(name)
        if node is None or not node.workers:
            return None
        return (
            f"{len(node.workers)} TensorFusion worker(s) hold GPUs on this node; native nvidia.com/gpu pods go "
            "to nodes without them (NVIDIA GPU Operator coexistence)"
        )

    @staticmethod
    def _keep_view(
        entry: ShapeDecisions,
        args: ExtenderArgs,
        result: ExtenderFilterResult,
        *,
        names_json: bytes | None,
        members: set[str],
        reasons: dict[str, int],
    ) -> ExtenderFilterResult:
        names = args.node_names
        if names is not None:
            encoded = names_json if names_json is not None else encoder.encode(names)
            entry.filter_view = FilterView(names, encoded, members, result, reasons)
        return result

    def filter_reply(self, args: EncodedExtenderArgs) -> tuple[bytes, bool]:
        """filter, encoded (and whether it succeeded): the last reply again when nothing it said has changed."""
        names_json = args.names_json()
        if self.reuse_decisions and names_json is not None:
            body = self._unchanged_filter_reply(args.pod, names_json)
            if body is not None:
                return body, True
        result = self.filter(args.decoded(), names_json=names_json)
        return encoder.encode(result), not result.error

    def _unchanged_filter_reply(self, pod: Any, names_json: bytes) -> bytes | None:
        if not isinstance(pod, dict) or not wants_gpu(pod):
            return None
        try:
            request, shape = self._request(pod)
        except ValidationError:
            return None
        state = CycleState()
        if not self.framework.run_pre_filters(state, request).ok:
            return None
        entry = self.decisions.for_shape(shape)
        view = entry.filter_view
        if view is None or names_json != view.names_json:
            return None
        if view.stale:
            known, framework = self.allocator.nodes, self.framework
            for name in _in_order(view.stale, view.names) if len(view.stale) > 1 else view.stale:
                if name not in entry.verdicts:
                    node = known.get(name)
                    entry.record_verdict(
                        name, framework.filter_node(state, request, node) if node is not None else _UNKNOWN_NODE
                    )
                message = entry.failed.get(name)
                now = (False, message) if message is not None else None
                if name in entry.unresolvable:
                    now = (True, entry.unresolvable[name])
                if now != view.rejected.get(name):
                    entry.filter_view = None
                    return None
            view.stale.clear()
        self._remember(pod)
        self.metrics.rejected(view.reasons)
        if view.body is None:
            view.body = encoder.encode(view.result)
        return view.body

    def _filter_each(
        self, args: ExtenderArgs, state: CycleState, request: PodRequest, names: list[str]
    ) -> ExtenderFilterResult:
        """The reference path (reuse_decisions off): every filter plugin on every candidate."""
        known, framework = self.allocator.nodes, self.framework
        fits: list[str] = []
        failed: dict[str, str] = {}
        unresolvable: dict[str, str] = {}
        reasons: dict[str, int] = {}
        for name in names:
            node = known.get(name)
            status = framework.filter_node(state, request, node) if node is not None else _UNKNOWN_NODE
            if status.code is Code.SUCCESS:
                fits.append(name)
                continue
            if status.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
                unresolvable[name] = status.message()
            else:
                failed[name] = status.message()
            reason = rejection_reason(status)
            reasons[reason] = reasons.get(reason, 0) + 1
        self.metrics.rejected(reasons)
        return self._filtered(args, fits, failed, unresolvable)

    @staticmethod
    def _filtered(
        args: ExtenderArgs, fits: list[str], failed: dict[str, str], unresolvable: dict[str, str]
    ) -> ExtenderFilterResult:
        if args.node_names is None and args.nodes is not None:  # not nodeCacheCapable: answer with Nodes
            keep = set(fits)
            items = [n for n in args.nodes.get("items") or [] if (n.get("metadata") or {}).get("name") in keep]
            nodes = {**args.nodes, "items": items}
            return ExtenderFilterResult(nodes=nodes, failed_nodes=failed, failed_and_unresolvable_nodes=unresolvable)
        return ExtenderFilterResult(node_names=fits, failed_nodes=failed, failed_and_unresolvable_nodes=unresolvable)

    # ---- extender: prioritize -------------------------------------------------------------------

    def prioritize(self, args: EncodedExtenderArgs) -> bytes:
        """The encoded HostPriorityList, 0..10 per node: the node our framework would choose gets 10,
        the others their total scaled to 0..9."""
        pod = args.pod
        if not isinstance(pod, dict) or not wants_gpu(pod):
            return _zero_priorities(args.decoded().candidate_names())
        try:
            request, shape = self._request(pod)
        except ValidationError:
            return _zero_priorities(args.decoded().candidate_names())
        state = CycleState()
        if not self.framework.run_pre_filters(state, request).ok:
            return _zero_priorities(args.decoded().candidate_names())
        if not self.reuse_decisions:
            return self._prioritize_each(state, request, args.decoded().candidate_names())
        entry = self.decisions.for_shape(shape)
        totals, view = entry.totals, entry.priority_view
        names_json = args.names_json()
        if view is not None and names_json == view.names_json and self._patch(entry, view, state, request):
            names = view.names
            if view.top_count == 1:
                best = view.values.index(view.top)
            else:  # ties: smallest name, as Framework
                best = names.index(min(n for n, v in zip(names, view.values, strict=True) if v == view.top))
            return view.reply(best)
        names = args.decoded().candidate_names()
        candidates = set(names)
        self._score(entry, state, request, candidates - totals.keys(), names)
        if not any(map(totals.__contains__, names)):  # no known node among the candidates
            return _zero_priorities(names)
        values = list(map(totals.get, names, repeat(-1)))
        items = list(map(entry.host_json.get, names))
        if None in items:  # candidates that are not ours score 0
            items = [item or host_priority_json(n, 0) for n, item in zip(names, items, strict=True)]
        one_digit = max(map(entry.scaled.get, names, repeat(0))) < MAX_EXTENDER_PRIORITY
        if names_json is not None and len(candidates) == len(names) and one_digit:
            entry.priority_view = PriorityView(names, names_json, values, items)  # type: ignore[arg-type]
        best_total = max(values)
        if values.count(best_total) == 1:
            best = values.index(best_total)
        else:  # ties: smallest name, as Framework
            best = names.index(min(n for n, v in zip(names, values, strict=True) if v == best_total))
        items[best] = host_priority_json(names[best], MAX_EXTENDER_PRIORITY)
        return b"[" + b",".join(items) + b"]"  # type: ignore[arg-type]

    def _patch(self, entry: ShapeDecisions, view: PriorityView, state: CycleState, request: PodRequest) -> bool:
        """Bring `view` up to date with its changed nodes; False (and the view dropped) if it cannot be."""
        if view.stale:
            totals, scaled = entry.totals, entry.scaled
            self._score(entry, state, request, view.stale, view.names)
            for name in sorted(view.stale):  # one order, whatever the hash seed
                score = scaled.get(name, 0)
                if score >= MAX_EXTENDER_PRIORITY:
                    entry.priority_view = None
                    return False
                view.patch(name, totals.get(name, -1), score)
            view.stale.clear()
        if not any(map(entry.totals.__contains__, view.names)):  # no known node among the candidates any more
            entry.priority_view = None
            return False
        return True

    def _score(
        self, entry: ShapeDecisions, state: CycleState, request: PodRequest, unscored: set[str], names: list[str]
    ) -> None:
        """Score the known nodes among `unscored` (in the order of `names`) into the shape's entry."""
        known = self.allocator.nodes
        missing = [known[n] for n in _in_order(unscored, names) if n in known] if unscored else []
        if missing:
            scale, top = self._max_total(), MAX_EXTENDER_PRIORITY - 1
            for name, total in self.framework.score_nodes(state, request, missing).items():
                entry.record_score(name, total, max(0, total) * top // scale)

    def _prioritize_each(self, state: CycleState, request: PodRequest, names: list[str]) -> bytes:
        """The reference path (reuse_decisions off): every scorer on every candidate, encoded as structs."""
        known = self.allocator.nodes
        scale, top = self._max_total(), MAX_EXTENDER_PRIORITY - 1
        # Each node once, even if named twice (kube-scheduler does not, but a total must not double).
        totals = self.framework.score_nodes(state, request, [known[n] for n in dict.fromkeys(names) if n in known])
        if not totals:
            return _zero_priorities(names)
        best_total = max(totals.get(n, -1) for n in names)
        best = min(n for n in names if totals.get(n, -1) == best_total)  # ties: smallest name, as Framework
        out = [HostPriority(n, max(0, totals[n]) * top // scale if n in totals else 0) for n in names]
        for item in out:
            if item.host == best:
                item.score = MAX_EXTENDER_PRIORITY
                break
        return encoder.encode(out)

    # ---- extender: bind -----------------------------------------------------------------------

    async def bind(self, args: ExtenderBindingArgs, writer: ClusterWriter) -> ExtenderBindingResult:
        uid = args.pod_uid
        pod = self.pending.get(uid) or self._recent.get(uid)
        where = f"pod {args.pod_namespace}/{args.pod_name}"
        if pod is None:
            # Its annotations decide the allocation: never bind a pod we have not seen.
            return ExtenderBindingResult(error=f"{where} (uid {uid!r}) is unknown to the scheduler yet; retry")
        if not wants_gpu(pod):  # kube-scheduler delegates every binding of this profile to us
            native = pod_nvidia_gpus(pod.get("spec") or {}) if self.native_gpu_pods else 0
            if native and (refusal := self._native_refusal(args.node)) is not None:
                return ExtenderBindingResult(error=f"{where}: {refusal}")  # a TF pod got there since filter
            if native:  # before the await: no TF pod can be placed there while the device plugin chooses
                self.allocator.set_native_pod(uid, args.node, native)
            try:
                await writer.bind_pod(args.pod_namespace, args.pod_name, uid, args.node)
            except BindError as exc:
                if native:
                    self.allocator.forget_native_pod(uid)
                return ExtenderBindingResult(error=f"{where}: {exc}")
            return ExtenderBindingResult()
        try:
            request, _ = self._request(pod)
        except ValidationError as exc:
            return ExtenderBindingResult(error=f"{where}: {exc}")
        if request.key in self._binding:
            return ExtenderBindingResult(error=f"{where}: a binding is already in progress")
        existed = request.key in self.allocator.allocations
        result = self.framework.reserve_on(request, args.node)
        if not result.ok:
            return ExtenderBindingResult(error=f"{where} does not fit on {args.node}: {result.status.message()}")
        if result.node != args.node:
            return ExtenderBindingResult(error=f"{where} already holds GPUs on {result.node}, not {args.node}")
        self._binding.add(request.key)
        try:
            await writer.annotate_pod(args.pod_namespace, args.pod_name, result.annotations())
            await writer.bind_pod(args.pod_namespace, args.pod_name, uid, args.node)
        except BindError as exc:
            if not existed:
                self.framework.forget(request.key)
                await _undo_annotations(writer, args, result.annotations())
            return ExtenderBindingResult(error=f"{where}: {exc}")
        finally:
            self._binding.discard(request.key)
        self.pending.pop(uid, None)
        self._recent.pop(uid, None)
        return ExtenderBindingResult()

    def binding_in_progress(self, key: str) -> bool:
        return key in self._binding

    def _request(self, pod: Mapping[str, Any]) -> tuple[PodRequest, Shape]:
        """pod_request and its shape, once per pod version (filter, prioritize and bind see the same pod)."""
        meta = pod.get("metadata") or {}
        uid, version = meta.get("uid"), meta.get("resourceVersion")
        if not isinstance(uid, str) or not uid:
            request = self._parse(pod)
            return request, shape_of(request)
        key = (uid, str(version))
        parsed = self._requests.get(key)
        if parsed is None:
            request = self._parse(pod)
            parsed = self._requests[key] = (request, shape_of(request))
            if len(self._requests) > RECENT_PODS:
                self._requests.popitem(last=False)
        return parsed

    def _remember(self, pod: dict[str, Any]) -> None:
        uid = (pod.get("metadata") or {}).get("uid")
        if not isinstance(uid, str) or not uid:
            return
        self._recent[uid] = pod
        self._recent.move_to_end(uid)
        if len(self._recent) > RECENT_PODS:
            self._recent.popitem(last=False)

    # ---- admin API ----------------------------------------------------------------------------

    def simulate(self, pod: Mapping[str, Any]) -> dict[str, Any]:
        """simulate-schedule: the decision for `pod` with every filter step and reason; allocates nothing."""
        return self.framework.schedule(pod_request(pod), dry_run=True, diagnose=True).to_builtins()

    def allocation(self) -> dict[str, Any]:
        return self.allocator.snapshot()


def _in_order(subset: set[str], names: list[str]) -> list[str]:
    """The members of `subset` (drawn from `names`) in the order of `names`, cheaply when it is small."""
    if len(subset) == 1:
        return list(subset)
    if len(subset) <= 16:
        position = {n: i for i, n in enumerate(names) if n in subset} if len(names) <= 64 else None
        if position is None:
            return sorted(subset, key=names.index)
        return sorted(subset, key=position.__getitem__)
    return list(dict.fromkeys(n for n in names if n in subset))


def _zero_priorities(names: list[str]) -> bytes:
    return encoder.encode([HostPriority(n, 0) for n in names])


async def _undo_annotations(writer: ClusterWriter, args: ExtenderBindingArgs, written: Mapping[str, str]) -> None:
    try:
        await writer.annotate_pod(args.pod_namespace, args.pod_name, dict.fromkeys(written))
    except BindError as exc:  # the pod stays unbound, so a restart skips it (see ClusterMirror)
        log.warning("could not remove the allocation annotations of %s/%s: %s", args.pod_namespace, args.pod_name, exc)
