"""Namespaced kinds (TensorFusionWorkload, TensorFusionConnection, WorkloadProfile,
GPUResourceQuota) and the cluster-scoped SchedulingConfigTemplate.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec

from tfcore.model.autoscaling import AutoScalingConfig, VerticalScalingRule
from tfcore.model.hypervisor import HypervisorScheduling
from tfcore.model.meta import (
    Condition,
    Duration,
    FreeForm,
    GPUResourceRequirements,
    GPUResources,
    Model,
    ObjectMeta,
    QoSLevel,
)
from tfcore.model.node import Isolation

MAX_GPU_COUNT: Final = 128

GPUCount = Annotated[int, msgspec.Meta(ge=1, le=MAX_GPU_COUNT, description="GPUs per worker, 1..128. Default 1.")]
Replicas = Annotated[int, msgspec.Meta(ge=0, description="Unset: as many as pending pods need.")]


class WorkloadProfileSpec(Model):
    """What a workload's workers get: pool, TFLOPS/VRAM, QoS, GPU count/model/vendor."""

    replicas: Replicas | None = None
    pool_name: str | None = None
    resources: GPUResourceRequirements | None = None
    qos: QoSLevel | None = None
    is_local_gpu: bool | None = msgspec.field(default=None, name="isLocalGPU")
    sidecar_worker: bool | None = None
    isolation: Isolation | None = None
    gpu_count: GPUCount | None = msgspec.field(default=None, name="gpuCount")
    gpu_model: str | None = msgspec.field(default=None, name="gpuModel")
    gpu_indices: list[Annotated[int, msgspec.Meta(ge=0)]] | None = msgspec.field(default=None, name="gpuIndices")
    vendor: str | None = None
    auto_scaling_config: AutoScalingConfig | None = None
    node_affinity: FreeForm | None = None
    worker_pod_template: FreeForm | None = None


class WorkloadProfileStatus(Model):
    """Observed state of a profile (reserved; profiles are templates)."""

    conditions: list[Condition] | None = None
    observed_generation: int | None = None


class WorkloadProfile(Model):
    """A reusable workload template that pods name via `tensor-fusion.ai/workload-profile`."""

    api_version: Literal["tensor-fusion.ai/v1"]
    kind: Literal["WorkloadProfile"]
    metadata: ObjectMeta | None = None
    spec: WorkloadProfileSpec | None = None
    status: WorkloadProfileStatus | None = None


class TensorFusionWorkloadStatus(Model):
    """Observed state of a workload: workers and readiness."""

    phase: Literal["Pending", "Running", "Failed", "Unknown"] | None = None
    conditions: list[Condition] | None = None
    observed_generation: int | None = None
    worker_count: Annotated[int, msgspec.Meta(ge=0)] | None = None
    ready_workers: Annotated[int, msgspec.Meta(ge=0)] | None = None
    pod_template_hash: str | None = None
    # Autoscaling: what the recommenders say, what was last applied and when, the open cron
    # rule, and the resources before the first change (the base of the ratio clamps).
    recommendation: GPUResourceRequirements | None = None
    applied_recommendation: GPUResourceRequirements | None = None
    last_applied_time: str | None = None
    active_cron_scaling_rule: str | None = None
    original_resources: GPUResourceRequirements | None = None


class TensorFusionWorkload(Model):
    """A set of GPU workers sharing one resource shape (one per owner of TF pods)."""

    api_version: Literal["tensor-fusion.ai/v1"]
    kind: Literal["TensorFusionWorkload"]
    metadata: ObjectMeta | None = None
    spec: WorkloadProfileSpec | None = None
    status: TensorFusionWorkloadStatus | None = None


class TensorFusionConnectionSpec(Model):
    """Which workload a client pod connects to (remote vGPU mode)."""

    workload_name: str | None = None
    client_pod: str | None = None


class TensorFusionConnectionStatus(Model):
    """Where the client's worker is and whether it is reachable."""

    phase: Literal["Pending", "Starting", "Running", "Failed", "Unknown"] | None = None
    connection_url: str | None = msgspec.field(default=None, name="connectionURL")
    worker_name: str | None = None
    conditions: list[Condition] | None = None


class TensorFusionConnection(Model):
    """A client pod's link to a remote GPU worker."""

    api_version: Literal["tensor-fusion.ai/v1"]
    kind: Literal["TensorFusionConnection"]
    metadata: ObjectMeta | None = None
    spec: TensorFusionConnectionSpec | None = None
    status: TensorFusionConnectionStatus | None = None


class QuotaTotal(Model):
    """Namespace-wide caps on requested and limited GPU resources and workers."""

    requests: GPUResources | None = None
    limits: GPUResources | None = None
    max_workers: Annotated[int, msgspec.Meta(ge=0)] | None = None
    alert_threshold_percent: Annotated[int, msgspec.Meta(ge=0, le=100)] | None = None


class QuotaSingle(Model):
    """Per-worker bounds and the defaults given to pods that set nothing."""

    max: GPUResources | None = None
    min: GPUResources | None = None
    default: GPUResources | None = None
    default_requests: GPUResources | None = None
    max_gpu_count: GPUCount | None = msgspec.field(default=None, name="maxGPUCount")


class GPUResourceQuotaSpec(Model):
    """GPU quota of a namespace: totals and per-worker bounds."""

    total: QuotaTotal | None = None
    single: QuotaSingle | None = None


class QuotaUsage(Model):
    """What the namespace uses now."""

    requests: GPUResources | None = None
    limits: GPUResources | None = None
    workers: Annotated[int, msgspec.Meta(ge=0)] | None = None


class GPUResourceQuotaStatus(Model):
    """Observed usage against the quota."""

    used: QuotaUsage | None = None
    conditions: list[Condition] | None = None
    last_update_time: str | None = None


class GPUResourceQuota(Model):
    """Caps the GPU resources of one namespace."""

    api_version: Literal["tensor-fusion.ai/v1"]
    kind: Literal["GPUResourceQuota"]
    metadata: ObjectMeta | None = None
    spec: GPUResourceQuotaSpec | None = None
    status: GPUResourceQuotaStatus | None = None


class GPUFilter(Model):
    """A named filter in the placement chain with its parameters."""

    type: str
    params: FreeForm | None = None


class PlacementConfig(Model):
    """How workers are placed: node and GPU ranking strategy and filters."""

    mode: Literal["CompactFirst", "LowLoadFirst", "NodeCompactGPULowLoad"] | None = None
    allow_using_local_gpu: bool | None = msgspec.field(default=None, name="allowUsingLocalGPU")
    gpu_filters: list[GPUFilter] | None = msgspec.field(default=None, name="gpuFilters")


class ReBalancerConfig(Model):
    """Periodic moving of workers to even out or compact load."""

    enable: bool | None = None
    interval: Duration | None = None
    threshold: FreeForm | None = None


class SchedulingConfigTemplateSpec(Model):
    """Scheduling policy a pool refers to by name: placement, autoscaling, rebalancing, freezing."""

    placement: PlacementConfig | None = None
    auto_scaling: FreeForm | None = None
    vertical_scaling_rules: list[VerticalScalingRule] | None = None
    re_balancer: ReBalancerConfig | None = None
    hypervisor: HypervisorScheduling | None = None


class SchedulingConfigTemplateStatus(Model):
    """Observed state of a scheduling template."""

    conditions: list[Condition] | None = None
    observed_generation: int | None = None


class SchedulingConfigTemplate(Model):
    """A named scheduling policy shared by pools."""

    api_version: Literal["tensor-fusion.ai/v1"]
    kind: Literal["SchedulingConfigTemplate"]
    metadata: ObjectMeta | None = None
    spec: SchedulingConfigTemplateSpec | None = None
    status: SchedulingConfigTemplateStatus | None = None
