"""Canary convergence against the API emulator: two webhook replicas (two ledgers) admit one
burst of a ReplicaSet's pods and overshoot enabled-replicas; the controller replaces the excess
one pod at a time until exactly N are TensorFusion pods, and tops up a shortfall the same way."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from daemons.controller.daemon import ControllerDaemon, Options
from daemons.webhook.cluster import pod_informer
from daemons.webhook.server import Webhook
from tests.daemons.controller import helpers
from tests.daemons.controller.helpers import FAST
from tests.daemons.webhook.controllers import Cluster
from tests.daemons.webhook.test_canary_cluster import live, template
from tests.kubeapi import KubeEmulator
from tests.unit.admission.pods import cluster as cluster_defaults
from tfcore.admission import InjectionConfig, PodReview, Verdict
from tfcore.k8s.admission_support import OwnerPods

SETTLE = 0.3  # seconds the controller leaves a ReplicaSet alone (45 s in production)


class TwoReplicas:
    """A Service in front of two webhook pods: requests alternate, each pod has its own ledger."""

    def __init__(self, first: Webhook, second: Webhook) -> None:
        self.replicas = (first, second)
        self._next = itertools.cycle(self.replicas)

    async def review(self, review: PodReview) -> Verdict:
        return await next(self._next).review(review)


@pytest.fixture
async def cluster(kube: KubeEmulator) -> AsyncIterator[Cluster]:
    api = kube.api_client()
    replicas = [Webhook(InjectionConfig(), cluster_defaults, list_owner_pods=OwnerPods(api).list) for _ in range(2)]
    watches = [asyncio.create_task(pod_informer(api, w.ledger).run()) for w in replicas]
    service: Any = TwoReplicas(*replicas)
    try:
        yield Cluster(api, service, settled=lambda: all(w.ledger.total_pending() == 0 for w in replicas))
    finally:
        for watch in watches:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch


async def stale(namespace: str, kind: str, name: str, uid: str) -> list[dict[str, Any]]:
    return []


def use_listing(cluster: Cluster, listing: Any) -> None:
    for webhook in cluster.webhook.replicas:  # type: ignore[attr-defined]
        webhook.list_owner_pods = listing


@contextlib.asynccontextmanager
async def controller(kube: KubeEmulator) -> AsyncIterator[None]:
    kube.api_client()
    own = kube.new_api_client()
    daemon = ControllerDaemon(own, Options(canary_settle_seconds=SETTLE, **FAST), watch_timeout=30)
    task = asyncio.create_task(daemon.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await own.close()


async def converge(cluster: Cluster, replica_set: dict[str, Any], want: Counter[str]) -> Counter[str]:
    """Play the ReplicaSet controller (recreate what the controller deletes) until `want`."""
    deadline = asyncio.get_running_loop().time() + 30
    while (found := await live(cluster, replica_set)) != want:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"stuck at {found}, want {want}")
        await cluster.sync_replica_set(replica_set)
        await asyncio.sleep(0.05)
    return found


async def test_two_webhook_replicas_overshoot_and_the_controller_converges(
    kube: KubeEmulator, cluster: Cluster
) -> None:
    # Both replicas' pod listings lag (as informer caches do): each decides from its own ledger.
    use_listing(cluster, stale)
    deployment = await cluster.create_deployment("web", 10, template())
    [replica_set] = await cluster.replica_sets(deployment)
    overshoot = await live(cluster, replica_set)
    assert overshoot == Counter(tf=6, native=4)  # three per replica
    use_listing(cluster, OwnerPods(kube.api_client()).list)
    async with controller(kube):
        assert await converge(cluster, replica_set, Counter(tf=3, native=7)) == Counter(tf=3, native=7)
        await asyncio.sleep(3 * SETTLE)  # and it stays there: nothing more is replaced
        assert await live(cluster, replica_set) == Counter(tf=3, native=7)
    events = await helpers.Cluster(kube).events("CanaryRebalance")
    assert len(events) == overshoot["tf"] - 3  # one replacement per excess pod, no more
    assert all(e.involved_object.kind == "ReplicaSet" for e in events)
    assert "enabled-replicas is 3" in events[0].message


async def test_a_shortfall_is_topped_up(kube: KubeEmulator, cluster: Cluster) -> None:
    deployment = await cluster.create_deployment("web", 6, template())
    [replica_set] = await cluster.replica_sets(deployment)
    use_listing(cluster, None)  # the listing fails: the webhook admits native pods (and says so)
    tf_pods = [p for p in await cluster.pods(replica_set["metadata"]["uid"]) if "initContainers" in p["spec"]]
    for pod in tf_pods[1:]:
        await cluster.delete_pod(pod["metadata"]["name"])
    await cluster.sync_replica_set(replica_set)
    assert await live(cluster, replica_set) == Counter(tf=1, native=5)
    use_listing(cluster, OwnerPods(kube.api_client()).list)  # back to normal
    async with controller(kube):
        assert await converge(cluster, replica_set, Counter(tf=3, native=3)) == Counter(tf=3, native=3)
