"""Which worker region each TensorFusion pod on this node should have (pure; daemons/hypervisor/pods.py acts).

A pod gets a region when it is labelled `tensor-fusion.ai/enabled=true`, bound to this node,
not finished, and the scheduler named its GPUs (`tensor-fusion.ai/gpu-ids`, GPU object names:
the UUID lowercased). Its limits come from the annotations the webhook resolved, parsed by
tfcore.model.annotations; what they come to on a GPU is tfcore.sched.units.gpu_amounts, the
same rule the scheduler books by, with the GPU's rating as the node reports it.

A region belongs to one pod *uid*: a new pod under the same name (a StatefulSet replacement)
gets a fresh one. A later edit of the limit annotations (the autoscaler resizing the pod in
place) changes the live region's limits; a broken edit never takes a running pod's region away
and leaves its limits as they were; only the pod finishing or going removes the region.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from tfcore.hypervisor.workerspec import WorkerSpec
from tfcore.model.annotations import (
    GPU_IDS,
    LABEL_ENABLED,
    VRAM_LIMIT,
    VRAM_REQUEST,
    VRAM_TIERING,
    WorkloadRequest,
    parse_request,
)
from tfcore.model.errors import ValidationError
from tfcore.sched.units import asked_amounts, gpu_amounts

SEPARATOR: Final = "/"
FINISHED_PHASES: Final = frozenset({"Succeeded", "Failed"})
_NAMESPACE: Final = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_POD_NAME: Final = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


@dataclass(frozen=True, slots=True)
class NodeGPU:
    """What the decisions need of one GPU of this node."""

    uuid: str
    rated_tflops: float
    vram_bytes: int

    @property
    def rated_tflops_milli(self) -> int:
        """As the node reports it in its GPU object's capacity (what the scheduler books against)."""
        return round(self.rated_tflops * 1000)


@dataclass(frozen=True, slots=True)
class PodWorker:
    """The region a pod should have."""

    namespace: str
    pod: str
    uid: str
    spec: WorkerSpec

    @property
    def name(self) -> str:
        return pod_worker_name(self.namespace, self.pod)

    @property
    def limits(self) -> Limits:
        return Limits.of(self.spec)


@dataclass(frozen=True, slots=True)
class Limits:
    """What a region grants per GPU."""

    tflops_request_milli: int
    tflops_limit_milli: int
    vram_request_bytes: int
    vram_limit_bytes: int

    @classmethod
    def of(cls, spec: WorkerSpec) -> Limits:
        return cls(spec.tflops_request_milli, spec.tflops_limit_milli, spec.booked_vram_bytes, spec.vram_limit_bytes)


@dataclass(frozen=True, slots=True)
class NoWorker:
    """Why a pod has no region. `event` (a CamelCase reason) when someone must fix something:
    the pod gets a Warning Event and any region its uid already has is kept."""

    namespace: str
    pod: str
    uid: str
    message: str
    event: str = ""

    @property
    def name(self) -> str:
        return pod_worker_name(self.namespace, self.pod)


Decision = PodWorker | NoWorker


def pod_worker_name(namespace: str, pod: str) -> str:
    """Pod workers are named NAMESPACE/POD: API worker names cannot hold "/", so none collide."""
    return f"{namespace}{SEPARATOR}{pod}"


def split_pod_worker_name(name: str) -> tuple[str, str] | None:
    """(namespace, pod) of a pod worker's name; None for any other name (an API worker's)."""
    namespace, sep, pod = name.partition(SEPARATOR)
    if not sep or not _NAMESPACE.fullmatch(namespace) or not _POD_NAME.fullmatch(pod) or ".." in pod:
        return None
    return namespace, pod


def check_pod_worker_name(name: str) -> tuple[str, str]:
    found = split_pod_worker_name(name)
    if found is None:
        raise ValidationError.single(
            "name", f"bad pod worker name {name!r}", "NAMESPACE/POD with Kubernetes namespace and pod names"
        )
    return found


def decide(pod: Mapping[str, Any], node_name: str, gpus: Sequence[NodeGPU]) -> Decision:
    """The region `pod` should have on node `node_name`, or why it has none."""
    metadata = _mapping(pod.get("metadata"))
    spec = _mapping(pod.get("spec"))
    status = _mapping(pod.get("status"))
    namespace, name, uid = (str(metadata.get(k) or "") for k in ("namespace", "name", "uid"))

    def none(message: str, event: str = "") -> NoWorker:
        return NoWorker(namespace, name, uid, message, event)

    labels = _mapping(metadata.get("labels"))
    if labels.get(LABEL_ENABLED) != "true":
        return none(f"not labelled {LABEL_ENABLED}=true")
    if spec.get("nodeName") != node_name:
        return none(f"not bound to node {node_name}")
    if status.get("phase") in FINISHED_PHASES:
        return none(f"finished ({status.get('phase')})")
    if split_pod_worker_name(pod_worker_name(namespace, name)) is None or not uid:
        return none("metadata.namespace, name and uid must be set")
    containers = [c for c in spec.get("containers") or [] if isinstance(c, Mapping)]
    try:
        request = parse_request(
            labels=labels,
            annotations=_mapping(metadata.get("annotations")),
            container_names=[str(c.get("name") or "") for c in containers],
        )
    except ValidationError as exc:
        text = "; ".join(str(p) for p in exc.problems)
        return none(f"bad TensorFusion annotations, no region made: {text}", "InvalidGPURequest")
    if not request.gpu_ids:
        return none(f"bound to {node_name} without {GPU_IDS}; no region made", "NoGPUAssigned")
    tiering = _mapping(metadata.get("annotations")).get(VRAM_TIERING, "true")
    if tiering not in ("true", "false"):
        return none(f"{VRAM_TIERING}: {tiering!r} (expected true or false); no region made", "InvalidGPURequest")
    chosen, problem = _gpus(request.gpu_ids, node_name, gpus)
    if problem:
        return none(problem, "UnknownGPU")
    amounts = _amounts(request, chosen)
    if isinstance(amounts, str):
        return none(amounts, "InvalidGPURequest")
    tflops_request, vram_request, tflops_limit, vram_limit = amounts
    worker = WorkerSpec(
        pod_worker_name(namespace, name),
        vram_limit_bytes=vram_limit,
        tflops_request_milli=tflops_request,
        tflops_limit_milli=tflops_limit,
        vram_request_bytes=vram_request,
        gpu_count=len(chosen),
        gpus=tuple(g.uuid for g in chosen),
        tenant_uid=_tenant_uid(spec, containers, request.inject_container),
        pod_uid=uid,
        workload=request.workload or "",
        qos=request.qos or "medium",
        vram_tiering=tiering == "true",
    )
    return PodWorker(namespace, name, uid, worker)


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _gpus(ids: Sequence[str], node_name: str, gpus: Sequence[NodeGPU]) -> tuple[list[NodeGPU], str]:
    by_name = {g.uuid.lower(): g for g in gpus}
    if len(set(ids)) != len(ids):
        return [], f"{GPU_IDS} {','.join(ids)} names a GPU twice; no region made"
    unknown = [i for i in ids if i.lower() not in by_name]
    if unknown:
        have = ", ".join(sorted(by_name)) or "none"
        missing = ", ".join(unknown)
        return [], f"GPU {missing} in {GPU_IDS} is not on node {node_name} (its GPUs: {have}); no region made"
    return [by_name[i.lower()] for i in ids], ""


def _amounts(request: WorkloadRequest, chosen: Sequence[NodeGPU]) -> tuple[int, int, int, int] | str:
    """(TFLOPS request, VRAM request, TFLOPS limit, VRAM limit) per GPU: units.gpu_amounts, the
    scheduler's rule, on the first GPU's rating (one region holds one set of limits).

    Then what enforcement needs besides: a VRAM limit (the request when only that is set), and
    a dedicated GPU's own VRAM annotations, when set, cap it below the whole (smallest) GPU.
    """
    asked = asked_amounts(request)
    first = chosen[0]
    whole_vram = min(g.vram_bytes for g in chosen)
    tflops, vram, tflops_limit, vram_limit = gpu_amounts(
        asked, first.rated_tflops_milli, first.rated_tflops_milli, whole_vram
    )
    if asked.dedicated and (asked.vram or asked.vram_limit):
        vram, vram_limit = asked.vram, asked.vram_limit
    limit = vram_limit or vram
    if not limit:
        return f"neither {VRAM_LIMIT} nor {VRAM_REQUEST} is set; no region made"
    return tflops, vram or limit, tflops_limit, limit


def _tenant_uid(spec: Mapping[str, Any], containers: Sequence[Mapping[str, Any]], chosen: str | None) -> int | None:
    """runAsUser of the injected container (the only one, or the one named), else the pod's."""
    injected = [c for c in containers if chosen is None or c.get("name") == chosen]
    if len(injected) != 1:
        return None
    for context in (injected[0].get("securityContext"), spec.get("securityContext")):
        value = _mapping(context).get("runAsUser")
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**32:
            return value
    return None


@dataclass(frozen=True, slots=True)
class Plan:
    remove: tuple[str, ...]  # pod worker names, removed before anything is created
    create: tuple[PodWorker, ...]
    resize: tuple[PodWorker, ...] = ()  # live regions whose pod's limits changed


def plan(
    current: Mapping[str, str],
    decisions: Iterable[Decision],
    *,
    complete: bool,
    granted: Mapping[str, Limits] | None = None,
) -> Plan:
    """What to change. `current`: pod worker name -> the pod uid its region was made for;
    `granted`: pod worker name -> the limits its region has now (absent: never resized).
    `complete`: the decisions cover every pod there is (a listing), so regions of pods not
    among them are removed; otherwise only the decided pods are touched."""
    remove: list[str] = []
    create: list[PodWorker] = []
    resize: list[PodWorker] = []
    decided: set[str] = set()
    for decision in decisions:
        name = decision.name
        decided.add(name)
        had = current.get(name)
        if had is not None and had == decision.uid:
            if isinstance(decision, NoWorker) and not decision.event:
                remove.append(name)  # finished, unlabelled or moved: its region goes
            elif isinstance(decision, PodWorker) and granted and granted.get(name, decision.limits) != decision.limits:
                resize.append(decision)  # the limit annotations changed: resize in place
            continue  # made for this pod already
        if had is not None:
            remove.append(name)  # the region of an earlier pod of that name
        if isinstance(decision, PodWorker):
            create.append(decision)
    if complete:
        remove += sorted(name for name in current if name not in decided)
    return Plan(tuple(dict.fromkeys(remove)), tuple(create), tuple(resize))
