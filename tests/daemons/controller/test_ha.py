"""Two controller replicas: one leads, a killed leader is replaced, a restart loses nothing."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.daemons.controller.helpers import Cluster, Replica, replicas, spec_cluster, wait_for
from tests.kubeapi.emulator import KubeEmulator

POOL = "tensor-fusion-cluster-shared"
CLUSTER = "tensor-fusion-cluster"


async def _converged(api: Cluster, gpus: int) -> dict[str, Any]:
    return await wait_for(  # type: ignore[no-any-return]
        lambda: api.get("tensorfusionclusters", CLUSTER),
        lambda c: (
            c is not None and (c.get("status") or {}).get("phase") == "Running" and c["status"].get("totalGPUs") == gpus
        ),
        timeout=6.0,
    )


def _uids(objects: list[dict[str, Any]]) -> dict[str, str]:
    return {o["metadata"]["name"]: o["metadata"]["uid"] for o in objects}


async def test_killed_leader_is_replaced_without_double_side_effects(kube: KubeEmulator) -> None:
    api = Cluster(kube)
    await api.node("node-a", {"gpu": "true"})
    async with replicas(kube, "a", "b") as pair:
        await wait_for(lambda: _one(pair), lambda leader: leader is not None)
        leader = next(r for r in pair if r.is_leader())
        follower = next(r for r in pair if r is not leader)
        await api.create("tensorfusionclusters", spec_cluster())
        await api.hypervisor_reports("node-a", 2)
        await _converged(api, 2)
        assert follower.daemon.controller.writes == 0  # a follower watches, never writes
        pools, gpunodes = _uids(await api.list("gpupools")), _uids(await api.list("gpunodes"))

        await leader.crash()
        await wait_for(lambda: _one([follower]), lambda r: r is not None, timeout=3.0)
        # The new leader resyncs everything it knows: no new objects, no repeated Events.
        await asyncio.sleep(0.3)
        assert _uids(await api.list("gpupools")) == pools
        assert _uids(await api.list("gpunodes")) == gpunodes
        assert len(await api.events("PoolCreated")) == 1
        assert len(await api.events("NodeJoined")) == 1

        await api.node("node-b", {"gpu": "true"})  # work after the hand-over is done by the new leader
        await api.hypervisor_reports("node-b", 1)
        cluster = await _converged(api, 3)
        assert cluster["status"]["totalTFlops"] == "363"
        assert len(await api.events("NodeJoined")) == 2


async def test_graceful_stop_hands_over_at_once(kube: KubeEmulator) -> None:
    api = Cluster(kube)
    async with replicas(kube, "a", "b") as pair:
        await wait_for(lambda: _one(pair), lambda leader: leader is not None)
        leader = next(r for r in pair if r.is_leader())
        follower = next(r for r in pair if r is not leader)
        await leader.stop()  # SIGTERM releases the lease
        await wait_for(lambda: _one([follower]), lambda r: r is not None, timeout=0.6)
        await api.create("tensorfusionclusters", spec_cluster())
        await wait_for(lambda: api.get("gpupools", POOL), lambda p: p is not None)


async def test_restarted_controller_rebuilds_from_the_cluster_and_loses_nothing(kube: KubeEmulator) -> None:
    api = Cluster(kube)
    await api.node("node-a", {"gpu": "true"})
    first = Replica(kube, "first").start()
    try:
        await api.create("tensorfusionclusters", spec_cluster())
        await api.hypervisor_reports("node-a", 2)
        await _converged(api, 2)
        pools, gpunodes = _uids(await api.list("gpupools")), _uids(await api.list("gpunodes"))
    finally:
        await first.stop()

    # While no controller runs: a node joins, its hypervisor reports, another node leaves.
    await api.node("node-b", {"gpu": "true"})
    await api.hypervisor_reports_without_controller("node-b", 3)
    await api.core.delete_node("node-a")

    async with replicas(kube, "second"):
        cluster = await wait_for(
            lambda: api.get("tensorfusionclusters", CLUSTER),
            lambda c: c is not None and c["status"].get("totalGPUs") == 3 and c["status"].get("totalNodes") == 1,
            timeout=6.0,
        )
        gpunodes_after = await wait_for(lambda: _names(api, "gpunodes"), lambda names: names == ["node-b"])
    assert _uids(await api.list("gpupools")) == pools  # the same pool objects, not new ones
    assert gpunodes_after == ["node-b"]
    assert "node-a" in gpunodes
    assert cluster["status"]["phase"] == "Running"
    assert len(await api.events("PoolCreated")) == 1


async def _one(group: list[Replica]) -> Replica | None:
    leaders = [r for r in group if r.is_leader()]
    assert len(leaders) <= 1, "two leaders at once"
    return leaders[0] if leaders else None


async def _names(api: Cluster, plural: str) -> list[str]:
    return sorted(o["metadata"]["name"] for o in await api.list(plural))
