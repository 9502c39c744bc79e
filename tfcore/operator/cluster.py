"""TensorFusionCluster: the GPUPools it owns (from gpuPools[].specTemplate) and its status."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tfcore.model.codec import decode
from tfcore.model.errors import ValidationError
from tfcore.model.pool import TensorFusionCluster
from tfcore.operator.capacity import Totals
from tfcore.operator.conditions import ready_condition
from tfcore.operator.objects import (
    API_VERSION,
    LABEL_CLUSTER,
    LABEL_MANAGED_BY,
    MANAGER,
    Obj,
    controller_ref,
    is_controlled_by,
    labels_of,
    meta,
    name_of,
)


def pool_name(cluster: str, pool: str) -> str:
    """The GPUPool a cluster's gpuPools[] entry becomes (the reference operator's naming)."""
    return f"{cluster}-{pool}"


@dataclass(slots=True)
class PoolPlan:
    """What to write so the cluster's pools match its spec."""

    create: list[dict[str, Any]] = field(default_factory=list)
    update: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # name, merge patch
    delete: list[str] = field(default_factory=list)


def check_cluster(cluster: Obj) -> TensorFusionCluster:
    """The cluster decoded, or ValidationError naming the bad field."""
    decoded = decode(dict(cluster), TensorFusionCluster, where=f"TensorFusionCluster/{name_of(cluster)}")
    seen: set[str] = set()
    for index, definition in enumerate((decoded.spec.gpu_pools or []) if decoded.spec else []):
        if definition.name in seen:
            raise ValidationError.single(
                f"spec.gpuPools[{index}].name", f"duplicate pool name {definition.name!r}", "unique pool names"
            )
        seen.add(definition.name)
    return decoded


def plan_pools(cluster: Obj, pools: Iterable[Obj]) -> PoolPlan:
    """Creates, spec updates and deletions that make the owned GPUPools match gpuPools[].

    Pools this cluster does not control are never touched (a same-named foreign pool is left
    alone and reported by the status); templates are copied as the API server stored them.
    """
    cluster_name = name_of(cluster)
    existing = {name_of(p): p for p in pools}
    plan = PoolPlan()
    wanted: set[str] = set()
    for definition in (cluster.get("spec") or {}).get("gpuPools") or ():
        name = pool_name(cluster_name, str(definition.get("name")))
        wanted.add(name)
        template = dict(definition.get("specTemplate") or {})
        labels = {LABEL_CLUSTER: cluster_name, LABEL_MANAGED_BY: MANAGER}
        current = existing.get(name)
        if current is None:
            plan.create.append(
                {
                    "apiVersion": API_VERSION,
                    "kind": "GPUPool",
                    "metadata": {"name": name, "labels": labels, "ownerReferences": [controller_ref(cluster)]},
                    "spec": template,
                }
            )
            continue
        if not is_controlled_by(current, cluster):
            continue
        patch: dict[str, Any] = {}
        if (current.get("spec") or {}) != template:
            patch["spec"] = _replacing(current.get("spec") or {}, template)
        missing = {k: v for k, v in labels.items() if labels_of(current).get(k) != v}
        if missing:
            patch["metadata"] = {"labels": missing}
        if patch:
            plan.update.append((name, patch))
    for name, pool in existing.items():
        if name not in wanted and is_controlled_by(pool, cluster) and not meta(pool).get("deletionTimestamp"):
            plan.delete.append(name)
    return plan


def _replacing(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    """A merge patch turning `current` into exactly `wanted` (keys gone from wanted become null)."""
    patch: dict[str, Any] = {}
    for key in current.keys() - wanted.keys():
        patch[key] = None
    for key, value in wanted.items():
        old = current.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            nested = _replacing(old, value)
            if nested:
                patch[key] = nested
        elif old != value:
            patch[key] = value
    return patch


def cluster_status(
    cluster: Obj, pools: Iterable[Obj], *, now: str, problem: str | None = None, problem_reason: str = "InvalidSpec"
) -> dict[str, Any]:
    """The cluster's status: phase, pool readiness and the sum of its pools' capacity; a
    `problem` (an invalid spec, a pool the API server refused) makes it Ready=False."""
    owned = sorted((p for p in pools if is_controlled_by(p, cluster)), key=name_of)
    generation = meta(cluster).get("generation")
    definitions = (cluster.get("spec") or {}).get("gpuPools") or ()
    wanted = [pool_name(name_of(cluster), str(d.get("name"))) for d in definitions]
    totals = Totals()
    ready: list[str] = []
    not_ready: list[str] = []
    nodes = gpus = 0
    for pool in owned:
        observed = pool.get("status") or {}
        totals.add_status(observed)
        nodes += int(observed.get("totalNodes") or 0)
        gpus += int(observed.get("totalGPUs") or 0)
        (ready if observed.get("phase") == "Running" else not_ready).append(name_of(pool))
    missing = sorted(set(wanted) - {name_of(p) for p in owned})
    if problem:
        phase, ok, reason, message = "Pending", "False", problem_reason, problem
    elif missing:
        phase, ok, reason, message = "Pending", "False", "PoolsMissing", f"waiting for GPUPools {', '.join(missing)}"
    elif not_ready:
        phase, ok, reason, message = "Pending", "False", "PoolsNotReady", f"GPUPools not ready: {', '.join(not_ready)}"
    else:
        phase, ok, reason, message = "Running", "True", "PoolsReady", f"{len(ready)} GPUPool(s) ready"
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": [ready_condition(cluster, ok, reason, message, now=now)],
        "totalPools": len(owned),
        "totalNodes": nodes,
        "totalGPUs": gpus,
        "readyGPUPools": ready,
        "notReadyGPUPools": not_ready,
        **totals.cluster_fields(),
    }
    if generation is not None:
        status["observedGeneration"] = generation
    return status
