"""Registry of the 11 kinds of tensor-fusion.ai/v1: names, scope, model type, printer columns.

The CRD generator, the Kubernetes glue and the CLI all look kinds up here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from tfcore.model import codec
from tfcore.model.errors import ValidationError
from tfcore.model.meta import API_GROUP, GROUP_VERSION
from tfcore.model.node import GPU, GPUNode, GPUNodeClaim, GPUNodeClass
from tfcore.model.pool import GPUPool, TensorFusionCluster
from tfcore.model.workload import (
    GPUResourceQuota,
    SchedulingConfigTemplate,
    TensorFusionConnection,
    TensorFusionWorkload,
    WorkloadProfile,
)

Scope = Literal["Cluster", "Namespaced"]
ColumnType = Literal["string", "integer", "number", "boolean", "date"]


@dataclass(frozen=True, slots=True)
class PrinterColumn:
    """One `kubectl get` column: header, JSON type and the path it shows."""

    name: str
    type: ColumnType
    json_path: str
    priority: int = 0  # 1 = only with `-o wide`


@dataclass(frozen=True, slots=True)
class KindInfo:
    """Everything needed to serve or generate one kind."""

    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    scope: Scope
    type: type[Any]
    columns: tuple[PrinterColumn, ...] = ()

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def resource(self) -> str:
        """The CRD name: <plural>.<group>."""
        return f"{self.plural}.{API_GROUP}"


def _c(name: str, type_: ColumnType, path: str, priority: int = 0) -> PrinterColumn:
    return PrinterColumn(name, type_, path, priority)


_AGE = _c("Age", "date", ".metadata.creationTimestamp")
_CAPACITY = (
    _c("Total TFLOPS", "string", ".status.totalTFlops"),
    _c("Total VRAM", "string", ".status.totalVRAM"),
    _c("Available TFLOPS", "string", ".status.availableTFlops"),
    _c("Available VRAM", "string", ".status.availableVRAM"),
    _c("Virtual TFLOPS", "string", ".status.virtualTFlops", 1),
    _c("Virtual VRAM", "string", ".status.virtualVRAM", 1),
)

KINDS: tuple[KindInfo, ...] = (
    KindInfo(
        "TensorFusionCluster",
        "tensorfusionclusters",
        "tensorfusioncluster",
        ("tfc",),
        "Cluster",
        TensorFusionCluster,
        (
            _c("Phase", "string", ".status.phase"),
            _c("Pools", "integer", ".status.totalPools"),
            _c("Nodes", "integer", ".status.totalNodes"),
            _c("GPUs", "integer", ".status.totalGPUs"),
            *_CAPACITY,
            _AGE,
        ),
    ),
    KindInfo(
        "GPUPool",
        "gpupools",
        "gpupool",
        ("gp",),
        "Cluster",
        GPUPool,
        (
            _c("Phase", "string", ".status.phase"),
            _c("Nodes", "integer", ".status.totalNodes"),
            _c("Ready", "integer", ".status.readyNodes"),
            _c("GPUs", "integer", ".status.totalGPUs"),
            *_CAPACITY,
            _c("Mode", "string", ".spec.nodeManagerConfig.provisioningMode", 1),
            _AGE,
        ),
    ),
    KindInfo(
        "GPUNode",
        "gpunodes",
        "gpunode",
        ("gn",),
        "Cluster",
        GPUNode,
        (
            _c("Phase", "string", ".status.phase"),
            _c("GPUs", "integer", ".status.totalGPUs"),
            *_CAPACITY,
            _c("Pool", "string", ".metadata.labels.tensor-fusion\\.ai/gpupool", 1),
            _AGE,
        ),
    ),
    KindInfo(
        "GPU",
        "gpus",
        "gpu",
        (),
        "Cluster",
        GPU,
        (
            _c("Model", "string", ".status.gpuModel"),
            _c("VRAM", "string", ".status.capacity.vram"),
            _c("TFLOPS", "string", ".status.capacity.tflops"),
            _c("Available VRAM", "string", ".status.available.vram"),
            _c("Available TFLOPS", "string", ".status.available.tflops"),
            _c("Phase", "string", ".status.phase"),
            _c("Used By", "string", ".status.usedBy", 1),
            _c("UUID", "string", ".status.uuid", 1),
            _AGE,
        ),
    ),
    KindInfo(
        "GPUNodeClass",
        "gpunodeclasses",
        "gpunodeclass",
        ("gnc",),
        "Cluster",
        GPUNodeClass,
        (_AGE,),
    ),
    KindInfo(
        "GPUNodeClaim",
        "gpunodeclaims",
        "gpunodeclaim",
        ("gncl",),
        "Cluster",
        GPUNodeClaim,
        (
            _c("Phase", "string", ".status.phase"),
            _c("Instance Type", "string", ".spec.instanceType"),
            _c("Zone", "string", ".spec.zone"),
            _c("Node", "string", ".spec.nodeName", 1),
            _AGE,
        ),
    ),
    KindInfo(
        "SchedulingConfigTemplate",
        "schedulingconfigtemplates",
        "schedulingconfigtemplate",
        ("sct",),
        "Cluster",
        SchedulingConfigTemplate,
        (_c("Placement", "string", ".spec.placement.mode"), _AGE),
    ),
    KindInfo(
        "TensorFusionWorkload",
        "tensorfusionworkloads",
        "tensorfusionworkload",
        ("tfw",),
        "Namespaced",
        TensorFusionWorkload,
        (
            _c("Replicas", "integer", ".spec.replicas"),
            _c("Ready", "integer", ".status.readyWorkers"),
            _c("QoS", "string", ".spec.qos"),
            _c("Pool", "string", ".spec.poolName"),
            _c("Phase", "string", ".status.phase"),
            _c("GPUs", "integer", ".spec.gpuCount", 1),
            _AGE,
        ),
    ),
    KindInfo(
        "TensorFusionConnection",
        "tensorfusionconnections",
        "tensorfusionconnection",
        ("tfconn",),
        "Namespaced",
        TensorFusionConnection,
        (
            _c("Workload", "string", ".spec.workloadName"),
            _c("Phase", "string", ".status.phase"),
            _c("Worker", "string", ".status.workerName", 1),
            _AGE,
        ),
    ),
    KindInfo(
        "WorkloadProfile",
        "workloadprofiles",
        "workloadprofile",
        ("wp",),
        "Namespaced",
        WorkloadProfile,
        (
            _c("Pool", "string", ".spec.poolName"),
            _c("QoS", "string", ".spec.qos"),
            _c("GPUs", "integer", ".spec.gpuCount"),
            _c("Replicas", "integer", ".spec.replicas"),
            _AGE,
        ),
    ),
    KindInfo(
        "GPUResourceQuota",
        "gpuresourcequotas",
        "gpuresourcequota",
        ("gpuquota",),
        "Namespaced",
        GPUResourceQuota,
        (_AGE,),
    ),
)

BY_KIND: dict[str, KindInfo] = {info.kind: info for info in KINDS}


def kind_info(kind: str) -> KindInfo:
    """The registry entry of `kind`; KeyError names the known kinds."""
    try:
        return BY_KIND[kind]
    except KeyError:
        raise KeyError(f"unknown kind {kind!r}; known: {', '.join(sorted(BY_KIND))}") from None


def decode_object(data: Any, *, where: str = "") -> Any:
    """Decode one tensor-fusion.ai/v1 object of any kind, chosen by its apiVersion and kind."""
    if not isinstance(data, dict):
        raise ValidationError.single(where or "document", "not an object", "a mapping with apiVersion and kind")
    if data.get("apiVersion") != GROUP_VERSION:
        raise ValidationError.single(
            f"{where}.apiVersion" if where else "apiVersion", f"got {data.get('apiVersion')!r}", GROUP_VERSION
        )
    kind = data.get("kind")
    if kind not in BY_KIND:
        raise ValidationError.single(
            f"{where}.kind" if where else "kind", f"unknown kind {kind!r}", "one of " + ", ".join(sorted(BY_KIND))
        )
    return codec.decode(data, BY_KIND[kind].type, where=where)
