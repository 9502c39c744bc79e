"""Cluster -> pools -> nodes -> GPUs converge through the real client and the API emulator."""

from __future__ import annotations

from typing import Any

from tests.daemons.controller.helpers import Cluster, replicas, spec_cluster, wait_for
from tests.kubeapi.emulator import KubeEmulator
from tfcore.sched.units import bytes_text

GI = 1 << 30
POOL = "tensor-fusion-cluster-shared"


def _running(obj: dict[str, Any] | None) -> bool:
    return obj is not None and (obj.get("status") or {}).get("phase") == "Running"


async def test_spec_cluster_converges_with_the_spec_oversubscription(kube: KubeEmulator) -> None:
    api = Cluster(kube)
    await api.node("node-a", {"gpu": "true"})
    await api.node("node-b", {"gpu": "true"})
    await api.node("cpu-only", {"gpu": "false"})
    async with replicas(kube, "solo"):
        await api.create("tensorfusionclusters", spec_cluster())
        pool = await wait_for(lambda: api.get("gpupools", POOL), lambda p: p is not None)
        assert pool["spec"]["capacityConfig"]["oversubscription"] == {
            "tflopsOversellRatio": 300,
            "vramExpandToHostMem": 40,
            "vramExpandToHostDisk": 20,
        }
        owner = pool["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["controller"]) == (
            "TensorFusionCluster",
            "tensor-fusion-cluster",
            True,
        )
        await api.hypervisor_reports("node-a", 2)
        await api.hypervisor_reports("node-b", 2)
        # 300% TFLOPS; VRAM + 40% of RAM + 20% of disk per node (exact bytes).
        host_share = 128 * GI * 40 // 100 + 500 * GI * 20 // 100
        expected = {
            "totalTFlops": "484",
            "virtualTFlops": "1452",
            "availableTFlops": "484",
            "totalVRAM": "96Gi",
            "virtualVRAM": bytes_text(96 * GI + 2 * host_share),
            "availableVRAM": "96Gi",
        }
        cluster = await wait_for(
            lambda: api.get("tensorfusionclusters", "tensor-fusion-cluster"),
            lambda c: _running(c) and {k: c["status"].get(k) for k in expected} == expected,
        )
        pool = await api.get("gpupools", POOL)
        gpunodes = {n["metadata"]["name"]: n for n in await api.list("gpunodes")}
        gpus = await api.list("gpus")

    assert sorted(gpunodes) == ["node-a", "node-b"]  # cpu-only matches no pool
    for node in gpunodes.values():
        assert node["metadata"]["labels"]["tensor-fusion.ai/gpupool"] == POOL
        assert node["metadata"]["ownerReferences"][0]["name"] == POOL
        assert node["status"]["phase"] == "Running"
        assert node["status"]["managedGPUs"] == 2
    for gpu in gpus:
        assert gpu["metadata"]["labels"]["tensor-fusion.ai/gpupool"] == POOL
        assert gpu["metadata"]["ownerReferences"][0]["kind"] == "GPUNode"

    assert pool is not None
    assert {k: pool["status"][k] for k in expected} == expected
    assert pool["status"]["totalNodes"] == 2
    assert pool["status"]["readyNodes"] == 2
    assert pool["status"]["conditions"][0]["type"] == "Ready"
    assert pool["status"]["conditions"][0]["status"] == "True"
    assert {k: cluster["status"][k] for k in expected} == expected
    assert cluster["status"]["readyGPUPools"] == [POOL]
    assert cluster["metadata"]["finalizers"] == ["tensor-fusion.ai/finalizer"]
    assert len(await api.events("PoolCreated")) == 1
