"""The controller's I/O edge: one store fed by informers, a work queue, and the reconcilers.

Informers run on every replica (a follower's store is warm when it takes over); only the
leader drains the queue, and every write checks `is_leader()` first (a fence against a stalled
leader). State lives in the cluster only: a restarted or new leader lists everything, queues
every object and converges; all writes are idempotent (create answers 409 when the object is
there, patches that change nothing are not sent). Reconcilers live one per module under
reconcilers/; routing.py says which object changes queue which of them.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from typing import Final

from daemons.controller.context import Context, Key, NotLeader, Settings, Writer
from daemons.controller.queue import WorkQueue
from daemons.controller.routing import RECONCILERS, ROUTES
from tfcore.k8s import Change, Conflict, Informers, KubeClient, KubeError, Resource, Store
from tfcore.k8s.events import EventRecorder
from tfcore.model.annotations import LABEL_ENABLED
from tfcore.model.errors import ValidationError
from tfcore.operator.objects import Obj

log = logging.getLogger(__name__)

WATCHED: Final = (
    Resource.of("TensorFusionCluster"),
    Resource.of("GPUPool"),
    Resource.of("GPUNode"),
    Resource.of("GPU"),
    Resource.of("Node"),
    Resource.of("Pod", label_selector=f"{LABEL_ENABLED}=true"),
    Resource.of("TensorFusionWorkload"),
)


class Controller:
    def __init__(
        self,
        api: KubeClient,
        *,
        is_leader: Callable[[], bool],
        recorder: EventRecorder,
        settings: Settings,
        leadership: asyncio.Event | None = None,
        watch_timeout: int = 300,
    ) -> None:
        """`leadership`: set whenever leadership is (re)confirmed; None when always leading."""
        self.is_leader = is_leader
        self.leadership = leadership
        self.store = Store()
        self.store.subscribe(self._route)
        self.informers = Informers(api, self.store, WATCHED, watch_timeout=watch_timeout)
        self.queue: WorkQueue[Key] = WorkQueue()
        self.writer = Writer(api, self.store, is_leader)
        self.context = Context(
            api, self.store, writer=self.writer, recorder=recorder, queue=self.queue, settings=settings
        )
        self.reconciles: Counter[tuple[str, str]] = Counter()  # (reconciler, result)

    @property
    def writes(self) -> int:
        return self.writer.count

    # ---- observing -----------------------------------------------------------------------

    def synced(self) -> bool:
        return self.informers.synced()

    async def watch(self) -> None:
        await self.informers.run()

    def _route(self, change: Change) -> None:
        self.route(change.kind, change.obj, change.previous)

    def route(self, kind: str, obj: Obj, previous: Obj | None = None) -> None:
        """Queue every reconcile whose outcome this object can change."""
        for route in ROUTES.get(kind, ()):
            for name in route.names(self.context, obj, previous):
                self.queue.add(Key(route.reconciler.NAME, name))

    def queue_everything(self) -> None:
        for kind in self.store.kinds():
            for obj in list(self.store.objects(kind)):
                self.route(kind, obj)

    # ---- leading -------------------------------------------------------------------------

    async def lead(self) -> None:
        """Drain the queue while leading (cancelled by the elector when leadership ends)."""
        await self.informers.wait_synced()
        self.queue.clear()
        self.queue_everything()
        while True:
            key = await self.queue.get()
            await self._until_leading()
            await self.reconcile(key)

    async def _until_leading(self) -> None:
        """Hold the work while a renewal is late, until it lands or we are cancelled."""
        while self.leadership is not None and not self.is_leader():
            self.leadership.clear()
            if self.is_leader():
                return
            await self.leadership.wait()

    async def reconcile(self, key: Key) -> None:
        reconciler, name = key
        try:
            await RECONCILERS[reconciler].reconcile(self.context, name)
        except NotLeader:
            self.queue.add(key)  # the next leader (maybe us again) redoes it
            self.reconciles[(reconciler, "not-leader")] += 1
        except Conflict as exc:
            self.reconciles[(reconciler, "conflict")] += 1
            log.debug("%s %s: %s; retrying", reconciler, name, exc)
            self.queue.retry(key)
        except (KubeError, TimeoutError) as exc:
            self.reconciles[(reconciler, "error")] += 1
            delay = self.queue.retry(key)
            log.warning("%s %s: %s; retrying in %.2fs", reconciler, name, exc, delay)
        except ValidationError as exc:  # bad objects are reported, not retried: a change requeues them
            self.reconciles[(reconciler, "invalid")] += 1
            log.warning("%s %s: %s", reconciler, name, exc)
        else:
            self.reconciles[(reconciler, "ok")] += 1
            self.queue.forget(key)
