"""Fill what a pod's annotations leave unset: from its WorkloadProfile, then its GPUPool.

Precedence: annotation > WorkloadProfile > pool (qosConfig.defaultQoS, defaultUsingLocalGPU).
The pool is the annotation's, else the profile's poolName, else the cluster's default pool.
Problems name the annotation the user would change to fix them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from tfcore.model import annotations as keys
from tfcore.model.annotations import WorkloadRequest
from tfcore.model.codec import decode
from tfcore.model.errors import Problem, ValidationError
from tfcore.model.meta import GPUResourceRequirements
from tfcore.model.pool import GPUPool, GPUPoolSpec, TensorFusionCluster
from tfcore.model.quantity import Quantity
from tfcore.model.workload import WorkloadProfile, WorkloadProfileSpec


@dataclass(frozen=True)
class ClusterDefaults:
    """What admission knows of the cluster, as data: pools by name, profiles by (namespace, name)."""

    pools: Mapping[str, GPUPoolSpec] = field(default_factory=dict)
    default_pool: str | None = None
    profiles: Mapping[tuple[str, str], WorkloadProfileSpec] = field(default_factory=dict)
    # A cluster entry's short name (`shared`) -> the GPUPool the controller creates for it
    # (`<cluster>-shared`), the name the scheduler knows.
    aliases: Mapping[str, str] = field(default_factory=dict)
    # (namespace, workload) -> what the autoscaler last applied to its workers: new workers
    # start there rather than at the spec (TensorFusionWorkload status.appliedRecommendation).
    recommendations: Mapping[tuple[str, str], GPUResourceRequirements] = field(default_factory=dict)


def resolve(request: WorkloadRequest, namespace: str, cluster: ClusterDefaults) -> WorkloadRequest:
    """The request with every default applied; ValidationError lists what cannot be resolved."""
    problems: list[Problem] = []
    profile: WorkloadProfileSpec | None = None
    if request.workload_profile is not None:
        profile = cluster.profiles.get((namespace, request.workload_profile))
        if profile is None:
            problems.append(
                Problem(
                    keys.WORKLOAD_PROFILE,
                    f"no WorkloadProfile {request.workload_profile!r} in namespace {namespace!r}",
                    "the name of a WorkloadProfile in the pod's namespace",
                )
            )
    updates: dict[str, object] = {}
    if profile is not None:
        updates.update(_from_profile(request, profile))
    pool_name = request.pool or (profile.pool_name if profile else None) or cluster.default_pool
    pool = cluster.pools.get(pool_name) if pool_name else None
    if pool_name is None:
        problems.append(
            Problem(keys.GPU_POOL, "no pool named and the cluster has no default GPUPool", "the name of a GPUPool")
        )
    elif pool is None:
        known = ", ".join(sorted(cluster.pools)) or "none exist yet"
        problems.append(Problem(keys.GPU_POOL, f"no GPUPool named {pool_name!r}", f"one of: {known}"))
    else:
        updates["pool"] = cluster.aliases.get(pool_name, pool_name)
        updates.update(_from_pool(request, updates, pool, problems))
    resolved = msgspec.structs.replace(request, **updates) if updates else request
    problems.extend(_amount_problems(resolved))
    if problems:
        raise ValidationError(problems)
    return resolved


def _from_profile(request: WorkloadRequest, profile: WorkloadProfileSpec) -> dict[str, object]:
    updates: dict[str, object] = {}
    resources = profile.resources
    requests = resources.requests if resources else None
    limits = resources.limits if resources else None
    uses_percent = request.compute_percent_request is not None or request.compute_percent_limit is not None
    if not request.dedicated_gpu and not uses_percent:
        _pair(updates, request, "tflops", requests.tflops if requests else None, limits.tflops if limits else None)
    if not request.dedicated_gpu:
        _pair(updates, request, "vram", requests.vram if requests else None, limits.vram if limits else None)
    for name, value in (
        ("qos", profile.qos),
        ("is_local_gpu", profile.is_local_gpu),
        ("gpu_model", profile.gpu_model),
        ("vendor", profile.vendor),
    ):
        if getattr(request, name) is None and value is not None:
            updates[name] = value
    # gpu_count has a default of 1 in the request, so the profile only wins when the user left it at that.
    if profile.gpu_count is not None and request.gpu_count == 1:
        updates["gpu_count"] = profile.gpu_count
    return updates


def _pair(
    updates: dict[str, object],
    request: WorkloadRequest,
    name: str,
    profile_request: Quantity | None,
    profile_limit: Quantity | None,
) -> None:
    """Annotations win as a pair: the profile fills only amounts the pod left entirely unset."""
    if getattr(request, f"{name}_request") is not None or getattr(request, f"{name}_limit") is not None:
        return
    req = profile_request if profile_request is not None else profile_limit
    lim = profile_limit if profile_limit is not None else profile_request
    if req is not None and lim is not None:
        updates[f"{name}_request"], updates[f"{name}_limit"] = req, lim


def _from_pool(
    request: WorkloadRequest, updates: Mapping[str, object], pool: GPUPoolSpec, problems: list[Problem]
) -> dict[str, object]:
    out: dict[str, object] = {}
    qos_config = pool.qos_config
    qos = updates.get("qos", request.qos)
    if qos is None and qos_config is not None and qos_config.default_qos is not None:
        out["qos"] = qos = qos_config.default_qos
    offered = [d.name for d in (qos_config.definitions or []) if d.name] if qos_config else []
    if qos is not None and offered and qos not in offered:
        problems.append(Problem(keys.QOS, f"the pool does not offer qos {qos!r}", "one of " + ", ".join(offered)))
    if updates.get("is_local_gpu", request.is_local_gpu) is None and pool.default_using_local_gpu is not None:
        out["is_local_gpu"] = pool.default_using_local_gpu
    return out


def _amount_problems(request: WorkloadRequest) -> list[Problem]:
    problems: list[Problem] = []
    if request.dedicated_gpu:
        return problems
    if request.vram_limit is None:
        problems.append(
            Problem(
                keys.VRAM_LIMIT,
                "no VRAM amount: set the annotation or name a workload-profile that has resources.vram",
                "a byte quantity such as 16Gi",
            )
        )
    if request.tflops_limit is None and request.compute_percent_limit is None:
        problems.append(
            Problem(
                keys.TFLOPS_LIMIT,
                "no compute amount: set tflops or compute-percent, or name a workload-profile with resources.tflops",
                "a TFLOPS quantity such as 10, or compute-percent-limit",
            )
        )
    for name, request_key in (("tflops", keys.TFLOPS_REQUEST), ("vram", keys.VRAM_REQUEST)):
        low, high = getattr(request, f"{name}_request"), getattr(request, f"{name}_limit")
        if low is not None and high is not None and low > high:
            problems.append(Problem(request_key, f"request {low} is greater than the limit {high}", "request <= limit"))
    return problems


def cluster_defaults(
    clusters: Iterable[Mapping[str, Any]],
    pools: Iterable[Mapping[str, Any]],
    profiles: Iterable[Mapping[str, Any]],
    workloads: Iterable[Mapping[str, Any]] = (),
) -> tuple[ClusterDefaults, list[str]]:
    """ClusterDefaults from the API objects as plain data, and one line per object skipped as invalid.

    A cluster's gpuPools[].specTemplate counts as a pool under both `<pool>` and
    `<cluster>-<pool>` (the name the controller gives the GPUPool it creates), so pods admit
    before the controller has created the GPUPool; a GPUPool object wins over its template.
    """
    skipped: list[str] = []
    by_name: dict[str, GPUPoolSpec] = {}
    default_pool: str | None = None
    aliases: dict[str, str] = {}
    for obj in clusters:
        name = _name_of(obj)
        try:
            cluster = decode(obj, TensorFusionCluster, where=f"TensorFusionCluster/{name}")
        except ValidationError as exc:
            skipped.append(str(exc))
            continue
        for definition in (cluster.spec.gpu_pools or []) if cluster.spec else []:
            template = definition.spec_template or GPUPoolSpec()
            full_name = f"{name}-{definition.name}"
            by_name.setdefault(definition.name, template)
            by_name.setdefault(full_name, template)
            aliases.setdefault(definition.name, full_name)
            if definition.is_default and default_pool is None:
                default_pool = full_name
    pool_names: set[str] = set()
    for obj in pools:
        name = _name_of(obj)
        pool_names.add(name)
        try:
            pool = decode(obj, GPUPool, where=f"GPUPool/{name}")
        except ValidationError as exc:
            skipped.append(str(exc))
            continue
        by_name[name] = pool.spec or GPUPoolSpec()
    by_profile: dict[tuple[str, str], WorkloadProfileSpec] = {}
    for obj in profiles:
        name = _name_of(obj)
        namespace = str((obj.get("metadata") or {}).get("namespace") or "")
        try:
            profile = decode(obj, WorkloadProfile, where=f"WorkloadProfile/{namespace}/{name}")
        except ValidationError as exc:
            skipped.append(str(exc))
            continue
        by_profile[(namespace, name)] = profile.spec or WorkloadProfileSpec()
    aliases = {short: full for short, full in aliases.items() if short not in pool_names}
    recommendations = _recommendations(workloads, skipped)
    defaults = ClusterDefaults(
        pools=by_name, default_pool=default_pool, profiles=by_profile, aliases=aliases, recommendations=recommendations
    )
    return defaults, skipped


def _recommendations(
    workloads: Iterable[Mapping[str, Any]], skipped: list[str]
) -> dict[tuple[str, str], GPUResourceRequirements]:
    found: dict[tuple[str, str], GPUResourceRequirements] = {}
    for obj in workloads:
        applied = (obj.get("status") or {}).get("appliedRecommendation")
        if not applied:
            continue
        namespace = str((obj.get("metadata") or {}).get("namespace") or "")
        name = _name_of(obj)
        try:
            resources = decode(applied, GPUResourceRequirements, where=f"TensorFusionWorkload/{namespace}/{name}")
        except ValidationError as exc:
            skipped.append(str(exc))
            continue
        requests, limits = resources.requests, resources.limits
        if requests and limits and None not in (requests.tflops, requests.vram, limits.tflops, limits.vram):
            found[(namespace, name)] = resources
    return found


def recommended(request: WorkloadRequest, namespace: str, cluster: ClusterDefaults) -> WorkloadRequest:
    """A new worker of an autoscaled workload starts at the applied recommendation (a
    dedicated-GPU worker, which gets the whole GPU, excepted)."""
    applied = cluster.recommendations.get((namespace, request.workload or ""))
    if applied is None or request.dedicated_gpu or applied.requests is None or applied.limits is None:
        return request
    return msgspec.structs.replace(
        request,
        tflops_request=applied.requests.tflops,
        tflops_limit=applied.limits.tflops,
        vram_request=applied.requests.vram,
        vram_limit=applied.limits.vram,
        compute_percent_request=None,
        compute_percent_limit=None,
    )


def _name_of(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")
