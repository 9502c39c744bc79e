"""The allocator's view of the fleet: pools, nodes and GPUs in exact integer units.

Built from the tfcore.model objects (GPUPool, GPUNode, GPU) by the functions at the end, or
directly (tests, benchmarks, standalone mode). GPUState and NodeState are mutable records the
Allocator owns; callers read them and never write them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from tfcore.model.annotations import GPU_POOL
from tfcore.model.errors import ValidationError
from tfcore.model.node import GPU, GPUNode
from tfcore.model.pool import (
    DEFAULT_TFLOPS_OVERSELL_RATIO,
    DEFAULT_VRAM_EXPAND_TO_HOST_DISK,
    DEFAULT_VRAM_EXPAND_TO_HOST_MEM,
    GPUPool,
)
from tfcore.sched.units import capacity_bytes, capacity_milli_tflops

HOSTNAME_LABEL: Final = "kubernetes.io/hostname"
# Our extension: which GPU indices of a node share an NVLink domain, e.g. "0-3;4-7" or "0,1;2,3".
NVLINK_GROUPS_ANNOTATION: Final = "tensor-fusion.ai/nvlink-groups"
SCHEDULABLE_PHASES: Final = frozenset({"Running", "Pending", None})


@dataclass(frozen=True, slots=True)
class PoolInfo:
    """A pool's oversubscription, in percent as in GPUPool.spec.capacityConfig.oversubscription."""

    name: str
    tflops_oversell_ratio: int = DEFAULT_TFLOPS_OVERSELL_RATIO
    vram_expand_to_host_mem: int = DEFAULT_VRAM_EXPAND_TO_HOST_MEM
    vram_expand_to_host_disk: int = DEFAULT_VRAM_EXPAND_TO_HOST_DISK
    default_qos: str | None = None

    def virtual_tflops(self, physical_milli: int) -> int:
        return physical_milli * self.tflops_oversell_ratio // 100

    def host_vram_bytes(self, ram_bytes: int, disk_bytes: int) -> int:
        """VRAM a node adds from host RAM (warm tier) and disk (cold tier)."""
        return ram_bytes * self.vram_expand_to_host_mem // 100 + disk_bytes * self.vram_expand_to_host_disk // 100


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """A node as the allocator needs it: pool, labels, host tiers, NVLink domains."""

    name: str
    pool: str
    labels: Mapping[str, str] = field(default_factory=dict)
    ram_bytes: int = 0
    disk_bytes: int = 0
    nvlink_groups: tuple[frozenset[int], ...] = ()


@dataclass(frozen=True, slots=True)
class GPUSpec:
    """A GPU as the allocator needs it; capacity is physical (oversubscription is the pool's)."""

    name: str
    node: str
    tflops_milli: int
    vram_bytes: int
    index: int = 0
    model: str = ""
    vendor: str = ""
    uuid: str = ""
    numa_node: int = -1
    schedulable: bool = True
    pool: str | None = None  # defaults to the node's pool
    device_plugin: bool = False  # the NVIDIA device plugin gave it to a native pod (usedBy)


class GPUState:
    """One GPU's capacity and what is allocated on it (requests and limits)."""

    __slots__ = (
        "dedicated",
        "limit_tflops",
        "limit_vram",
        "name",
        "node",
        "pool",
        "spec",
        "used_tflops",
        "used_vram",
        "virtual_tflops",
        "virtual_vram",
        "workers",
    )

    def __init__(self, spec: GPUSpec, node: NodeState, pool: PoolInfo, host_share: int) -> None:
        self.spec = spec
        self.name = spec.name  # a plain attribute: read in every inner loop
        self.node = node
        self.pool = pool
        self.virtual_tflops = pool.virtual_tflops(spec.tflops_milli)
        self.virtual_vram = spec.vram_bytes + host_share
        self.used_tflops = 0
        self.used_vram = 0
        self.limit_tflops = 0
        self.limit_vram = 0
        self.dedicated = False
        self.workers: dict[str, tuple[int, int, int, int]] = {}  # pod uid -> (req t, req v, lim t, lim v)

    @property
    def free_tflops(self) -> int:
        return self.virtual_tflops - self.used_tflops

    @property
    def free_vram(self) -> int:
        return self.virtual_vram - self.used_vram


class NodeState:
    """A node's GPUs (by index) and the aggregates the scheduler's indexes read."""

    __slots__ = (
        "gpus",
        "max_free_tflops",
        "max_free_vram",
        "models",
        "name",
        "native_requested",
        "native_unsettled",
        "pools",
        "spec",
        "tflops_beside_max_vram",
        "vendors",
        "vram_beside_max_tflops",
        "workers",
    )

    def __init__(self, spec: NodeSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.gpus: list[GPUState] = []
        self.workers: set[str] = set()  # pod uids with at least one GPU here
        self.max_free_tflops = 0
        self.max_free_vram = 0
        self.tflops_beside_max_vram = 0  # free TFLOPS of the GPU with the most free VRAM
        self.vram_beside_max_tflops = 0  # free VRAM of the GPU with the most free TFLOPS
        self.models: frozenset[str] = frozenset()
        self.vendors: frozenset[str] = frozenset()
        self.pools: frozenset[str] = frozenset()
        # NVIDIA coexistence: GPUs that native nvidia.com/gpu pods bound here asked for, and how
        # many of them the hypervisor has not yet reported as the device plugin's (usedBy).
        # While any is unsettled the device plugin may be handing out any free GPU: no TF pod
        # is placed here, so TensorFusion never takes the GPU a native pod is about to get.
        self.native_requested = 0
        self.native_unsettled = 0

    def refresh(self) -> None:
        """Recompute the aggregates after a change on one of this node's GPUs."""
        reported = sum(1 for g in self.gpus if g.spec.device_plugin)
        self.native_unsettled = max(0, self.native_requested - reported)
        usable = [g for g in self.gpus if g.spec.schedulable and not g.dedicated and not self.native_unsettled]
        if usable:
            most_vram = max(usable, key=lambda g: (g.free_vram, g.free_tflops))
            most_tflops = max(usable, key=lambda g: (g.free_tflops, g.free_vram))
            self.max_free_vram, self.tflops_beside_max_vram = most_vram.free_vram, most_vram.free_tflops
            self.max_free_tflops, self.vram_beside_max_tflops = most_tflops.free_tflops, most_tflops.free_vram
        else:
            self.max_free_vram = self.tflops_beside_max_vram = self.max_free_tflops = self.vram_beside_max_tflops = -1
        self.models = frozenset(g.spec.model for g in self.gpus)
        self.vendors = frozenset(g.spec.vendor for g in self.gpus)
        self.pools = frozenset(g.pool.name for g in self.gpus)


# ---- building from tfcore.model objects -------------------------------------------------


def pool_from_model(pool: GPUPool) -> PoolInfo:
    name = pool.metadata.name if pool.metadata and pool.metadata.name else None
    if name is None:
        raise ValidationError.single("metadata.name", "a GPUPool needs a name", "a pool name")
    spec = pool.spec
    over = spec.capacity_config.oversubscription if spec and spec.capacity_config else None
    qos = spec.qos_config.default_qos if spec and spec.qos_config else None
    return PoolInfo(
        name=name,
        tflops_oversell_ratio=_or(over.tflops_oversell_ratio if over else None, DEFAULT_TFLOPS_OVERSELL_RATIO),
        vram_expand_to_host_mem=_or(over.vram_expand_to_host_mem if over else None, DEFAULT_VRAM_EXPAND_TO_HOST_MEM),
        vram_expand_to_host_disk=_or(over.vram_expand_to_host_disk if over else None, DEFAULT_VRAM_EXPAND_TO_HOST_DISK),
        default_qos=qos,
    )


def node_from_model(node: GPUNode, *, labels: Mapping[str, str] | None = None) -> NodeSpec:
    """A GPUNode as a NodeSpec; `labels` are the Kubernetes Node's labels (for node affinity)."""
    meta = node.metadata
    name = meta.name if meta and meta.name else None
    if name is None:
        raise ValidationError.single("metadata.name", "a GPUNode needs a name", "the node's name")
    own_labels = dict(meta.labels or {}) if meta else {}
    pool = own_labels.get(GPU_POOL)
    if not pool:
        raise ValidationError.single(f"GPUNode {name}: metadata.labels", f"missing label {GPU_POOL}", "the pool name")
    info = node.status.node_info if node.status else None
    annotations = meta.annotations or {} if meta else {}
    return NodeSpec(
        name=name,
        pool=pool,
        labels=dict(labels) if labels is not None else own_labels,
        ram_bytes=capacity_bytes(info.ram_size) if info and info.ram_size else 0,
        disk_bytes=capacity_bytes(info.data_disk_size) if info and info.data_disk_size else 0,
        nvlink_groups=parse_nvlink_groups(annotations.get(NVLINK_GROUPS_ANNOTATION, ""), field=f"GPUNode {name}"),
    )


def gpu_from_model(gpu: GPU) -> GPUSpec:
    meta = gpu.metadata
    name = meta.name if meta and meta.name else None
    if name is None:
        raise ValidationError.single("metadata.name", "a GPU needs a name", "the GPU's name")
    status = gpu.status
    where = f"GPU {name}: status"
    if status is None or status.capacity is None or status.capacity.tflops is None or status.capacity.vram is None:
        raise ValidationError.single(f"{where}.capacity", "missing", "capacity with tflops and vram")
    node = _gpu_node(gpu)
    if node is None:
        raise ValidationError.single(
            f"{where}.nodeSelector", "cannot tell which node holds this GPU", f"{HOSTNAME_LABEL} or a GPUNode owner"
        )
    labels = meta.labels or {} if meta else {}
    return GPUSpec(
        name=name,
        node=node,
        tflops_milli=capacity_milli_tflops(status.capacity.tflops),
        vram_bytes=capacity_bytes(status.capacity.vram),
        index=status.index or 0,
        model=status.gpu_model or "",
        vendor=status.vendor or "",
        uuid=status.uuid or "",
        numa_node=status.numa_node if status.numa_node is not None else -1,
        schedulable=status.phase in SCHEDULABLE_PHASES and status.used_by != "nvidia-device-plugin",
        pool=labels.get(GPU_POOL),
        device_plugin=status.used_by == "nvidia-device-plugin",
    )


def _gpu_node(gpu: GPU) -> str | None:
    status = gpu.status
    if status and status.node_selector and status.node_selector.get(HOSTNAME_LABEL):
        return status.node_selector[HOSTNAME_LABEL]
    for owner in (gpu.metadata.owner_references or []) if gpu.metadata else []:
        if owner.kind == "GPUNode":
            return owner.name
    return None


def parse_nvlink_groups(text: str, *, field: str = "nvlink-groups") -> tuple[frozenset[int], ...]:
    """Parse "0-3;4-7" or "0,1;2,3" into groups of GPU indices; raise ValidationError if bad."""
    groups: list[frozenset[int]] = []
    expected = 'groups of GPU indices separated by ";", each a list "0,1" or a range "0-3"'
    for part in filter(None, (p.strip() for p in text.split(";"))):
        members: set[int] = set()
        for item in (i.strip() for i in part.split(",")):
            low, _, high = item.partition("-")
            if not low.isdigit() or (high and not high.isdigit()) or (high and int(high) < int(low)):
                raise ValidationError.single(f"{field}: {NVLINK_GROUPS_ANNOTATION}", f"bad entry {item!r}", expected)
            members.update(range(int(low), int(high or low) + 1))
        groups.append(frozenset(members))
    return tuple(groups)


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def specs_from_models(objects: Iterable[object]) -> tuple[list[PoolInfo], list[NodeSpec], list[GPUSpec]]:
    """Split decoded tfcore.model objects into the allocator's inputs (other kinds ignored)."""
    pools, nodes, gpus = [], [], []
    for obj in objects:
        if isinstance(obj, GPUPool):
            pools.append(pool_from_model(obj))
        elif isinstance(obj, GPUNode):
            nodes.append(node_from_model(obj))
        elif isinstance(obj, GPU):
            gpus.append(gpu_from_model(obj))
    return pools, nodes, gpus
