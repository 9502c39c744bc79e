"""A running pod resized in place (the autoscaler patching its annotations) is re-booked at
its new amounts, so the scheduler neither over-commits after a scale-up nor wastes room after
a scale-down; a broken edit changes nothing."""

from __future__ import annotations

import copy
from typing import Any

from daemons.scheduler.mirror import ClusterMirror
from daemons.scheduler.service import SchedulerService
from tests.daemons.scheduler.cluster import fleet, gpu_pod
from tfcore.sched import Allocator


def _bound(tflops: str, vram: str) -> dict[str, Any]:
    pod = gpu_pod("llm-0", uid="uid-llm", tflops=tflops, vram=vram)
    pod["metadata"]["annotations"] |= {"tensor-fusion.ai/gpu-ids": "node-0-gpu-0", "tensor-fusion.ai/index": "0"}
    pod["spec"]["nodeName"] = "node-0"
    pod["status"] = {"phase": "Running"}
    return pod


def test_a_resized_running_pod_is_booked_at_its_new_amounts() -> None:
    service = SchedulerService(Allocator())
    mirror = ClusterMirror(service)
    for obj in fleet(1, 1):
        mirror.upsert(obj["kind"], obj)
    mirror.upsert("Pod", _bound("100", "16Gi"))
    gpu = service.allocator.gpus["node-0-gpu-0"]
    assert (gpu.used_tflops, gpu.used_vram) == (100_000, 16 * 1024**3)

    mirror.upsert("Pod", _bound("150", "8Gi"))  # the autoscaler's patch
    gpu = service.allocator.gpus["node-0-gpu-0"]
    assert (gpu.used_tflops, gpu.used_vram) == (150_000, 8 * 1024**3)
    (share,) = service.allocator.allocations["uid-llm"].shares
    assert (share.tflops_limit, share.vram_limit) == (150_000, 8 * 1024**3)

    broken = copy.deepcopy(_bound("150", "8Gi"))
    broken["metadata"]["annotations"]["tensor-fusion.ai/tflops-request"] = "lots"
    mirror.upsert("Pod", broken)
    assert service.allocator.gpus["node-0-gpu-0"].used_tflops == 150_000
