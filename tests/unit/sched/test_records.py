from __future__ import annotations

import copy
from typing import Any

from tests.unit.sched.fleet import fleet, framework
from tfcore.sched import Allocation, allocation_patch, pod_request, rebuild_from_pods


def _pod(name: str, **annotations: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "team",
            "uid": f"uid-{name}",
            "labels": {"tensor-fusion.ai/enabled": "true"},
            "annotations": {
                "tensor-fusion.ai/tflops-request": "20",
                "tensor-fusion.ai/tflops-limit": "40",
                "tensor-fusion.ai/vram-request": "8Gi",
                "tensor-fusion.ai/vram-limit": "8Gi",
                **annotations,
            },
        },
        "spec": {"schedulerName": "tensor-fusion-scheduler", "containers": [{"name": "main", "image": "x"}]},
        "status": {"phase": "Pending"},
    }


def _bind(pod: dict[str, Any], allocation: Allocation) -> dict[str, Any]:
    """What the bind step does to the pod in the cluster: merge the patch, set the node."""
    bound = copy.deepcopy(pod)
    bound["metadata"]["annotations"].update(allocation_patch(allocation)["metadata"]["annotations"])
    bound["spec"]["nodeName"] = allocation.node
    bound["status"]["phase"] = "Running"
    return bound


def test_a_restarted_scheduler_rebuilds_exactly_the_same_state() -> None:
    allocator = fleet(3, 2)
    fw = framework(allocator)
    pods = [_pod(f"p{i}", **({"tensor-fusion.ai/gpu-count": "2"} if i % 3 == 0 else {})) for i in range(10)]
    bound = []
    for pod in pods:
        result = fw.schedule(pod_request(pod))
        assert result.allocation is not None
        bound.append(_bind(pod, result.allocation))

    restarted = fleet(3, 2)
    report = rebuild_from_pods(restarted, bound)
    assert report.problems == []
    assert len(report.restored) == 10
    assert restarted.state_fingerprint() == allocator.state_fingerprint()
    assert restarted.allocations == allocator.allocations
    assert restarted.namespace_usage == allocator.namespace_usage
    # and rebuilding twice changes nothing
    rebuild_from_pods(restarted, bound)
    assert restarted.state_fingerprint() == allocator.state_fingerprint()


def test_rebuild_skips_finished_and_unplaced_pods_and_reports_bad_ones() -> None:
    allocator = fleet(1, 1)
    done = _pod("done", **{"tensor-fusion.ai/gpu-ids": "gpu-0-0"})
    done["status"]["phase"] = "Succeeded"
    pending = _pod("pending")
    lost = _pod("lost", **{"tensor-fusion.ai/gpu-ids": "gpu-9-9"})
    broken = _pod("broken", **{"tensor-fusion.ai/gpu-ids": "gpu-0-0", "tensor-fusion.ai/vram-request": "lots"})
    report = rebuild_from_pods(allocator, [done, pending, lost, broken])
    assert report.restored == []
    assert allocator.allocations == {}
    fields = [p.field for p in report.problems]
    assert fields[0].startswith("pod team/lost")
    assert "gpu-9-9" in report.problems[0].message
    assert fields[1] == "pod team/broken.tensor-fusion.ai/vram-request"


def test_rebuild_records_pods_beyond_capacity() -> None:
    allocator = fleet(1, 1, tflops=30)  # the pool shrank while 2 x 20 TFLOPS pods run on it
    pods = [_pod(n, **{"tensor-fusion.ai/gpu-ids": "gpu-0-0"}) for n in ("a", "b")]
    report = rebuild_from_pods(allocator, pods)
    assert len(report.restored) == 2
    assert allocator.gpus["gpu-0-0"].free_tflops == -10_000
    assert not framework(allocator).schedule(pod_request(_pod("c"))).ok
