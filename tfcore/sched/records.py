"""Allocations written on pods and read back: how a restarted scheduler rebuilds its state.

Bind writes `tensor-fusion.ai/gpu-ids` and `tensor-fusion.ai/index` on the pod (see
Allocation.to_annotations). The amounts are the pod's own request/limit annotations (resolved
by admission before scheduling), so pods + GPUs determine every allocation exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from tfcore.model.annotations import GPU_IDS
from tfcore.model.errors import Problem, ValidationError
from tfcore.sched.allocator import Allocation, AllocationError, Allocator
from tfcore.sched.request import pod_request

FINISHED_PHASES: Final = frozenset({"Succeeded", "Failed"})


@dataclass(slots=True)
class RebuildReport:
    """What a rebuild restored, and each pod it could not (never silently dropped)."""

    restored: list[Allocation] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def allocation_patch(allocation: Allocation) -> dict[str, Any]:
    """The JSON merge patch that records `allocation` on its pod."""
    return {"metadata": {"annotations": allocation.to_annotations()}}


def holds_gpus(pod: Mapping[str, Any]) -> bool:
    """Does this pod hold GPUs now (placed by us and not finished)?"""
    metadata = pod.get("metadata") or {}
    annotations = metadata.get("annotations") or {} if isinstance(metadata, Mapping) else {}
    status = pod.get("status") or {}
    phase = status.get("phase") if isinstance(status, Mapping) else None
    return isinstance(annotations, Mapping) and bool(annotations.get(GPU_IDS)) and phase not in FINISHED_PHASES


def rebuild_from_pods(allocator: Allocator, pods: Iterable[Mapping[str, Any]]) -> RebuildReport:
    """Record on `allocator` the allocation of every pod that holds GPUs (pods -> allocations).

    Capacity and quota are not checked: these pods run already, so the record follows the
    cluster even where it is over capacity. Idempotent: a pod already recorded is left as is.
    """
    report = RebuildReport()
    for position, pod in enumerate(pods):
        if not holds_gpus(pod):
            continue
        metadata = pod.get("metadata") or {}
        label = f"pod {metadata.get('namespace', 'default')}/{metadata.get('name', position)}"
        try:
            request = pod_request(pod)
            allocation = allocator.allocate(request, list(request.gpu_ids), force=True)
        except ValidationError as exc:
            report.problems.extend(exc.prefixed(label).problems)
            continue
        except AllocationError as exc:
            report.problems.append(Problem(f"{label}: {GPU_IDS}", str(exc), "GPUs known to the scheduler"))
            continue
        report.restored.append(allocation)
    return report
