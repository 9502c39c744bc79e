"""TensorFusionCluster and GPUPool: the fleet and its pools of GPU nodes.

A cluster's `spec.gpuPools[].specTemplate` is exactly a GPUPool's `spec`.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from tfcore.model.meta import Condition, Cron, Duration, FreeForm, Model, ObjectMeta, QoSLevel, check_cron
from tfcore.model.quantity import Quantity

# Defaults the controller applies when a field is unset (the CRD also declares them, so the
# API server fills them in on write): 500% TFLOPS oversell, VRAM + 50% of RAM + 70% of disk.
DEFAULT_TFLOPS_OVERSELL_RATIO: Final = 500
DEFAULT_VRAM_EXPAND_TO_HOST_MEM: Final = 50
DEFAULT_VRAM_EXPAND_TO_HOST_DISK: Final = 70
DEFAULT_BATCH_PERCENTAGE: Final = 100
DEFAULT_BATCH_INTERVAL: Final = "1s"
DEFAULT_MAX_DURATION: Final = "10m"
DEFAULT_COMPACTION_PERIOD: Final = "5m"

PoolPhase = Literal["Pending", "Running", "Updating", "Destroying", "Unknown"]
ProvisioningMode = Literal["Provisioned", "AutoSelect", "Karpenter"]
SelectorOperator = Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]


def _default(value: str) -> msgspec.Meta:
    """A default the API server fills in (the models leave the field unset)."""
    return msgspec.Meta(extra_json_schema={"default": value})


def _percent(low: int, high: int, default: int, text: str) -> msgspec.Meta:
    return msgspec.Meta(
        ge=low, le=high, description=f"{text} Default {default}.", extra_json_schema={"default": default}
    )


TflopsOversellRatio = Annotated[
    int, _percent(100, 100000, DEFAULT_TFLOPS_OVERSELL_RATIO, "Virtual TFLOPS as % of physical; 300 = 3x.")
]
HostMemPercent = Annotated[
    int, _percent(0, 100, DEFAULT_VRAM_EXPAND_TO_HOST_MEM, "% of host RAM added to VRAM (warm tier).")
]
HostDiskPercent = Annotated[
    int, _percent(0, 100, DEFAULT_VRAM_EXPAND_TO_HOST_DISK, "% of host disk added to VRAM (cold tier).")
]


class Oversubscription(Model):
    """How far a pool sells beyond its physical GPUs (percentages)."""

    tflops_oversell_ratio: TflopsOversellRatio | None = None
    vram_expand_to_host_mem: HostMemPercent | None = None
    vram_expand_to_host_disk: HostDiskPercent | None = None


class GPUOrCPUResources(Model):
    """A pool capacity bound: GPU TFLOPS/VRAM, plus CPU/memory for provisioned nodes."""

    tflops: Quantity | None = None
    vram: Quantity | None = None
    cpu: Quantity | None = None
    memory: Quantity | None = None


class CapacityConfig(Model):
    """Pool size limits, warm spare capacity and oversubscription."""

    min_resources: GPUOrCPUResources | None = None
    max_resources: GPUOrCPUResources | None = None
    warm_resources: GPUOrCPUResources | None = None
    oversubscription: Oversubscription | None = None


class GroupKindName(Model):
    """A reference to another API object by group, version, kind and name."""

    group: str | None = None
    kind: str | None = None
    name: str | None = None
    version: str | None = None


class Requirement(Model):
    """A node requirement for provisioning (Karpenter-style key/operator/values)."""

    key: str | None = None
    operator: SelectorOperator | None = None
    values: list[str] | None = None


class Taint(Model):
    """A taint put on provisioned nodes."""

    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    key: str | None = None
    value: str | None = None


class PeriodicalBudget(Model):
    """Spending caps (dollars) for provisioned nodes."""

    budget_per_day: str | None = None
    budget_per_month: str | None = None
    budget_per_quarter: str | None = None
    budget_exceed_strategy: Literal["AlertOnly", "AlertAndTerminateVM"] | None = None


class NodeProvisioner(Model):
    """How new GPU nodes are created: node class, requirements, labels, taints."""

    node_class: str | None = None
    karpenter_node_class_ref: GroupKindName | None = None
    gpu_requirements: list[Requirement] | None = None
    gpu_taints: list[Taint] | None = None
    gpu_node_labels: dict[str, str] | None = None
    gpu_node_annotations: dict[str, str] | None = None
    cpu_requirements: list[Requirement] | None = None
    cpu_taints: list[Taint] | None = None
    cpu_node_labels: dict[str, str] | None = None
    budget: PeriodicalBudget | None = None


class NodeSelectorRequirement(Model):
    """One label/field expression of a node selector term."""

    key: str
    operator: SelectorOperator
    values: list[str] | None = None


class NodeSelectorTerm(Model):
    """Expressions that must all match (a term of a Kubernetes NodeSelector)."""

    match_expressions: list[NodeSelectorRequirement] | None = None
    match_fields: list[NodeSelectorRequirement] | None = None


class NodeSelector(Model):
    """Existing nodes that join the pool: any term may match (Kubernetes NodeSelector)."""

    node_selector_terms: list[NodeSelectorTerm]


class NodeCompaction(Model):
    """Periodic packing of workloads onto fewer nodes so idle ones can go."""

    period: Annotated[Duration, _default(DEFAULT_COMPACTION_PERIOD)] | None = None


class MaintenanceWindow(Model):
    """When automatic updates may run: each cron firing opens a window of maxDuration."""

    includes: list[Cron] | None = None
    timezone: (
        Annotated[str, msgspec.Meta(description="IANA time zone the cron expressions are read in. Default UTC.")] | None
    ) = None

    def __post_init__(self) -> None:
        if self.timezone is not None:
            try:
                ZoneInfo(self.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(
                    f"timezone: unknown time zone {self.timezone!r} (expected an IANA zone such as Europe/Berlin)"
                ) from None
        for index, expression in enumerate(self.includes or ()):
            try:
                check_cron(expression)
            except ValueError as exc:
                raise ValueError(f"includes[{index}]: {exc}") from None


BatchPercent = Annotated[int, _percent(0, 100, DEFAULT_BATCH_PERCENTAGE, "% of the pool's nodes updated per batch.")]


class NodeRollingUpdatePolicy(Model):
    """How component updates roll across a pool's nodes."""

    auto_update: bool | None = None
    auto_update_hypervisor: bool | None = None
    auto_update_worker: bool | None = None
    auto_update_client: bool | None = None
    batch_percentage: BatchPercent | None = None
    batch_interval: Annotated[Duration, _default(DEFAULT_BATCH_INTERVAL)] | None = None
    max_duration: Annotated[Duration, _default(DEFAULT_MAX_DURATION)] | None = None
    maintenance_window: MaintenanceWindow | None = None


class NodeManagerConfig(Model):
    """Where a pool's nodes come from and how they are kept up to date."""

    provisioning_mode: ProvisioningMode | None = None
    node_provisioner: NodeProvisioner | None = None
    node_selector: NodeSelector | None = None
    node_compaction: NodeCompaction | None = None
    node_pool_rolling_update_policy: NodeRollingUpdatePolicy | None = None


class QosDefinition(Model):
    """One QoS level and its scheduling priority."""

    name: QoSLevel | None = None
    description: str | None = None
    priority: Annotated[int, msgspec.Meta(ge=1, le=100)] | None = None


class GPUResourcePricing(Model):
    """Hourly prices of a TFLOPS and a GB of VRAM."""

    per_fp16_tflops_per_hour: str | None = msgspec.field(default=None, name="perFP16TFlopsPerHour")
    per_gb_of_vram_per_hour: str | None = msgspec.field(default=None, name="perGBOfVRAMPerHour")


class QosPricing(Model):
    """Price of one QoS level."""

    qos: QoSLevel | None = None
    requests: GPUResourcePricing | None = None
    limits_over_requests: str | None = None


class QosConfig(Model):
    """QoS levels a pool offers, its default level and their prices."""

    definitions: list[QosDefinition] | None = None
    default_qos: QoSLevel | None = msgspec.field(default=None, name="defaultQoS")
    pricing: list[QosPricing] | None = None


class GPUPoolSpec(Model):
    """Desired state of a pool (also the cluster's per-pool specTemplate)."""

    default_using_local_gpu: bool | None = msgspec.field(default=None, name="defaultUsingLocalGPU")
    capacity_config: CapacityConfig | None = None
    node_manager_config: NodeManagerConfig | None = None
    qos_config: QosConfig | None = None
    component_config: FreeForm | None = None
    scheduling_config_template: str | None = None


class GPUPoolStatus(Model):
    """Observed state of a pool: nodes, physical/virtual/available capacity."""

    cluster: str | None = None
    phase: PoolPhase | None = None
    conditions: list[Condition] | None = None
    observed_generation: int | None = None
    total_nodes: int | None = None
    total_gpus: int | None = msgspec.field(default=None, name="totalGPUs")
    ready_nodes: int | None = None
    not_ready_nodes: int | None = None
    total_tflops: Quantity | None = msgspec.field(default=None, name="totalTFlops")
    total_vram: Quantity | None = msgspec.field(default=None, name="totalVRAM")
    virtual_tflops: Quantity | None = msgspec.field(default=None, name="virtualTFlops")
    virtual_vram: Quantity | None = msgspec.field(default=None, name="virtualVRAM")
    available_tflops: Quantity | None = msgspec.field(default=None, name="availableTFlops")
    available_vram: Quantity | None = msgspec.field(default=None, name="availableVRAM")
    virtual_available_tflops: Quantity | None = msgspec.field(default=None, name="virtualAvailableTFlops")
    virtual_available_vram: Quantity | None = msgspec.field(default=None, name="virtualAvailableVRAM")
    running_apps_cnt: int | None = None
    provisioning_phase: Literal["None", "Initializing", "Provisioning", "Completed"] | None = None
    last_compaction_time: str | None = None
    component_status: FreeForm | None = None


class GPUPool(Model):
    """A pool of GPU nodes sharing capacity, oversubscription and node management."""

    api_version: Literal["tensor-fusion.ai/v1"]
    kind: Literal["GPUPool"]
    metadata: ObjectMeta | None = None
    spec: GPUPoolSpec | None = None
    status: GPUPoolStatus | None = None


class GPUPoolDefinition(Model):
    """A pool the cluster creates and keeps in sync: name and GPUPool spec."""

    name: str
    is_default: bool | None = None
    spec_template: GPUPoolSpec | None = None


class ComputingVendorParams(Model):
    """Cloud credentials and region for provisioning nodes."""

    default_region: str | None = None
    access_key_path: str | None = None
    secret_key_path: str | None = None
    iam_role: str | None = None
    config_file: str | None = None
    extra_params: FreeForm | None = None


ComputingVendorName = Literal[
    "aws",
    "lambda-labs",
    "gcp",
    "azure",
    "oracle-oci",
    "ibm",
    "openshift",
    "vultr",
    "together-ai",
    "alibaba",
    "nvidia",
    "tencent",
    "runpod",
    "karpenter",
    "mock",
]


class ComputingVendorConfig(Model):
    """A connection to a cloud vendor that can create GPU nodes."""

    name: str | None = None
    type: ComputingVendorName | None = None
    auth_type: Literal["accessKey", "serviceAccountRole"] | None = None
    enable: bool | None = None
    params: ComputingVendorParams | None = None


class TensorFusionClusterSpec(Model):
    """Desired state of the fleet: its pools and optional cloud vendor."""

    gpu_pools: list[GPUPoolDefinition] | None = msgspec.field(default=None, name="gpuPools")
    computing_vendor: ComputingVendorConfig | None = None


class TensorFusionClusterStatus(Model):
    """Observed state of the fleet: pools, nodes, GPUs and capacity totals."""

    phase: PoolPhase | None = None
    conditions: list[Condition] | None = None
    observed_generation: int | None = None
    total_pools: int | None = None
    total_nodes: int | None = None
    total_gpus: int | None = msgspec.field(default=None, name="totalGPUs")
    total_tflops: Quantity | None = msgspec.field(default=None, name="totalTFlops")
    total_vram: Quantity | None = msgspec.field(default=None, name="totalVRAM")
    virtual_tflops: Quantity | None = msgspec.field(default=None, name="virtualTFlops")
    virtual_vram: Quantity | None = msgspec.field(default=None, name="virtualVRAM")
    available_tflops: Quantity | None = msgspec.field(default=None, name="availableTFlops")
    available_vram: Quantity | None = msgspec.field(default=None, name="availableVRAM")
    ready_gpu_pools: list[str] | None = msgspec.field(default=None, name="readyGPUPools")
    not_ready_gpu_pools: list[str] | None = msgspec.field(default=None, name="notReadyGPUPools")
    retry_count: int | None = None
    cloud_vendor_config_hash: str | None = None


class TensorFusionCluster(Model):
    """The root object: one per Kubernetes cluster, owns the GPU pools."""

    api_version: Literal["tensor-fusion.ai/v1"]
    kind: Literal["TensorFusionCluster"]
    metadata: ObjectMeta | None = None
    spec: TensorFusionClusterSpec | None = None
    status: TensorFusionClusterStatus | None = None
