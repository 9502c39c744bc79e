"""The regions of this node's TensorFusion pods, kept in step with the pods (docs/hypervisor.md).

Pods labelled tensor-fusion.ai/enabled=true and bound to this node (a field selector, and the
same check again here) are listed and watched into a Store (tfcore.k8s.store). Each change
is decided at once, in the store's notification, so a region exists moments after the bind
(the pod's init container waits for it).
A listing (the first one, a relist, and every RESYNC_PERIOD over the pods known) reconciles
everything: regions of pods that are gone are removed, missing ones made. Nothing is removed
before the first listing, so a restart leaves every running pod's region as it was.

Decisions are tfcore.hypervisor.podworkers; regions are made through Node.create_worker, the
same path as the HTTP API, so the compute controllers and the allocator see pod workers alike.
A pod that cannot get a region gets a Warning Event saying why (once per pod and reason).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any, Final

from daemons.hypervisor.node import Node
from tfcore.hypervisor.placement import DoesNotFit
from tfcore.hypervisor.podworkers import (
    Decision,
    Limits,
    NodeGPU,
    NoWorker,
    PodWorker,
    decide,
    plan,
    pod_worker_name,
)
from tfcore.ipc import RegionError
from tfcore.k8s import Change, Informers, KubeClient, Resource, Store
from tfcore.k8s.events import EventRecorder, EventType
from tfcore.model.annotations import LABEL_ENABLED
from tfcore.model.errors import ValidationError

log = logging.getLogger(__name__)
COMPONENT: Final = "tensor-fusion-hypervisor"
RESYNC_PERIOD: Final = 5.0  # seconds between reconciliations over the known pods (retries failures)
MAX_PENDING_EVENTS: Final = 1000


def pods_resource(node_name: str) -> Resource:
    return Resource.of("Pod", label_selector=f"{LABEL_ENABLED}=true", field_selector=f"spec.nodeName={node_name}")


class PodWorkers:
    def __init__(
        self,
        api: KubeClient,
        node: Node,
        *,
        node_name: str,
        resync: float = RESYNC_PERIOD,
        watch_timeout: int = 300,
    ) -> None:
        self.node = node
        self.node_name = node_name
        self.resync = resync
        self.store = Store()  # this node's pods: the latest copy of each
        self.store.subscribe_relists(self._on_list)
        self.store.subscribe(self._on_change)
        self.informers = Informers(api, self.store, [pods_resource(node_name)], watch_timeout=watch_timeout)
        self.recorder = EventRecorder(api, COMPONENT, host=node_name)
        self.listed = False
        self._gpus = [NodeGPU(u, node.rated[u], g.vram_bytes) for u, g in node.gpus.items()]
        self._events: asyncio.Queue[tuple[dict[str, Any], EventType, str, str]] = asyncio.Queue(MAX_PENDING_EVENTS)
        self._reported: set[tuple[str, str, str]] = set()  # (pod uid, reason, message) already sent

    async def run(self) -> None:
        await asyncio.gather(self.informers.run(), self._send_events(), self._resync())

    def pods(self) -> list[dict[str, Any]]:
        """The pods known: the store's latest copy of each."""
        return list(self.store.objects("Pod"))

    # ---- changes from the store -----------------------------------------------------------

    def _on_list(self, kind: str, listed: tuple[dict[str, Any], ...]) -> None:
        """A listing (first one or relist): the store holds exactly the listed pods now."""
        try:
            self.listed = True
            self.reconcile()
        except Exception:  # a bad object or a bug must not stop the informer (or the node daemon)
            log.exception("pod listing not handled; the next resync retries")

    def _on_change(self, change: Change) -> None:
        if change.relist:
            return  # the listing as a whole is reconciled by _on_list
        try:
            name = _name(change.obj)
            if change.type == "DELETED":
                if self.node.pod_workers().get(name) == _uid(change.obj):  # not a successor's region
                    log.info("pod worker %s: its pod was deleted; removing its region", name)
                    self.node.remove_worker(name)
            else:
                self._apply([self._decide(change.obj)], complete=False)
        except Exception:  # a bad object or a bug must not stop the informer (or the node daemon)
            log.exception("pod %s event not handled; the next resync retries", change.type)

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(self.resync)
            if self.listed:
                try:
                    self.reconcile()
                except Exception:
                    log.exception("pod resync failed; retrying")

    def reconcile(self) -> None:
        """Every known pod against every pod worker (only after a listing: before one, the
        known pods are not all the pods there are)."""
        if not self.listed:
            return
        pods = self.pods()
        self._apply([self._decide(p) for p in pods], complete=True)
        uids = {_uid(p) for p in pods}
        self._reported = {r for r in self._reported if r[0] in uids}

    # ---- acting ---------------------------------------------------------------------------

    def _decide(self, pod: Mapping[str, Any]) -> Decision:
        return decide(pod, self.node_name, self._gpus)

    def _apply(self, decisions: Iterable[Decision], *, complete: bool) -> None:
        decisions = list(decisions)
        for decision in decisions:
            if isinstance(decision, NoWorker) and decision.event:
                self._warn(decision.name, decision.uid, decision.event, decision.message)
        changes = plan(self.node.pod_workers(), decisions, complete=complete, granted=self._granted())
        for name in changes.remove:
            log.info("pod worker %s: its pod is gone, finished or replaced; removing its region", name)
            self.node.remove_worker(name)
        for wanted in changes.create:
            self._create(wanted)
        for wanted in changes.resize:
            self._resize(wanted)

    def _granted(self) -> dict[str, Limits]:
        return {name: Limits.of(w.record.spec) for name, w in self.node.workers.items() if w.record.pod_uid}

    def _resize(self, wanted: PodWorker) -> None:
        try:
            self.node.resize_worker(wanted.spec)
        except (ValidationError, RegionError, OSError) as exc:
            text = "; ".join(str(p) for p in exc.problems) if isinstance(exc, ValidationError) else str(exc)
            self._warn(wanted.name, wanted.uid, "ResizeFailed", f"limits not changed on node {self.node_name}: {text}")

    def _create(self, wanted: PodWorker) -> None:
        try:
            # The scheduler bound it here: enforce its limits rather than none.
            worker = self.node.create_worker(wanted.spec, overcommit=True)
        except (ValidationError, DoesNotFit, RegionError, OSError) as exc:
            reason = "GPUUnavailable" if isinstance(exc, DoesNotFit) else "RegionFailed"
            text = "; ".join(str(p) for p in exc.problems) if isinstance(exc, ValidationError) else str(exc)
            self._warn(wanted.name, wanted.uid, reason, f"no region made on node {self.node_name}: {text}")
            return
        log.info("pod worker %s: region %s made for pod uid %s", wanted.name, worker.region.path, wanted.uid)
        if worker.overcommitted:
            message = f"placed beyond node {self.node_name}'s capacity, limits enforced: {worker.overcommitted}"
            self._warn(wanted.name, wanted.uid, "GPUOvercommitted", message)

    def _warn(self, name: str, uid: str, reason: str, message: str) -> None:
        if (uid, reason, message) in self._reported:
            return
        self._reported.add((uid, reason, message))
        log.warning("pod %s: %s", name, message)
        pod = next((p for p in self.store.objects("Pod") if _uid(p) == uid and _name(p) == name), None)
        if pod is None:
            return
        try:
            self._events.put_nowait(({"apiVersion": "v1", **pod, "kind": "Pod"}, "Warning", reason, message))
        except asyncio.QueueFull:
            log.warning("too many pending Events; %s on %s not recorded", reason, name)

    async def _send_events(self) -> None:
        while True:
            pod, type_, reason, message = await self._events.get()
            await self.recorder.emit(pod, type_, reason, message)


def _name(pod: Mapping[str, Any]) -> str:
    metadata = pod.get("metadata") or {}
    return pod_worker_name(str(metadata.get("namespace") or ""), str(metadata.get("name") or ""))


def _uid(pod: Mapping[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("uid") or "")
