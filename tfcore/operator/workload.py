"""TensorFusionWorkload: one per owner of TF pods (Deployment, StatefulSet, ReplicaSet, Job or
the bare pod), named by the pods' `tensor-fusion.ai/workload` label (the webhook sets it).

The spec comes from the pods' annotations and the owner's replicas (capped by the canary's
`enabled-replicas`); the status counts the live TF pods (workers) and the ready ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tfcore.model.annotations import LABEL_ENABLED, LABEL_WORKLOAD, parse_pod
from tfcore.model.codec import to_builtins
from tfcore.model.errors import ValidationError
from tfcore.model.meta import GPUResourceRequirements, GPUResources
from tfcore.operator.conditions import conditions_with_ready
from tfcore.operator.objects import API_VERSION, LABEL_MANAGED_BY, MANAGER, Obj, deleting, labels_of, meta, name_of

WorkloadKey = tuple[str, str]  # namespace, name
FINISHED = frozenset({"Succeeded", "Failed"})


def workload_key(pod: Obj) -> WorkloadKey | None:
    """The workload a pod works for, or None for pods that are not tensor-fusion workers."""
    labels = labels_of(pod)
    name = labels.get(LABEL_WORKLOAD)
    if labels.get(LABEL_ENABLED) != "true" or not name:
        return None
    return str(meta(pod).get("namespace") or "default"), name


def desired_spec(pods: Iterable[Obj], owner_replicas: int | None) -> dict[str, Any]:
    """The workload's spec from its newest valid pod's annotations and the owner's replicas."""
    spec: dict[str, Any] = {}
    newest = sorted(pods, key=lambda p: str(meta(p).get("creationTimestamp") or ""), reverse=True)
    for pod in newest:
        try:
            request = parse_pod(pod)
        except ValidationError:
            continue  # the webhook admitted it; a later edit cannot make the workload fail
        requests = GPUResources(tflops=request.tflops_request, vram=request.vram_request)
        limits = GPUResources(tflops=request.tflops_limit, vram=request.vram_limit)
        resources = to_builtins(GPUResourceRequirements(requests=requests, limits=limits))
        spec = {
            "poolName": request.pool,
            "qos": request.qos,
            "gpuCount": request.gpu_count,
            "gpuModel": request.gpu_model,
            "vendor": request.vendor,
            "isLocalGPU": request.is_local_gpu,
            "resources": resources or None,
        }
        canary = request.enabled_replicas
        if owner_replicas is not None:
            spec["replicas"] = min(owner_replicas, canary) if canary is not None else owner_replicas
        break
    return {k: v for k, v in spec.items() if v is not None}


def desired_workload(key: WorkloadKey, pods: Iterable[Obj], owner: Obj | None) -> dict[str, Any]:
    """A new TensorFusionWorkload, owned by the pods' owner so it goes when the owner goes."""
    namespace, name = key
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": {LABEL_MANAGED_BY: MANAGER}}
    if owner is not None:
        metadata["ownerReferences"] = [
            {
                "apiVersion": str(owner.get("apiVersion") or "v1"),
                "kind": str(owner.get("kind") or ""),
                "name": name_of(owner),
                "uid": str(meta(owner).get("uid") or ""),
            }
        ]
    return {
        "apiVersion": API_VERSION,
        "kind": "TensorFusionWorkload",
        "metadata": metadata,
        "spec": desired_spec(pods, owner_replicas(owner)),
    }


def owner_replicas(owner: Obj | None) -> int | None:
    if owner is None or owner.get("kind") not in ("Deployment", "StatefulSet", "ReplicaSet"):
        return None
    replicas = (owner.get("spec") or {}).get("replicas")
    return int(replicas) if isinstance(replicas, int) else 1


def workload_status(workload: Obj, pods: Iterable[Obj], *, now: str) -> dict[str, Any]:
    """Workers (live TF pods), ready workers, phase and a Ready condition."""
    live = [p for p in pods if not deleting(p) and (p.get("status") or {}).get("phase") not in FINISHED]
    failed = [p for p in pods if (p.get("status") or {}).get("phase") == "Failed"]
    ready = [p for p in live if _ready(p)]
    wanted = (workload.get("spec") or {}).get("replicas")
    generation = meta(workload).get("generation")
    if ready and len(ready) == len(live) and (wanted is None or len(ready) >= wanted):
        phase, ok, reason, message = "Running", "True", "WorkersReady", f"{len(ready)} worker(s) ready"
    elif failed and not ready:
        phase, ok, reason, message = "Failed", "False", "WorkersFailed", f"{len(failed)} worker(s) failed"
    else:
        target = wanted if wanted is not None else len(live)
        phase, ok, reason, message = "Pending", "False", "WorkersNotReady", f"{len(ready)} of {target} worker(s) ready"
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": conditions_with_ready(workload, ok, reason, message, now=now),
        "workerCount": len(live),
        "readyWorkers": len(ready),
    }
    if generation is not None:
        status["observedGeneration"] = generation
    return status


def _ready(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") != "Running":
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or ())
