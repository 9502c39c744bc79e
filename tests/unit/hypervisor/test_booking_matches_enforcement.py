"""What the scheduler books on a GPU is what the hypervisor's region enforces there.

The scheduler reads a GPU's TFLOPS from the capacity the node's hypervisor reports (its rated
table, in milli-TFLOPS); both sides turn a pod's annotations into per-GPU amounts with
tfcore.sched.units.gpu_amounts. Checked on GPUs whose ratings differ (and are not whole
TFLOPS), for TFLOPS, compute-percent and dedicated requests.
"""

from __future__ import annotations

from typing import Any

import pytest

from tfcore.hypervisor.podworkers import NodeGPU, PodWorker, decide
from tfcore.hypervisor.report import tflops_quantity
from tfcore.model.quantity import Quantity
from tfcore.sched import Allocator, GPUSpec, NodeSpec, PoolInfo, pod_request
from tfcore.sched.units import capacity_milli_tflops

GIB = 1 << 30
NODE = "node-a"
UUID = "GPU-5153494d-0000-4000-8000-000000000001"
RATED = {"A100": 312.0, "H100": 989.4, "L4": 121.05}  # TFLOPS, as the hypervisor's table rates them

REQUESTS: dict[str, dict[str, str]] = {
    "tflops": {"tensor-fusion.ai/tflops-request": "100", "tensor-fusion.ai/tflops-limit": "150"},
    "percent": {
        "tensor-fusion.ai/compute-percent-request": "33.33333",  # finer than parts per million of a GPU
        "tensor-fusion.ai/compute-percent-limit": "50",
    },
    "dedicated": {"tensor-fusion.ai/dedicated-gpu": "true"},
}


def _pod(annotations: dict[str, str]) -> dict[str, Any]:
    if "tensor-fusion.ai/dedicated-gpu" not in annotations:
        annotations = {**annotations, "tensor-fusion.ai/vram-request": "4Gi", "tensor-fusion.ai/vram-limit": "8Gi"}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "train-0",
            "namespace": "ml",
            "uid": "uid-1",
            "labels": {"tensor-fusion.ai/enabled": "true"},
            "annotations": {**annotations, "tensor-fusion.ai/gpu-ids": UUID.lower()},
        },
        "spec": {"nodeName": NODE, "containers": [{"name": "main", "image": "cuda"}]},
        "status": {"phase": "Running"},
    }


def _booked(pod: dict[str, Any], rated_milli: int, vram: int) -> tuple[int, int, int, int]:
    """The scheduler's share of the pod on a GPU whose object reports `rated_milli` as capacity."""
    capacity = capacity_milli_tflops(Quantity(tflops_quantity(rated_milli)))  # the GPU object's round trip
    pool = PoolInfo("shared", tflops_oversell_ratio=100, vram_expand_to_host_mem=0, vram_expand_to_host_disk=0)
    gpu = GPUSpec(UUID.lower(), NODE, capacity, vram, index=0)
    allocator = Allocator.build([pool], [NodeSpec(NODE, "shared")], [gpu], default_pool="shared")
    share = allocator.allocate(pod_request(pod), [UUID.lower()]).shares[0]
    return share.tflops, share.vram, share.tflops_limit, share.vram_limit


@pytest.mark.parametrize("model", sorted(RATED))
@pytest.mark.parametrize("kind", sorted(REQUESTS))
def test_booked_and_enforced_amounts_agree(model: str, kind: str) -> None:
    vram = 24 * GIB if model == "L4" else 80 * GIB
    gpu = NodeGPU(UUID, RATED[model], vram)
    pod = _pod(REQUESTS[kind])
    decision = decide(pod, NODE, [gpu])
    assert isinstance(decision, PodWorker), decision
    spec = decision.spec
    enforced = (spec.tflops_request_milli, spec.vram_request_bytes, spec.tflops_limit_milli, spec.vram_limit_bytes)
    assert enforced == _booked(pod, gpu.rated_tflops_milli, vram)


def test_a_percent_is_of_each_gpus_own_rating() -> None:
    pod = _pod(REQUESTS["percent"])
    small = decide(pod, NODE, [NodeGPU(UUID, RATED["L4"], 24 * GIB)])
    big = decide(pod, NODE, [NodeGPU(UUID, RATED["H100"], 80 * GIB)])
    assert isinstance(small, PodWorker)
    assert isinstance(big, PodWorker)
    assert small.spec.tflops_limit_milli == 60_525  # half of 121.05 TFLOPS
    assert big.spec.tflops_limit_milli == 494_700
