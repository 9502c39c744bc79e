"""The scheduler's state around the extender verbs: the pods seen, bind's API calls, metrics, config.

The verbs themselves are tfcore.sched.extender (pure). Everything here runs on the event loop;
the allocator is only touched between awaits, so a filter/reserve sequence is atomic. Bind
awaits the API (annotations, then pods/binding) after the allocation is recorded, and forgets
it if the API refuses.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Protocol

from daemons.scheduler.metrics import SchedulerMetrics
from tfcore.admission.inject import pod_nvidia_gpus
from tfcore.config.scheduler import SchedulerConfig
from tfcore.model.errors import ValidationError
from tfcore.sched import Framework, default_registry, pod_request
from tfcore.sched.allocator import Allocator
from tfcore.sched.extender.verbs import RECENT_PODS, EncodedFilterAnswer, Extender, wants_gpu
from tfcore.sched.extender.wire import (
    EncodedExtenderArgs,
    ExtenderArgs,
    ExtenderBindingArgs,
    ExtenderBindingResult,
    ExtenderFilterResult,
)
from tfcore.sched.framework import PluginUse
from tfcore.sched.plugins import default_plugin_uses

log = logging.getLogger(__name__)

__all__ = ["BindError", "ClusterWriter", "SchedulerService", "wants_gpu"]


class BindError(Exception):
    """The API refused to record the allocation or to bind the pod."""


class ClusterWriter(Protocol):
    """Where bind makes the placement real (the API server, or the in-memory cluster)."""

    async def annotate_pod(self, namespace: str, name: str, annotations: Mapping[str, str | None]) -> None: ...

    async def bind_pod(self, namespace: str, name: str, uid: str, node: str) -> None: ...


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
        self.extender = Extender(
            allocator, self._framework(config), reuse_decisions=reuse_decisions, native_gpu_pods=native_gpu_pods
        )
        self.pending: dict[str, dict[str, Any]] = {}  # uid -> pod, from the cluster (pods not yet bound)
        self._recent: OrderedDict[str, dict[str, Any]] = OrderedDict()  # uid -> pod seen by filter
        self._binding: set[str] = set()

    @property
    def framework(self) -> Framework:
        return self.extender.framework

    def _framework(self, config: SchedulerConfig | None) -> Framework:
        uses: list[PluginUse] = config.plugin_uses() if config is not None else default_plugin_uses()
        return Framework(self.allocator, uses, default_registry())

    def apply_config(self, config: SchedulerConfig) -> None:
        """A reloaded scheduler-config.yaml: new plugin args from the next decision on."""
        framework = self._framework(config)
        self.framework.close()
        self.extender.use(framework)
        self.config = config
        log.info("scheduler config applied: %s", ", ".join(u.name for u in config.plugin_uses()))

    # ---- extender: filter and prioritize (tfcore.sched.extender), and what they saw --------------

    def filter(self, args: ExtenderArgs) -> ExtenderFilterResult:
        answer = self.extender.filter(args)
        self._seen(answer.request is not None, args.pod, answer.reasons)
        return answer.result

    def filter_reply(self, args: EncodedExtenderArgs) -> EncodedFilterAnswer:
        answer = self.extender.filter_reply(args)
        self._seen(answer.request is not None, args.pod, answer.reasons)
        return answer

    def prioritize(self, args: EncodedExtenderArgs) -> bytes:
        return self.extender.prioritize_reply(args)

    def _seen(self, ours: bool, pod: Any, reasons: dict[str, int]) -> None:
        if ours:
            self._remember(pod)
        if reasons:
            self.metrics.rejected(reasons)

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
            if native and (refusal := self.extender.native_refusal(args.node)) is not None:
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
            request, _ = self.extender.request(pod)
        except ValidationError as exc:
            return ExtenderBindingResult(error=f"{where}: {exc}")
        if request.key in self._binding:
            return ExtenderBindingResult(error=f"{where}: a binding is already in progress")
        existed = request.key in self.allocator.allocations
        result = self.extender.reserve(request, args.node, where)
        if isinstance(result, str):
            return ExtenderBindingResult(error=result)
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
