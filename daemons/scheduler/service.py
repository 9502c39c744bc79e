"""The scheduler's state and verbs: allocator + framework + config, answering the extender and the admin API.

Everything here runs on the event loop; the allocator is only touched between awaits, so a
filter/reserve sequence is atomic. Bind awaits the API (annotations, then pods/binding) after
the allocation is recorded, and forgets it if the API refuses.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Final, Protocol

from daemons.scheduler.decisions import DecisionCache, shape_of
from daemons.scheduler.wire import (
    MAX_EXTENDER_PRIORITY,
    ExtenderArgs,
    ExtenderBindingArgs,
    ExtenderBindingResult,
    ExtenderFilterResult,
    HostPriority,
)
from tfcore.config.scheduler import SCHEDULER_NAME, SchedulerConfig
from tfcore.model.errors import ValidationError
from tfcore.sched import CycleState, Framework, PodRequest, Status, default_registry, pod_request
from tfcore.sched.allocator import Allocator
from tfcore.sched.framework import Code, PluginUse
from tfcore.sched.plugins import default_plugin_uses

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
        self, allocator: Allocator, config: SchedulerConfig | None = None, *, reuse_decisions: bool = True
    ) -> None:
        self.allocator = allocator
        self.config = config
        self.reuse_decisions = reuse_decisions
        self.decisions = DecisionCache()
        allocator.subscribe(self.decisions)
        self.framework = self._framework(config)
        self.pending: dict[str, dict[str, Any]] = {}  # uid -> pod, from the cluster (pods not yet bound)
        self._recent: OrderedDict[str, dict[str, Any]] = OrderedDict()  # uid -> pod seen by filter
        self._binding: set[str] = set()
        self._requests: OrderedDict[tuple[str, str], PodRequest] = OrderedDict()

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

    def filter(self, args: ExtenderArgs) -> ExtenderFilterResult:
        names = args.candidate_names()
        pod = args.pod
        if not isinstance(pod, dict) or not wants_gpu(pod):
            return self._filtered(args, names, {}, {})
        try:
            request = self._request(pod)
        except ValidationError as exc:
            return ExtenderFilterResult(node_names=[], error=f"bad pod: {exc}")
        self._remember(pod)
        state = CycleState()
        pre = self.framework.run_pre_filters(state, request)
        if not pre.ok:
            rejected = dict.fromkeys(names, pre.message())
            if pre.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
                return self._filtered(args, [], {}, rejected)
            return self._filtered(args, [], rejected, {})
        fits: list[str] = []
        failed: dict[str, str] = {}
        unresolvable: dict[str, str] = {}
        for name, status in self._verdicts(state, request, names):
            if status.code is Code.SUCCESS:
                fits.append(name)
            elif status.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
                unresolvable[name] = status.message()
            else:
                failed[name] = status.message()
        return self._filtered(args, fits, failed, unresolvable)

    def _verdicts(self, state: CycleState, request: PodRequest, names: list[str]) -> list[tuple[str, Status]]:
        known = self.allocator.nodes
        framework = self.framework
        if not self.reuse_decisions:
            return [
                (n, framework.filter_node(state, request, known[n]) if n in known else _UNKNOWN_NODE) for n in names
            ]
        verdicts = self.decisions.for_shape(shape_of(request)).verdicts
        out: list[tuple[str, Status]] = []
        for name in names:
            status = verdicts.get(name)
            if status is None:
                node = known.get(name)
                status = framework.filter_node(state, request, node) if node is not None else _UNKNOWN_NODE
                verdicts[name] = status
            out.append((name, status))
        return out

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

    def prioritize(self, args: ExtenderArgs) -> list[HostPriority]:
        """0..10 per node: the node our framework would choose gets 10, the others their total scaled to 0..9."""
        names = args.candidate_names()
        pod = args.pod
        if not isinstance(pod, dict) or not wants_gpu(pod):
            return [HostPriority(n, 0) for n in names]
        try:
            request = self._request(pod)
        except ValidationError:
            return [HostPriority(n, 0) for n in names]
        state = CycleState()
        if not self.framework.run_pre_filters(state, request).ok:
            return [HostPriority(n, 0) for n in names]
        totals, scaled = self._totals(state, request, names)
        if not totals:
            return [HostPriority(n, 0) for n in names]
        best_total = max(totals.get(n, -1) for n in names)
        best = min(n for n in names if totals.get(n, -1) == best_total)  # ties: smallest name, as Framework
        out = [HostPriority(n, scaled.get(n, 0)) for n in names]
        for item in out:
            if item.host == best:
                item.score = MAX_EXTENDER_PRIORITY
                break
        return out

    def _totals(
        self, state: CycleState, request: PodRequest, names: list[str]
    ) -> tuple[dict[str, int], dict[str, int]]:
        """Weighted score totals of the known nodes, and the same scaled to 0..9 (10 is for the best)."""
        known = self.allocator.nodes
        scale, top = self._max_total(), MAX_EXTENDER_PRIORITY - 1
        if not self.reuse_decisions:
            totals = self.framework.score_nodes(state, request, [known[n] for n in names if n in known])
            return totals, {n: max(0, t) * top // scale for n, t in totals.items()}
        entry = self.decisions.for_shape(shape_of(request))
        missing = [known[n] for n in names if n not in entry.totals and n in known]
        if missing:
            fresh = self.framework.score_nodes(state, request, missing)
            entry.totals.update(fresh)
            entry.scaled.update({n: max(0, t) * top // scale for n, t in fresh.items()})
        return entry.totals, entry.scaled

    # ---- extender: bind -----------------------------------------------------------------------

    async def bind(self, args: ExtenderBindingArgs, writer: ClusterWriter) -> ExtenderBindingResult:
        uid = args.pod_uid
        pod = self.pending.get(uid) or self._recent.get(uid)
        where = f"pod {args.pod_namespace}/{args.pod_name}"
        if pod is None:
            # Its annotations decide the allocation: never bind a pod we have not seen.
            return ExtenderBindingResult(error=f"{where} (uid {uid!r}) is unknown to the scheduler yet; retry")
        if not wants_gpu(pod):  # kube-scheduler delegates every binding of this profile to us
            try:
                await writer.bind_pod(args.pod_namespace, args.pod_name, uid, args.node)
            except BindError as exc:
                return ExtenderBindingResult(error=f"{where}: {exc}")
            return ExtenderBindingResult()
        try:
            request = pod_request(pod)
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

    def _request(self, pod: Mapping[str, Any]) -> PodRequest:
        """pod_request, parsed once per pod version (filter, prioritize and bind send the same pod)."""
        meta = pod.get("metadata") or {}
        uid, version = meta.get("uid"), meta.get("resourceVersion")
        if not isinstance(uid, str) or not uid:
            return pod_request(pod)
        key = (uid, str(version))
        request = self._requests.get(key)
        if request is None:
            request = self._requests[key] = pod_request(pod)
            if len(self._requests) > RECENT_PODS:
                self._requests.popitem(last=False)
        return request

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


async def _undo_annotations(writer: ClusterWriter, args: ExtenderBindingArgs, written: Mapping[str, str]) -> None:
    try:
        await writer.annotate_pod(args.pod_namespace, args.pod_name, dict.fromkeys(written))
    except BindError as exc:  # the pod stays unbound, so a restart skips it (see ClusterMirror)
        log.warning("could not remove the allocation annotations of %s/%s: %s", args.pod_namespace, args.pod_name, exc)
