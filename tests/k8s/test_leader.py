"""Lease-based leader election against the API emulator: races, take-over, fencing, clock skew."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from kubernetes_asyncio import client

from tests.kubeapi.emulator import KubeEmulator
from tfcore.k8s.leader import LeaderElector, LeaseConfig

LEASE = "test-leader"
FAST = {"lease_duration": 1.0, "renew_deadline": 0.6, "retry_period": 0.1}


def config(identity: str, **overrides: float) -> LeaseConfig:
    return LeaseConfig(namespace="default", name=LEASE, identity=identity, **(FAST | overrides))


async def idle() -> None:
    await asyncio.Event().wait()


class Candidate:
    def __init__(self, kube: KubeEmulator, identity: str, clock: Callable[[], float] = time.monotonic) -> None:
        kube.api_client()  # the shared client is the first one made: not ours to close
        self.api = kube.new_api_client()
        self.elector = LeaderElector(self.api, config(identity), clock=clock)
        self.task: asyncio.Task[None] | None = None

    def start(self, lead: Callable[[], Any] = idle) -> Candidate:
        self.task = asyncio.create_task(self.elector.run(lead))
        return self

    async def stop(self, *, release: bool = True) -> None:
        self.elector.release_on_cancel = release
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None

    async def close(self) -> None:
        await self.stop()
        await self.api.close()


@contextlib.asynccontextmanager
async def candidates(kube: KubeEmulator, *names: str) -> AsyncIterator[list[Candidate]]:
    made = [Candidate(kube, name) for name in names]
    try:
        yield made
    finally:
        for candidate in made:
            await candidate.close()


async def until(check: Callable[[], bool], timeout: float = 5.0) -> float:
    """Seconds until `check()` holds (fails the test after `timeout`)."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)
    return time.monotonic() - start


class OverlapWatch:
    """Samples every few ms that no two candidates believe they lead at the same time."""

    def __init__(self, electors: list[LeaderElector]) -> None:
        self.electors = electors
        self.overlaps = 0
        self.samples = 0
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            self.samples += 1
            if sum(e.is_leader() for e in self.electors) > 1:
                self.overlaps += 1
            await asyncio.sleep(0.003)

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def lease(kube: KubeEmulator) -> Any:
    return await client.CoordinationV1Api(kube.api_client()).read_namespaced_lease(LEASE, "default")


async def test_exactly_one_of_three_leads(kube: KubeEmulator) -> None:
    async with candidates(kube, "a", "b", "c") as all_:
        for c in all_:
            c.start()
        await until(lambda: any(c.elector.is_leader() for c in all_))
        await asyncio.sleep(0.5)  # several renewals
        leaders = [c for c in all_ if c.elector.is_leader()]
        assert len(leaders) == 1
        record = await lease(kube)
        assert record.spec.holder_identity == leaders[0].elector.config.identity
        assert record.spec.lease_duration_seconds == 1
        assert sum(c.elector.transitions for c in all_) == 1


async def test_follower_takes_over_a_killed_leader_within_the_lease_duration(kube: KubeEmulator) -> None:
    async with candidates(kube, "a", "b") as (a, b):
        a.start()
        await until(a.elector.is_leader)
        b.start()
        await asyncio.sleep(0.3)
        assert not b.elector.is_leader()
        watch = OverlapWatch([a.elector, b.elector])
        killed = time.monotonic()
        await a.stop(release=False)  # SIGKILL: no release, the lease must expire
        waited = await until(b.elector.is_leader, timeout=3.0)
        await watch.close()
        # Not before the lease could have expired, and within one lease duration plus a retry.
        assert 1.0 - 0.1 - 0.05 <= waited <= 1.0 + 0.1 + 0.5
        assert watch.overlaps == 0
        record = await lease(kube)
        assert record.spec.holder_identity == "b"
        assert record.spec.lease_transitions == 1
        assert killed > 0


async def test_graceful_stop_releases_the_lease_for_an_immediate_take_over(kube: KubeEmulator) -> None:
    async with candidates(kube, "a", "b") as (a, b):
        a.start()
        await until(a.elector.is_leader)
        b.start()
        await asyncio.sleep(0.2)
        await a.stop()  # SIGTERM: released
        assert not a.elector.is_leader()
        waited = await until(b.elector.is_leader, timeout=3.0)
        assert waited < 0.8  # about one retry period, not a lease duration (>= 0.85 s)


async def test_a_leader_that_cannot_renew_stops_before_anyone_takes_over(kube: KubeEmulator) -> None:
    """Partitioned leader: its writes fail; is_leader() turns False within the renew deadline,
    before the follower's lease-duration wait ends, so their leader work never overlaps."""
    async with candidates(kube, "a", "b") as (a, b):
        work_cancelled = asyncio.Event()

        async def lead() -> None:
            try:
                await idle()
            finally:
                work_cancelled.set()

        a.start(lead)
        await until(a.elector.is_leader)
        b.start()
        await asyncio.sleep(0.2)
        watch = OverlapWatch([a.elector, b.elector])
        dead = client.Configuration()
        dead.host = "http://127.0.0.1:9"  # discard port: connection refused
        partitioned = client.ApiClient(dead)
        real = a.elector.api
        a.elector.api = partitioned
        try:
            lost = await until(lambda: not a.elector.is_leader(), timeout=2.0)
            assert lost <= 0.6 + 0.2  # the renew deadline (plus event-loop lag on a busy machine)
            await asyncio.wait_for(work_cancelled.wait(), timeout=1.0)  # leader work stopped
            await until(b.elector.is_leader, timeout=3.0)
        finally:
            await watch.close()
            a.elector.api = real
            await partitioned.close()
        assert watch.overlaps == 0
        assert watch.samples > 100


async def test_seeing_another_holder_ends_leadership_at_once(kube: KubeEmulator) -> None:
    async with candidates(kube, "a") as (a,):
        a.start()
        await until(a.elector.is_leader)
        coordination = client.CoordinationV1Api(kube.api_client())
        record = await coordination.read_namespaced_lease(LEASE, "default")
        record.spec.holder_identity = "usurper"
        await coordination.replace_namespaced_lease(LEASE, "default", record)
        waited = await until(lambda: not a.elector.is_leader(), timeout=1.0)
        assert waited <= 0.45  # the next renewal (0.1 s), not the renew deadline (0.6 s)
        await asyncio.sleep(0.3)
        assert not a.elector.is_leader()  # the usurper's lease is honoured until it expires


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_racing_takeovers_resolve_by_optimistic_concurrency(kube: KubeEmulator) -> None:
    coordination = client.CoordinationV1Api(kube.api_client())
    body = client.V1Lease(
        metadata=client.V1ObjectMeta(name=LEASE, namespace="default"),
        spec=client.V1LeaseSpec(holder_identity="ghost", lease_duration_seconds=1, lease_transitions=4),
    )
    await coordination.create_namespaced_lease("default", body)
    clock = FakeClock()
    racers = [Candidate(kube, f"r{i}", clock) for i in range(4)]
    try:
        assert not any(await asyncio.gather(*(r.elector.try_acquire_or_renew() for r in racers)))
        clock.now += 1.5  # the ghost's lease has expired for everyone
        won = await asyncio.gather(*(r.elector.try_acquire_or_renew() for r in racers))
        assert sum(won) == 1
        record = await lease(kube)
        winner = racers[won.index(True)].elector.config.identity
        assert record.spec.holder_identity == winner
        assert record.spec.lease_transitions == 5
        assert [r.elector.is_leader() for r in racers] == list(won)
    finally:
        for racer in racers:
            await racer.close()


@pytest.mark.parametrize("skew_years", [-30, 30])
async def test_remote_clock_skew_does_not_move_the_take_over(kube: KubeEmulator, skew_years: int) -> None:
    """A holder whose clock is decades off: its renewTime is never compared with ours."""
    coordination = client.CoordinationV1Api(kube.api_client())
    stamp = f"{2025 + skew_years}-01-01T00:00:00.000000Z"
    body = client.V1Lease(
        metadata=client.V1ObjectMeta(name=LEASE, namespace="default"),
        spec=client.V1LeaseSpec(holder_identity="skewed", lease_duration_seconds=1, renew_time=stamp),  # type: ignore[arg-type]
    )
    await coordination.create_namespaced_lease("default", body)

    async def renew_like_the_skewed_leader() -> None:
        count = 0
        while True:
            await asyncio.sleep(0.1)
            count += 1
            record = await coordination.read_namespaced_lease(LEASE, "default")
            record.spec.renew_time = f"{2025 + skew_years}-01-01T00:00:{count % 60:02d}.000000Z"  # type: ignore[assignment]
            await coordination.replace_namespaced_lease(LEASE, "default", record)

    async with candidates(kube, "f") as (follower,):
        follower.start()
        skewed = asyncio.create_task(renew_like_the_skewed_leader())
        await asyncio.sleep(1.8)  # renewals keep coming: a follower must wait, whatever the timestamps say
        assert not follower.elector.is_leader()
        skewed.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await skewed
        waited = await until(follower.elector.is_leader, timeout=3.0)
        assert waited >= 1.0 - 0.1 - 0.05  # a full lease duration after the last renewal it saw


async def test_leader_work_failing_releases_the_lease_and_raises(kube: KubeEmulator) -> None:
    async def broken() -> None:
        await asyncio.sleep(0.05)
        raise RuntimeError("reconciler crashed")

    async with candidates(kube, "a") as (a,):
        with pytest.raises(RuntimeError, match="reconciler crashed"):
            await a.elector.run(broken)
        assert not a.elector.is_leader()
        assert (await lease(kube)).spec.holder_identity in ("", None)


def test_config_rejects_unsafe_timings() -> None:
    with pytest.raises(ValueError, match="renew_deadline"):
        LeaseConfig(namespace="n", name="l", identity="i", lease_duration=1, renew_deadline=1, retry_period=0.1)
    with pytest.raises(ValueError, match="identity"):
        LeaseConfig(namespace="n", name="l", identity="")
