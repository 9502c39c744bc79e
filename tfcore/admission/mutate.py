"""Pod admission, end to end and pure: review in, verdict (JSON patch or denial) out.

Two steps so the I/O edge can sit between them:
1. `examine(review)`: is it our pod, are its annotations valid, what canary decision does it
   need (none, by ordinal, or by counting the owner's pods)?
2. `admit(candidate, mode, cluster, config)`: resolve defaults and build the patch.
`admit_review` chains them for callers that already have the owner's pods (tests, tools).
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from tfcore.admission import canary
from tfcore.admission.canary import CanaryLedger, Owner, Sibling
from tfcore.admission.defaults import ClusterDefaults, recommended, resolve
from tfcore.admission.hostpaths import state_dir_mounts
from tfcore.admission.inject import (
    InjectionConfig,
    inject_shim,
    region_volume,
    shm_path,
    strip_nvidia_gpu,
    tier_volume,
)
from tfcore.admission.patch import json_patch
from tfcore.admission.review import PodReview, Verdict
from tfcore.model import annotations as keys
from tfcore.model.annotations import WorkloadRequest, parse_request
from tfcore.model.errors import Problem, ValidationError
from tfcore.model.pods import Mode, nvidia_gpu_count, pod_nvidia_gpus, recorded_mode

# Owners whose pods have no stable identity: the canary counts their pods.
COUNTED_OWNERS: Final = frozenset({"ReplicaSet"})


@dataclass(frozen=True, slots=True)
class Candidate:
    """A valid TF-labelled pod awaiting its canary decision and mutation."""

    review: PodReview
    request: WorkloadRequest
    owner: Owner | None
    container: str
    mode: Mode | None  # None: count the owner's pods (then call decide_by_count)
    canary: bool  # enabled-replicas is set
    warnings: tuple[str, ...] = ()


def examine(review: PodReview, config: InjectionConfig | None = None) -> Verdict | Candidate:
    """An immediate verdict for pods that are not ours or are invalid, else a Candidate."""
    if review.operation != "CREATE":
        return Verdict.allow()
    metadata = review.pod.get("metadata") or {}
    labels = metadata.get("labels") or {}
    if labels.get(keys.LABEL_ENABLED) != "true":
        # Not ours: untouched, except native GPU pods under NVIDIA coexistence (routed).
        if config is not None and config.route_native_gpu_pods:
            return route_native(review.pod, config)
        return Verdict.allow()
    annotations = metadata.get("annotations") or {}
    ours = {k: v for k, v in annotations.items() if k not in canary.SYSTEM_ANNOTATIONS}
    containers = [c for c in (review.pod.get("spec") or {}).get("containers") or () if isinstance(c, dict)]
    names = [str(c.get("name", "")) for c in containers]
    try:
        request = parse_request(labels=labels, annotations=ours, container_names=names)
    except ValidationError as exc:
        return deny(exc.problems)
    if not names:
        return deny([Problem("spec.containers", "the pod has no containers", "at least one container")])
    mounts_state = _state_dir_mounts(review.pod, config or InjectionConfig())
    if mounts_state:
        return deny(mounts_state)
    container = request.inject_container or names[0]
    owner = canary.controller_owner(review.pod)
    replicas = request.enabled_replicas
    mode = recorded_mode(review.pod)
    if mode is None:
        decided = _mode_without_counting(review.pod, owner, replicas)
        if isinstance(decided, Verdict):
            return decided
        mode = decided
    return Candidate(review, request, owner, container, mode, replicas is not None, request.warnings)


def _mode_without_counting(pod: dict[str, Any], owner: Owner | None, replicas: int | None) -> Mode | Verdict | None:
    """The canary mode decided from the pod alone; None: count the owner's pods."""
    if replicas is None:
        return Mode.TENSOR_FUSION
    if replicas == 0 or owner is None:
        return Mode.TENSOR_FUSION if replicas > 0 else Mode.NATIVE
    if owner.kind == "StatefulSet":
        ordinal = canary.statefulset_ordinal(pod, owner)
        if ordinal is None:
            return deny([Problem("metadata.name", "a StatefulSet pod without an ordinal", "<statefulset>-<n>")])
        return Mode.TENSOR_FUSION if ordinal < replicas else Mode.NATIVE
    if owner.kind not in COUNTED_OWNERS:
        # Jobs, DaemonSets, custom controllers: no replica identity to count by; all or none.
        return Mode.TENSOR_FUSION
    return None


def _state_dir_mounts(pod: dict[str, Any], injecting: InjectionConfig) -> list[Problem]:
    """hostPath volumes of the pod that reach the node's state directory (other tenants' regions)."""
    state_dir = posixpath.dirname(posixpath.normpath(injecting.region_host_dir))
    spec = pod.get("spec") or {}
    problems = state_dir_mounts(spec, state_dir, region_volume(injecting))
    tier = tier_volume(injecting)
    if tier is not None:  # other pods' frozen memory lies there
        problems += state_dir_mounts(spec, injecting.tier_host_dir, tier, what="the nodes' VRAM tier directory")
    return problems


def decide_by_count(candidate: Candidate, siblings: Sequence[Sibling], ledger: CanaryLedger, now: float) -> Mode:
    """The ReplicaSet canary decision, from the owner's current pods and the ledger."""
    owner, replicas = candidate.owner, candidate.request.enabled_replicas
    if owner is None or replicas is None:
        raise ValueError("decide_by_count needs a pod with an owner and enabled-replicas")
    review = candidate.review
    return ledger.decide(owner.uid, replicas, siblings, review.uid, now, reserve=not review.dry_run)


def admit(candidate: Candidate, mode: Mode, cluster: ClusterDefaults, config: InjectionConfig) -> Verdict:
    """The patch for a decided pod, or a denial naming what is wrong."""
    original = candidate.review.pod
    pod = _clone(original)
    metadata = pod.setdefault("metadata", {})
    annotations = metadata.setdefault("annotations", {})
    spec = pod.setdefault("spec", {})
    warnings = list(candidate.warnings)
    if candidate.canary or mode is Mode.NATIVE:
        annotations[canary.MODE_ANNOTATION] = mode.value
    if mode is Mode.NATIVE:
        # Native canary pod: untouched apart from the decision record (keeps nvidia.com/gpu).
        if config.route_native_gpu_pods and pod_nvidia_gpus(spec) > 0:
            warnings.extend(_route(spec, config))
        return Verdict.allow(json_patch(original, pod), tuple(warnings))
    request = candidate.request
    container = next(c for c in spec["containers"] if c.get("name") == candidate.container)
    asked = nvidia_gpu_count(container)
    if keys.GPU_COUNT not in annotations and asked > 1:
        request = msgspec.structs.replace(request, gpu_count=asked)
    try:
        request = resolve(request, candidate.review.namespace, cluster)
    except ValidationError as exc:
        return deny(exc.problems, warnings)
    workload = request.workload or canary.workload_name(original, candidate.owner)
    request = msgspec.structs.replace(request, workload=workload, warnings=(), gpu_ids=(), gpu_indices=())
    request = recommended(request, candidate.review.namespace, cluster)
    for system_key in keys.SYSTEM_ANNOTATIONS:
        if annotations.pop(system_key, None) is not None:
            warnings.append(f"annotation {system_key} is written by the scheduler; the pod's value was removed")
    annotations.update(request.to_annotations())
    metadata.setdefault("labels", {}).update(request.to_labels())
    annotations[canary.MODE_ANNOTATION] = mode.value
    if candidate.canary and candidate.owner is not None and candidate.owner.kind in COUNTED_OWNERS:
        annotations[canary.TICKET_ANNOTATION] = annotations.get(canary.TICKET_ANNOTATION) or candidate.review.uid
        if not original_cost_is_ours(original):
            annotations[canary.DELETION_COST] = canary.tf_deletion_cost(annotations.get(canary.DELETION_COST))
    current_scheduler = spec.get("schedulerName")
    if current_scheduler not in (None, "", "default-scheduler", config.scheduler_name):
        warnings.append(f"spec.schedulerName {current_scheduler!r} replaced by {config.scheduler_name!r}")
    spec["schedulerName"] = config.scheduler_name
    strip_nvidia_gpu(spec)
    env = {"TF_WORKLOAD": workload, "TF_SHM_PATH": shm_path(), "TF_GPU_POOL": request.pool or ""}
    problems = inject_shim(spec, candidate.container, config, env)
    if problems:
        return deny(problems, warnings)
    return Verdict.allow(json_patch(original, pod), tuple(warnings))


def route_native(original: dict[str, Any], config: InjectionConfig) -> Verdict:
    """A native pod asking for nvidia.com/gpu goes to our scheduler (NVIDIA coexistence)."""
    spec = original.get("spec") or {}
    if not isinstance(spec, dict) or pod_nvidia_gpus(spec) == 0:
        return Verdict.allow()
    pod = _clone(original)
    warnings = _route(pod["spec"], config)
    return Verdict.allow(json_patch(original, pod), tuple(warnings))


def _route(spec: dict[str, Any], config: InjectionConfig) -> list[str]:
    """Sets our scheduler on a native GPU pod unless it names another one (then it is left, with a warning)."""
    current = spec.get("schedulerName")
    if current in (None, "", "default-scheduler", config.scheduler_name):
        spec["schedulerName"] = config.scheduler_name
        return []
    return [
        f"spec.schedulerName {current!r} kept: tensor-fusion cannot keep this nvidia.com/gpu pod off GPUs "
        "that TensorFusion workers use (NVIDIA coexistence needs the pod on the tensor-fusion scheduler)"
    ]


def original_cost_is_ours(pod: dict[str, Any]) -> bool:
    """A pod that already carries our decision has had its deletion cost raised once already."""
    return recorded_mode(pod) is Mode.TENSOR_FUSION


def admit_review(
    review: PodReview,
    cluster: ClusterDefaults,
    config: InjectionConfig,
    *,
    siblings: Sequence[Sibling] = (),
    ledger: CanaryLedger | None = None,
    now: float = 0.0,
) -> Verdict:
    """examine + decide + admit in one call, for callers that already listed the owner's pods."""
    found = examine(review, config)
    if isinstance(found, Verdict):
        return found
    mode = found.mode
    if mode is None:
        mode = decide_by_count(found, siblings, ledger if ledger is not None else CanaryLedger(), now)
    return admit(found, mode, cluster, config)


_encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder()


def _clone(document: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of JSON data; a msgspec round trip is several times faster than copy.deepcopy."""
    result: dict[str, Any] = _decoder.decode(_encoder.encode(document))
    return result


def deny(problems: list[Problem], warnings: Sequence[str] = ()) -> Verdict:
    return Verdict.deny("tensor-fusion: " + "; ".join(str(p) for p in problems), warnings=tuple(warnings))
