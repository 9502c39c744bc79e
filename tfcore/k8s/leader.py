"""Leader election on a coordination.k8s.io/v1 Lease, as client-go does it, with a hard fence.

Why not kubernetes-asyncio's LeaderElection: it has no `is_leader()` to fence individual
writes, keeps the leader's task running through the whole renew deadline even after it has
seen another holder in the lease, never releases the lease on shutdown (a follower waits a
full lease duration after every rolling update), and reports nothing we can export.

Rules (every time here is the local monotonic clock; the lease's timestamps are written for
humans and other implementations but never compared across machines, so clock skew is harmless):
- A candidate takes the lease when it is free (no holder) or when the record it observes has
  not changed for the record's leaseDurationSeconds. Every write carries the resourceVersion
  read just before, so of two racing candidates exactly one wins; the other gets 409.
- The leader renews every `retry_period`. It counts as leader only until `renew_deadline`
  after the start of its last successful renewal (`is_leader()` turns False by itself when
  the loop stalls), and renew_deadline < lease_duration, so a deposed leader has stopped before
  any follower can take over.
- Seeing another holder in the lease ends leadership at once.
- `release()` (graceful shutdown) empties holderIdentity so a follower takes over on its next try.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tfcore.k8s.client import KubeClient, request_json
from tfcore.k8s.errors import ApiError, Conflict, KubeError, NotFound
from tfcore.k8s.resources import LEASES

log = logging.getLogger(__name__)

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class LeaseConfig:
    namespace: str
    name: str
    identity: str
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError("need 0 < retry_period < renew_deadline < lease_duration")
        if not self.identity:
            raise ValueError("the candidate identity must not be empty")


class LeaderElector:
    """One candidate. `run(lead)` campaigns forever and runs `lead()` while it holds the lease."""

    def __init__(self, api: KubeClient, config: LeaseConfig, *, clock: Clock = time.monotonic) -> None:
        self.api = api
        self.config = config
        self.clock = clock
        self._leading_until = 0.0  # monotonic; leader work allowed before this instant
        self._observed: dict[str, Any] | None = None  # the lease's spec as last seen
        self._observed_version: str | None = None
        self._observed_at = 0.0
        self._holds = False  # the lease names this candidate, as far as it knows
        self.transitions = 0  # times this candidate became leader
        self.holder: str | None = None  # who holds the lease, as last seen
        self.changed = asyncio.Event()  # set on every gain or loss of leadership
        self.renewed = asyncio.Event()  # set on every successful acquire or renewal (waiters clear it)
        self.release_on_cancel = True  # False only in tests that play a killed process

    @property
    def path(self) -> str:
        return LEASES.item(self.config.name, self.config.namespace)

    def is_leader(self) -> bool:
        """True while this candidate holds a lease it renewed within the renew deadline."""
        return self.clock() < self._leading_until

    async def run(self, lead: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Campaign, lead while leading, go back to campaigning on loss; releases on cancel.

        `lead()` is cancelled the moment leadership is lost; if it returns or fails, the lease is
        released and run() returns or raises, so the process does not lead without working.
        """
        try:
            while True:
                await self._acquire()
                work = asyncio.create_task(lead(), name="leader-work")
                keep = asyncio.create_task(self._keep(), name="lease-renewal")
                try:
                    done, _ = await asyncio.wait({work, keep}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for task in (work, keep):
                        task.cancel()
                    await asyncio.gather(work, keep, return_exceptions=True)  # outcomes read below
                self._step_down()
                if work in done:
                    await self.release()
                    work.result()  # re-raise the failure of the leader's work
                    return
                if not keep.cancelled() and keep.exception() is not None:
                    raise keep.exception()  # type: ignore[misc]
                log.warning("%s lost the lease %s", self.config.identity, self.config.name)
        except asyncio.CancelledError:
            if self.release_on_cancel:
                await asyncio.shield(self.release())
            else:
                self._step_down()
            raise

    async def _acquire(self) -> None:
        while not await self.try_acquire_or_renew():  # noqa: ASYNC110 - the lease protocol's retry period
            await asyncio.sleep(self.config.retry_period)
        self.transitions += 1
        log.info("%s became leader (lease %s/%s)", self.config.identity, self.config.namespace, self.config.name)
        self.changed.set()

    async def _keep(self) -> None:
        """Renew until the deadline passes without a success or someone else holds the lease."""
        while True:
            await asyncio.sleep(self.config.retry_period)
            remaining = self._leading_until - self.clock()
            if remaining <= 0:
                return
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that lands as the
            # renewal completes, and this loop then renews forever under a cancelled task.
            try:
                async with asyncio.timeout(remaining):
                    renewed = await self.try_acquire_or_renew()
            except TimeoutError:
                return
            if not renewed and self.holder not in (None, "", self.config.identity):
                return  # somebody else holds it now: stop at once

    def _step_down(self) -> None:
        self._leading_until = 0.0
        self.changed.set()

    async def try_acquire_or_renew(self) -> bool:
        """One attempt; True when this candidate holds the lease afterwards."""
        started = self.clock()
        try:
            lease = await request_json(self.api, "GET", self.path, timeout=self.config.renew_deadline)
        except NotFound:
            return await self._create(started)
        except KubeError as exc:
            log.warning("reading lease %s: %s", self.config.name, exc)
            return False
        spec = dict(lease.get("spec") or {})
        version = str((lease.get("metadata") or {}).get("resourceVersion") or "")
        if spec != self._observed or version != self._observed_version:
            self._observed, self._observed_version, self._observed_at = spec, version, started
        holder = spec.get("holderIdentity") or ""
        self.holder = holder
        me = self.config.identity
        if holder and holder != me:
            duration = float(spec.get("leaseDurationSeconds") or self.config.lease_duration)
            if started < self._observed_at + duration:
                self._leading_until = 0.0
                self._holds = False
                return False
        now = _micro_time()
        renewed = dict(spec, holderIdentity=me, renewTime=now, leaseDurationSeconds=self._duration_seconds())
        if holder != me:
            renewed["acquireTime"] = now
            renewed["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        body = dict(lease, spec=renewed)
        try:
            stored = await request_json(self.api, "PUT", self.path, body=body, timeout=self.config.renew_deadline)
        except Conflict:
            return False  # someone wrote first: the next read tells who
        except KubeError as exc:
            log.warning("updating lease %s: %s", self.config.name, exc)
            return False
        self._record(stored, started)
        return True

    async def _create(self, started: float) -> bool:
        now = _micro_time()
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.config.name, "namespace": self.config.namespace},
            "spec": {
                "holderIdentity": self.config.identity,
                "leaseDurationSeconds": self._duration_seconds(),
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            },
        }
        path = LEASES.collection(self.config.namespace)
        try:
            stored = await request_json(self.api, "POST", path, body=body, timeout=self.config.renew_deadline)
        except ApiError as exc:
            if exc.status != 409:
                log.warning("creating lease %s: %s", self.config.name, exc)
            return False
        except KubeError as exc:
            log.warning("creating lease %s: %s", self.config.name, exc)
            return False
        self._record(stored, started)
        return True

    def _record(self, stored: dict[str, Any], started: float) -> None:
        self._observed = dict(stored.get("spec") or {})
        self._observed_version = str((stored.get("metadata") or {}).get("resourceVersion") or "")
        self._observed_at = started
        self.holder = self.config.identity
        self._holds = True
        # Counted from before the request went out: the lease cannot have been renewed earlier.
        self._leading_until = started + self.config.renew_deadline
        self.renewed.set()

    def _duration_seconds(self) -> int:
        return max(1, round(self.config.lease_duration))

    async def release(self) -> None:
        """Give the lease up (if held) so a follower takes over at once; errors only logged.

        A renewal cut off by the cancellation may have landed without us seeing its answer, so
        a 409 reads the lease again and retries while it still names us.
        """
        self._step_down()
        if not self._holds or self._observed is None:
            return
        self._holds = False
        spec, version = dict(self._observed), self._observed_version
        for _ in range(3):
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.config.name, "namespace": self.config.namespace, "resourceVersion": version},
                "spec": dict(spec, holderIdentity="", leaseDurationSeconds=1, renewTime=_micro_time()),
            }
            try:
                await request_json(self.api, "PUT", self.path, body=body, timeout=2.0)
                log.info("%s released the lease %s", self.config.identity, self.config.name)
                return
            except Conflict:
                try:
                    lease = await request_json(self.api, "GET", self.path, timeout=2.0)
                except KubeError as exc:
                    log.info("releasing lease %s: %s", self.config.name, exc)
                    return
                spec = dict(lease.get("spec") or {})
                version = str((lease.get("metadata") or {}).get("resourceVersion") or "")
                if spec.get("holderIdentity") != self.config.identity:
                    return  # somebody else holds it already
            except KubeError as exc:  # it expires by itself
                log.info("releasing lease %s: %s", self.config.name, exc)
                return


def _micro_time() -> str:
    """metav1.MicroTime: RFC 3339 with microseconds, UTC."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
