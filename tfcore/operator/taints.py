"""NVIDIA GPU Operator coexistence, the soft guard: nodes where TensorFusion workers hold GPUs
carry a PreferNoSchedule taint, so native nvidia.com/gpu pods that reach the default scheduler
(the webhook routing them fails open) still prefer other nodes. The hard guard is the
tensor-fusion scheduler (docs/scheduler.md); this one only covers the webhook's outages.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from tfcore.operator.objects import Obj, meta
from tfcore.sched.records import holds_gpus

USED_BY_TAINT: Final = "tensor-fusion.ai/used-by"
USED_BY_VALUE: Final = "tensor-fusion"
EFFECT: Final = "PreferNoSchedule"


def nodes_with_workers(pods: Iterable[Obj]) -> set[str]:
    """Nodes where a TensorFusion pod holds GPUs now (placed and not finished)."""
    return {str(p["spec"]["nodeName"]) for p in pods if holds_gpus(p) and (p.get("spec") or {}).get("nodeName")}


def _ours(taint: Any) -> bool:
    return isinstance(taint, dict) and taint.get("key") == USED_BY_TAINT and taint.get("effect") == EFFECT


def taint_patch(node: Obj, used: bool) -> dict[str, Any] | None:
    """The merge patch that adds or removes our taint (None: already right). Taints are a list,
    which a merge patch replaces whole: the resourceVersion makes a concurrent change a 409."""
    taints = list((node.get("spec") or {}).get("taints") or [])
    has = any(_ours(t) for t in taints)
    if has == used:
        return None
    kept = [t for t in taints if not _ours(t)]
    if used:
        kept.append({"key": USED_BY_TAINT, "value": USED_BY_VALUE, "effect": EFFECT})
    return {"metadata": {"resourceVersion": meta(node).get("resourceVersion")}, "spec": {"taints": kept}}
