"""What every component reads off a core/v1 Pod the same way: the scheduler it asks for, the
NVIDIA GPUs it wants, and the admission decision recorded on it.

Here rather than in tfcore.admission so the scheduler and the operator need not depend on
admission to read a pod.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Final

from tfcore.model.annotations import ADMISSION

SCHEDULER_NAME: Final = "tensor-fusion-scheduler"  # schedulerName of TF pods, and its profile's name
NVIDIA_GPU: Final = "nvidia.com/gpu"


class Mode(StrEnum):
    """What admission decided for a pod (the `tensor-fusion.ai/admission` annotation)."""

    TENSOR_FUSION = "tensor-fusion"
    NATIVE = "native"


def recorded_mode(pod: Mapping[str, Any]) -> Mode | None:
    """The decision an earlier pass of admission wrote on this pod, if any."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(ADMISSION)
    return Mode(value) if value in (Mode.TENSOR_FUSION, Mode.NATIVE) else None


def pod_nvidia_gpus(spec: Mapping[str, Any]) -> int:
    """nvidia.com/gpu a pod asks for: the sum over containers, or more if one init container asks more."""
    containers = sum(nvidia_gpu_count(c) for c in spec.get("containers") or () if isinstance(c, dict))
    init = max((nvidia_gpu_count(c) for c in spec.get("initContainers") or () if isinstance(c, dict)), default=0)
    return max(containers, init)


def nvidia_gpu_count(container: Mapping[str, Any]) -> int:
    resources = container.get("resources") or {}
    counts = [whole_gpus((resources.get(part) or {}).get(NVIDIA_GPU)) for part in ("limits", "requests")]
    return max(counts)


def whole_gpus(value: object) -> int:
    """A GPU count as Kubernetes writes it ("1", 2); 0 for anything else."""
    text = str(value) if value is not None else ""
    return int(text) if text.isdigit() and len(text) < 4 else 0
