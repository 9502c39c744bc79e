from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.unit.sched.fleet import GiB, T, fleet, plain_pool, pod
from tfcore.model.documents import load_documents
from tfcore.model.kinds import decode_object
from tfcore.model.workload import GPUResourceQuota
from tfcore.sched import (
    AllocationError,
    Allocator,
    GPUResourceQuotaPolicy,
    GPUSpec,
    NodeSpec,
    PoolInfo,
    specs_from_models,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def test_virtual_capacity_follows_the_pools_oversubscription() -> None:
    pool = PoolInfo("p", tflops_oversell_ratio=300, vram_expand_to_host_mem=50, vram_expand_to_host_disk=10)
    node = NodeSpec("n", "p", ram_bytes=64 * GiB, disk_bytes=200 * GiB)
    gpus = [GPUSpec(f"g{i}", "n", 100 * T, 40 * GiB, index=i) for i in range(2)]
    allocator = Allocator.build([pool], [node], gpus)
    gpu = allocator.gpus["g0"]
    assert gpu.virtual_tflops == 300 * T  # 300% = 3x
    # host tiers (32Gi of RAM + 20Gi of disk) are shared by the node's two GPUs
    assert gpu.virtual_vram == 40 * GiB + (32 * GiB + 20 * GiB) // 2


def test_pool_defaults_apply_when_unset() -> None:
    allocator = Allocator.build([], [NodeSpec("n", "unknown")], [GPUSpec("g", "n", 10 * T, 8 * GiB)])
    assert allocator.gpus["g"].virtual_tflops == 50 * T  # DEFAULT_TFLOPS_OVERSELL_RATIO = 500


def test_changing_the_pool_ratio_keeps_allocations() -> None:
    allocator = fleet(1, 1)
    allocator.allocate(pod("a", tflops=60), ["gpu-0-0"])
    allocator.set_pool(PoolInfo("shared", tflops_oversell_ratio=200, vram_expand_to_host_mem=0))
    gpu = allocator.gpus["gpu-0-0"]
    assert (gpu.virtual_tflops, gpu.used_tflops, gpu.free_tflops) == (200 * T, 60 * T, 140 * T)


def test_release_restores_capacity_exactly_and_is_idempotent() -> None:
    allocator = fleet(1, 2)
    before = allocator.state_fingerprint()
    first = allocator.allocate(pod("a", gpu_count=2), ["gpu-0-0", "gpu-0-1"])
    assert allocator.allocate(pod("a", gpu_count=2), ["gpu-0-0", "gpu-0-1"]) is first
    assert allocator.gpus["gpu-0-1"].used_vram == 4 * GiB
    assert allocator.namespace_usage["default"].workers == 1
    assert allocator.release("a") == first
    assert allocator.release("a") is None
    assert allocator.state_fingerprint() == before
    assert allocator.namespace_usage == {}


def test_allocate_refuses_what_does_not_fit() -> None:
    allocator = fleet(2, 1)
    allocator.allocate(pod("a", tflops=90), ["gpu-0-0"])
    with pytest.raises(AllocationError, match="too little free capacity"):
        allocator.allocate(pod("b", tflops=20), ["gpu-0-0"])
    with pytest.raises(AllocationError, match="already holds"):
        allocator.allocate(pod("a", tflops=90), ["gpu-1-0"])
    with pytest.raises(AllocationError, match="same node"):
        allocator.allocate(pod("c"), ["gpu-0-0", "gpu-1-0"])
    with pytest.raises(AllocationError, match="unknown GPU"):
        allocator.allocate(pod("d"), ["gpu-9"])
    assert set(allocator.allocations) == {"a"}


def test_dedicated_gpu_takes_the_whole_device() -> None:
    allocator = fleet(1, 2)
    allocator.allocate(pod("small"), ["gpu-0-1"])
    with pytest.raises(AllocationError, match="in use"):
        allocator.allocate(pod("whole", dedicated=True), ["gpu-0-1"])
    allocator.allocate(pod("whole", dedicated=True), ["gpu-0-0"])
    gpu = allocator.gpus["gpu-0-0"]
    assert gpu.dedicated
    assert gpu.free_tflops == 0
    assert gpu.free_vram == 0
    with pytest.raises(AllocationError, match="dedicated"):
        allocator.allocate(pod("tiny", tflops=0, vram_gib=0), ["gpu-0-0"])
    allocator.release("whole")
    assert allocator.gpus["gpu-0-0"].dedicated is False
    assert allocator.gpus["gpu-0-0"].free_tflops == 100 * T


def test_limits_are_accounted_beside_requests() -> None:
    allocator = fleet(1, 1)
    allocator.allocate(replace(pod("a", tflops=10), tflops_limit=80 * T), ["gpu-0-0"])
    gpu = allocator.gpus["gpu-0-0"]
    assert (gpu.used_tflops, gpu.limit_tflops) == (10 * T, 80 * T)


def test_percent_requests_scale_with_each_gpus_capacity() -> None:
    allocator = Allocator.build(
        [plain_pool()],
        [NodeSpec("n", "shared")],
        [GPUSpec("big", "n", 300 * T, 80 * GiB), GPUSpec("small", "n", 120 * T, 24 * GiB, index=1)],
    )
    request = pod("a", tflops=0, percent_ppm=250_000, percent_limit_ppm=500_000)  # 25% / 50%
    allocation = allocator.allocate(request, ["small"])
    assert (allocation.shares[0].tflops, allocation.shares[0].tflops_limit) == (30 * T, 60 * T)


def test_quota_hook_refuses_past_the_namespace_total() -> None:
    quota = decode_object(
        {
            "apiVersion": "tensor-fusion.ai/v1",
            "kind": "GPUResourceQuota",
            "metadata": {"name": "q", "namespace": "team"},
            "spec": {"total": {"requests": {"tflops": "50", "vram": "100Gi"}, "maxWorkers": 2}},
        }
    )
    assert isinstance(quota, GPUResourceQuota)
    allocator = fleet(1, 2)
    allocator.quota = GPUResourceQuotaPolicy([quota])
    allocator.allocate(pod("a", tflops=30, namespace="team"), ["gpu-0-0"])
    with pytest.raises(AllocationError, match="total requests TFLOPS would be 60"):
        allocator.allocate(pod("b", tflops=30, namespace="team"), ["gpu-0-1"])
    allocator.allocate(pod("c", tflops=30, namespace="other"), ["gpu-0-1"])  # other namespaces unaffected
    allocator.allocate(pod("d", tflops=20, namespace="team"), ["gpu-0-1"])
    with pytest.raises(AllocationError, match="workers"):
        allocator.allocate(pod("e", tflops=0, namespace="team"), ["gpu-0-1"])


def test_build_from_the_model_fixtures() -> None:
    objects = load_documents(
        (FIXTURES / "objects/gpunode.yaml").read_text() + "\n---\n" + (FIXTURES / "objects/gpu.yaml").read_text()
    )
    _pools, nodes, gpus = specs_from_models(objects)
    allocator = Allocator.build([PoolInfo("shared", tflops_oversell_ratio=300)], nodes, gpus)
    gpu = allocator.gpus["gpu-0a1b2c3d"]
    assert gpu.node.name == "node-a"
    assert gpu.pool.name == "shared"
    assert gpu.virtual_tflops == 363 * T
    # VRAM 23034Mi + (128Gi x 50% + 500Gi x 70%) from the node's host tiers (one GPU known here)
    assert gpu.virtual_vram == 23034 * 1024**2 + 64 * GiB + 350 * GiB
    assert gpu.spec.model == "NVIDIA L4"
    assert gpu.spec.numa_node == -1


def test_removing_and_readding_a_node_keeps_its_allocations() -> None:
    allocator = fleet(1, 1)
    allocator.allocate(pod("a"), ["gpu-0-0"])
    fingerprint = allocator.state_fingerprint()
    allocator.remove_node("node-0")
    assert allocator.gpus == {}
    allocator.set_node(NodeSpec("node-0", "shared"))
    allocator.set_gpu(GPUSpec("gpu-0-0", "node-0", 100 * T, 40 * GiB, model="NVIDIA A100", vendor="NVIDIA"))
    assert allocator.state_fingerprint() == fingerprint


def test_snapshot_lists_gpus_nodes_and_allocations() -> None:
    allocator = fleet(1, 1, pool=replace(plain_pool(), default_qos="high"))
    allocator.allocate(pod("a", tflops=10, vram_gib=4), ["gpu-0-0"])
    snap = allocator.snapshot()
    assert snap["gpus"]["gpu-0-0"]["available"] == {"tflops": "90", "vram": "36Gi"}
    assert snap["gpus"]["gpu-0-0"]["workers"]["a"]["requests"] == {"tflops": "10", "vram": "4Gi"}
    assert snap["gpus"]["gpu-0-0"]["workers"]["a"]["pod"] == {"namespace": "default", "name": "a"}
    assert snap["gpus"]["gpu-0-0"]["workers"]["a"]["qos"] == "high"  # the pool's default QoS
    assert snap["nodes"]["node-0"]["workers"] == ["a"]
    assert snap["allocations"]["a"]["gpus"][0]["gpu"] == "gpu-0-0"


def test_native_pods_block_a_node_until_the_device_plugins_gpus_are_reported() -> None:
    allocator = Allocator()
    allocator.set_node(NodeSpec("n", "shared"))
    for i in range(2):
        allocator.set_gpu(GPUSpec(f"g{i}", "n", 100_000, 1 << 30, index=i))
    seen: list[str] = []

    class Listener:
        def node_changed(self, node: Any) -> None:
            seen.append(node.name)

        def node_removed(self, node: Any) -> None: ...

    allocator.subscribe(Listener())
    allocator.set_native_pod("cpu-pod", "n", 0)
    assert seen == []  # pods without GPUs never disturb the indexes
    allocator.set_native_pod("p", "n", 1)
    node = allocator.nodes["n"]
    assert (node.native_requested, node.native_unsettled, node.max_free_vram) == (1, 1, -1)
    allocator.set_gpu(GPUSpec("g0", "n", 100_000, 1 << 30, index=0, schedulable=False, device_plugin=True))
    assert (node.native_unsettled, node.max_free_vram) == (0, 1 << 30)  # g1 is usable again, g0 never
    allocator.set_native_pod("p", "m", 1)  # moved (a replaced pod with the same uid): n is clear
    assert node.native_requested == 0
    allocator.forget_native_pod("p")
    assert allocator.native_pods == {}
    assert seen
