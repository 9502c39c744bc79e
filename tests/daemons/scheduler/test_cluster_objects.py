"""GPUResourceQuotas and the TensorFusionCluster's isDefault pool, from every cluster source:
the in-memory cluster, a --cluster-state snapshot, and the Kubernetes API (emulator, real HTTP)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from daemons.scheduler.daemon import Options, build
from daemons.scheduler.http import admin_app, extender_app
from daemons.scheduler.kube import KubeCluster
from daemons.scheduler.memory import MemoryCluster
from daemons.scheduler.mirror import ClusterMirror
from daemons.scheduler.service import SchedulerService
from tests.daemons.scheduler.cluster import binding_args, extender_args, fleet, gpu, gpu_pod, gpunode, node, pool
from tests.daemons.scheduler.conftest import Setup
from tests.kubeapi.emulator import KubeEmulator
from tfcore.k8s import Event, request_json
from tfcore.sched import Allocator
from tfcore.sched.allocator import Usage

NODES = ["node-0", "node-1", "node-2"]
OVER_QUOTA = "GPUResourcesFit/quota: namespace team-a total requests TFLOPS would be 150, quota is 100"


def quota(namespace: str = "team-a", tflops: str = "100", name: str = "gpu-quota") -> dict[str, Any]:
    return {
        "apiVersion": "tensor-fusion.ai/v1",
        "kind": "GPUResourceQuota",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"total": {"requests": {"tflops": tflops, "vram": "1Ti"}}},
    }


def team_pod(name: str, tflops: str, namespace: str = "team-a") -> dict[str, Any]:
    pod = gpu_pod(name, uid=f"uid-{name}", tflops=tflops, vram="4Gi")
    pod["metadata"]["namespace"] = namespace
    return pod


def tf_cluster(name: str, pools: list[tuple[str, bool]]) -> dict[str, Any]:
    return {
        "apiVersion": "tensor-fusion.ai/v1",
        "kind": "TensorFusionCluster",
        "metadata": {"name": name},
        "spec": {"gpuPools": [{"name": p, "isDefault": default} for p, default in pools]},
    }


def two_pools(first: str = "training", second: str = "inference") -> list[dict[str, Any]]:
    """node-0 in pool `first`, node-1 in pool `second`."""
    objects: list[dict[str, Any]] = [pool(first), pool(second)]
    for name, pool_name in (("node-0", first), ("node-1", second)):
        objects += [gpunode(name, pool_name), node(name), gpu(name, 0, pool_name=pool_name)]
    return objects


# ---- quotas ------------------------------------------------------------------------------------


async def test_a_namespace_over_its_quota_is_rejected_with_the_reason() -> None:
    setup = Setup()
    setup.cluster.apply(quota())
    async with TestClient(TestServer(extender_app(setup.service, setup.cluster))) as ext:
        small, big, other = team_pod("small", "50"), team_pod("big", "100"), team_pod("other", "100", "team-b")
        for pod in (small, big, other):
            setup.cluster.apply(pod)
        filtered = await (await ext.post("/filter", json=extender_args(small, NODES))).json()
        assert filtered["NodeNames"] == NODES
        assert await (await ext.post("/bind", json=binding_args(small, "node-0"))).json() == {}

        filtered = await (await ext.post("/filter", json=extender_args(big, NODES))).json()
        assert filtered["NodeNames"] == []
        assert filtered["FailedNodes"] == dict.fromkeys(NODES, OVER_QUOTA)
        refused = await (await ext.post("/bind", json=binding_args(big, "node-1"))).json()
        assert "quota" in refused["Error"]
        assert "uid-big" not in setup.service.allocator.allocations

        other_filtered = await (await ext.post("/filter", json=extender_args(other, NODES))).json()
        assert other_filtered["NodeNames"] == NODES  # team-b has no quota

        setup.cluster.apply(quota(tflops="200"))  # raised: the same pod now fits
        filtered = await (await ext.post("/filter", json=extender_args(big, NODES))).json()
        assert filtered["NodeNames"] == NODES
        setup.cluster.apply(quota(tflops="100"))
        setup.cluster.remove("GPUResourceQuota", "team-a/gpu-quota")  # removed: no limit
        filtered = await (await ext.post("/filter", json=extender_args(big, NODES))).json()
        assert filtered["NodeNames"] == NODES


async def test_several_quotas_in_one_namespace_enforce_the_first_and_say_so() -> None:
    setup = Setup()
    setup.cluster.apply(quota(name="b-quota", tflops="1000"))
    setup.cluster.apply(quota(name="a-quota", tflops="100"))
    assert setup.mirror.quota.check("team-a", _empty(), _tflops(150)) == OVER_QUOTA.split(": ", 1)[1]
    assert any("only team-a/a-quota is enforced" in p for p in setup.mirror.problems)
    setup.cluster.remove("GPUResourceQuota", "team-a/a-quota")
    assert setup.mirror.quota.check("team-a", _empty(), _tflops(150)) is None  # b-quota (1000) now


def _empty() -> Usage:
    return Usage()


def _tflops(amount: int) -> Usage:
    """What one pod of `amount` TFLOPS adds."""
    return Usage(amount * 1000, 0, 0, 0, 1)


async def test_snapshot_quota_shows_in_simulate_schedule(tmp_path: Path) -> None:
    state = tmp_path / "cluster.yaml"
    state.write_text(yaml.safe_dump_all([*fleet(), quota()]))
    daemon = await build(Options(cluster_state=state, port=0, extender_port=0))
    try:
        async with TestClient(TestServer(daemon.admin)) as admin:
            reply = await admin.post("/api/simulate-schedule", json=team_pod("big", "150"))
            body = await reply.json()
    finally:
        await daemon.close()
    assert body["node"] is None
    assert OVER_QUOTA.split(": ", 1)[1] in str(body["status"])


async def test_quotas_and_default_pool_come_from_the_kubernetes_api(kube: KubeEmulator) -> None:
    api = kube.api_client()
    group = "/apis/tensor-fusion.ai/v1"
    for obj in two_pools():
        path = {
            "GPUPool": f"{group}/gpupools",
            "GPUNode": f"{group}/gpunodes",
            "GPU": f"{group}/gpus",
            "Node": "/api/v1/nodes",
        }[obj["kind"]]
        await request_json(api, "POST", path, body=obj)
        if "status" in obj:
            status = f"{path}/{obj['metadata']['name']}/status"
            await request_json(
                api, "PATCH", status, body={"status": obj["status"]}, content_type="application/merge-patch+json"
            )
    await request_json(api, "POST", "/api/v1/namespaces", body={"metadata": {"name": "team-a"}})
    await request_json(api, "POST", f"{group}/namespaces/team-a/gpuresourcequotas", body=quota())
    service = SchedulerService(Allocator())
    mirror = ClusterMirror(service)
    cluster = KubeCluster(api, mirror, watch_timeout=5)
    task = asyncio.create_task(cluster.run())
    try:
        await _eventually(lambda: cluster.not_ready() is None)
        assert service.allocator.default_pool is None  # two pools, none marked
        assert mirror.quota.check("team-a", _empty(), _tflops(150)) == OVER_QUOTA.split(": ", 1)[1]
        # Watched, not only listed: a TensorFusionCluster marking a default, a quota raised.
        await request_json(api, "POST", f"{group}/tensorfusionclusters", body=tf_cluster("main", [("inference", True)]))
        patch = {"spec": {"total": {"requests": {"tflops": "500"}}}}
        await request_json(
            api,
            "PATCH",
            f"{group}/namespaces/team-a/gpuresourcequotas/gpu-quota",
            body=patch,
            content_type="application/merge-patch+json",
        )
        await _eventually(lambda: service.allocator.default_pool == "inference")
        await _eventually(lambda: mirror.quota.check("team-a", _empty(), _tflops(150)) is None)
        await request_json(api, "DELETE", f"{group}/tensorfusionclusters/main")
        await _eventually(lambda: service.allocator.default_pool is None)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_relist_reaches_the_mirror_whole_so_what_went_while_the_watch_was_down_is_dropped(
    kube: KubeEmulator,
) -> None:
    service = SchedulerService(Allocator())
    mirror = ClusterMirror(service)
    cluster = KubeCluster(kube.api_client(), mirror, watch_timeout=5)
    cluster.store.apply(Event("SYNC", "GPUResourceQuota", objects=(quota(),)))
    cluster.store.apply(Event("ADDED", "GPUResourceQuota", quota(name="second")))
    assert set(mirror.quotas) == {"team-a/gpu-quota", "team-a/second"}
    cluster.store.apply(Event("SYNC", "GPUResourceQuota", objects=()))  # both deleted while the watch was down
    assert mirror.quotas == {}
    assert mirror.quota.check("team-a", _empty(), _tflops(150)) is None


async def _eventually(check: Callable[[], bool]) -> None:
    for _ in range(250):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition never met")


# ---- the default pool ----------------------------------------------------------------------------


def _setup(objects: list[dict[str, Any]], default_pool: str | None = None) -> tuple[SchedulerService, MemoryCluster]:
    service = SchedulerService(Allocator())
    cluster = MemoryCluster(objects)
    cluster.attach(ClusterMirror(service, default_pool=default_pool))
    return service, cluster


@pytest.mark.parametrize("gpupool_name", ["inference", "main-inference"])
async def test_is_default_pool_of_the_tensor_fusion_cluster_takes_pods_that_name_none(gpupool_name: str) -> None:
    objects = [*two_pools(second=gpupool_name), tf_cluster("main", [("training", False), ("inference", True)])]
    service, cluster = _setup(objects)
    assert service.allocator.default_pool == gpupool_name  # <cluster>-<pool> as the operator names it, or <pool>
    async with TestClient(TestServer(extender_app(service, cluster))) as ext:
        pod = gpu_pod("p", uid="p")
        cluster.apply(pod)
        filtered = await (await ext.post("/filter", json=extender_args(pod, ["node-0", "node-1"]))).json()
        assert filtered["NodeNames"] == ["node-1"]
        assert "pool" in filtered["FailedAndUnresolvableNodes"]["node-0"]
    cluster.remove("TensorFusionCluster", "main")
    assert service.allocator.default_pool is None  # two pools and no mark: pods must name one


async def test_default_pool_flag_overrides_is_default() -> None:
    objects = [*two_pools(), tf_cluster("main", [("inference", True)])]
    service, _ = _setup(objects, default_pool="training")
    assert service.allocator.default_pool == "training"
    async with TestClient(TestServer(admin_app(service))) as admin:
        result = await (await admin.post("/api/simulate-schedule", json=gpu_pod("p", uid="p"))).json()
    assert result["node"] == "node-0"


async def test_a_new_default_invalidates_reused_decisions() -> None:
    service, cluster = _setup(two_pools())
    async with TestClient(TestServer(extender_app(service, cluster))) as ext:
        pod = gpu_pod("p", uid="p")
        cluster.apply(pod)
        body = await (await ext.post("/filter", json=extender_args(pod, ["node-0", "node-1"]))).json()
        assert body["NodeNames"] == []  # no default pool yet
        cluster.apply(tf_cluster("main", [("training", True)]))
        body = await (await ext.post("/filter", json=extender_args(pod, ["node-0", "node-1"]))).json()
        assert body["NodeNames"] == ["node-0"]
