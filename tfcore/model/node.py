"""GPU, GPUNode, GPUNodeClass and GPUNodeClaim: the devices, the nodes that hold them, and
how new nodes are requested from a cloud vendor.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from tfcore.model.meta import Condition, FreeForm, GPUResources, Model, ObjectMeta, QoSLevel
from tfcore.model.pool import GroupKindName
from tfcore.model.quantity import Quantity

GPUPhase = Literal["Pending", "Provisioning", "Running", "Updating", "Migrating", "Destroying", "Unknown"]
NodePhase = Literal["Pending", "Provisioning", "Migrating", "Running", "Succeeded", "Failed", "Unknown", "Destroying"]
Isolation = Literal["shared", "soft", "hard", "partitioned"]


class PodGPUInfo(Model):
    """One pod's share of a GPU."""

    name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    requests: GPUResources | None = None
    limits: GPUResources | None = None
    qos: QoSLevel | None = None
    is_external: bool | None = None


class RunningAppDetail(Model):
    """A workload running on a GPU or node and the pods it has there."""

    name: str | None = None
    namespace: str | None = None
    count: int | None = None
    pods: list[PodGPUInfo] | None = None


class GPUStatus(Model):
    """Observed state of one GPU: identity, capacity, what is left, who uses it."""

    phase: GPUPhase | None = None
    uuid: str | None = None
    gpu_model: str | None = msgspec.field(default=None, name="gpuModel")
    vendor: str | None = None
    index: Annotated[int, msgspec.Meta(ge=0)] | None = None
    numa_node: Annotated[int, msgspec.Meta(ge=-1, description="-1: not attached to a NUMA node.")] | None = None
    capacity: GPUResources | None = None
    available: GPUResources | None = None
    isolation_mode: Isolation | None = None
    node_selector: dict[str, str] | None = None
    used_by: Literal["tensor-fusion", "nvidia-device-plugin"] | None = None
    message: str | None = None
    running_apps: list[RunningAppDetail] | None = None


class GPU(Model):
    """One physical GPU, reported by the hypervisor of its node (status only)."""

    api_version: Literal["tensor-fusion.ai/v1"]
    kind: Literal["GPU"]
    metadata: ObjectMeta | None = None
    status: GPUStatus | None = None


class GPUNodeSpec(Model):
    """How a node is managed and which of its GPUs join the pool."""

    manage_mode: Literal["Manual", "AutoSelect", "Provisioned"] | None = None
    cost_per_hour: str | None = None
    gpu_card_indices: list[Annotated[int, msgspec.Meta(ge=0)]] | None = msgspec.field(
        default=None, name="gpuCardIndices"
    )
    cloud_vendor_param: str | None = None


class HypervisorStatus(Model):
    """Liveness and version of a node's hypervisor daemon."""

    hypervisor_state: str | None = None
    hypervisor_version: str | None = None
    last_heartbeat_time: str | None = None


class GPUNodeInfo(Model):
    """Facts about the host: OS, driver, GPUs, and RAM/disk usable as VRAM tiers."""

    instance_id: str | None = msgspec.field(default=None, name="instanceID")
    region: str | None = None
    hostname: str | None = None
    ip: str | None = None
    kernel_version: str | None = None
    os_image: str | None = None
    gpu_driver_version: str | None = msgspec.field(default=None, name="gpuDriverVersion")
    gpu_model: str | None = msgspec.field(default=None, name="gpuModel")
    gpu_count: int | None = msgspec.field(default=None, name="gpuCount")
    operating_system: str | None = None
    architecture: str | None = None
    ram_size: Quantity | None = msgspec.field(default=None, name="ramSize")
    data_disk_size: Quantity | None = None


class GPUNodeStatus(Model):
    """Observed state of a node: physical, virtual and available capacity, allocations."""

    phase: NodePhase | None = None
    conditions: list[Condition] | None = None
    observed_generation: int | None = None
    total_tflops: Quantity | None = msgspec.field(default=None, name="totalTFlops")
    total_vram: Quantity | None = msgspec.field(default=None, name="totalVRAM")
    virtual_tflops: Quantity | None = msgspec.field(default=None, name="virtualTFlops")
    virtual_vram: Quantity | None = msgspec.field(default=None, name="virtualVRAM")
    available_tflops: Quantity | None = msgspec.field(default=None, name="availableTFlops")
    available_vram: Quantity | None = msgspec.field(default=None, name="availableVRAM")
    virtual_available_tflops: Quantity | None = msgspec.field(default=None, name="virtualAvailableTFlops")
    virtual_available_vram: Quantity | None = msgspec.field(default=None, name="virtualAvailableVRAM")
    total_gpus: int | None = msgspec.field(default=None, name="totalGPUs")
    managed_gpus: int | None = msgspec.field(default=None, name="managedGPUs")
    managed_gpu_device_ids: list[str] | None = msgspec.field(default=None, name="managedGPUDeviceIDs")
    allocated_pods: dict[str, list[PodGPUInfo]] | None = None
    allocation_info: list[RunningAppDetail] | None = None
    hypervisor_status: HypervisorStatus | None = None
    node_info: GPUNodeInfo | None = None
    loaded_models: list[str] | None = None


class GPUNode(Model):
    """A Kubernetes node with GPUs managed by tensor-fusion."""

    api_version: Literal["tensor-fusion.ai/v1"]
    kind: Literal["GPUNode"]
    metadata: ObjectMeta | None = None
    spec: GPUNodeSpec | None = None
    status: GPUNodeStatus | None = None


class OSImageSelectorTerm(Model):
    """Picks a machine image by name, id or owner."""

    name: str | None = None
    id: str | None = None
    owner: str | None = None


class BlockDevice(Model):
    """A cloud disk attached to a provisioned node."""

    volume_size: Quantity | None = None
    volume_type: str | None = None
    encrypted: bool | None = None
    delete_on_termination: bool | None = None


class BlockDeviceMapping(Model):
    """Where a disk is attached on a provisioned node."""

    device_name: str | None = None
    ebs: BlockDevice | None = None


class CloudSelectorTerm(Model):
    """Picks cloud objects (subnets, security groups) by id, name or tags."""

    id: str | None = None
    name: str | None = None
    tags: dict[str, str] | None = None


class InstanceMetadataOptions(Model):
    """Instance metadata service settings of a provisioned node."""

    http_endpoint: str | None = None
    http_protocol_ipv6: str | None = msgspec.field(default=None, name="httpProtocolIPv6")
    http_put_response_hop_limit: Annotated[int, msgspec.Meta(ge=1, le=64)] | None = None
    http_tokens: Literal["required", "optional"] | None = None


class GPUNodeClassSpec(Model):
    """A vendor-neutral template for provisioned GPU nodes: image, disks, network, user data."""

    os_image_family: str | None = None
    os_image_selector_terms: list[OSImageSelectorTerm] | None = None
    block_device_mappings: list[BlockDeviceMapping] | None = None
    instance_profile: str | None = None
    metadata_options: InstanceMetadataOptions | None = None
    security_group_selector_terms: list[CloudSelectorTerm] | None = None
    subnet_selector_terms: list[CloudSelectorTerm] | None = None
    tags: dict[str, str] | None = None
    user_data: str | None = None


class GPUNodeClassStatus(Model):
    """Observed state of a node class."""

    conditions: list[Condition] | None = None
    observed_generation: int | None = None


class GPUNodeClass(Model):
    """How to build a GPU node at a cloud vendor (referenced by a pool's nodeClass)."""

    api_version: Literal["tensor-fusion.ai/v1"]
    kind: Literal["GPUNodeClass"]
    metadata: ObjectMeta | None = None
    spec: GPUNodeClassSpec | None = None
    status: GPUNodeClassStatus | None = None


class GPUNodeClaimSpec(Model):
    """A request for one new GPU node: where, what instance, how much GPU it brings."""

    node_name: str | None = None
    region: str | None = None
    zone: str | None = None
    instance_type: str | None = None
    node_class_ref: GroupKindName | None = None
    capacity_type: Literal["OnDemand", "Spot", "Reserved"] | None = None
    tflops_offered: Quantity | None = msgspec.field(default=None, name="tflopsOffered")
    vram_offered: Quantity | None = msgspec.field(default=None, name="vramOffered")
    gpu_device_offered: Annotated[int, msgspec.Meta(ge=0)] | None = msgspec.field(default=None, name="gpuDeviceOffered")
    extra_params: FreeForm | None = None


class GPUNodeClaimStatus(Model):
    """Progress of a node claim at the vendor."""

    phase: Literal["Pending", "Provisioning", "Running", "Failed", "Unknown"] | None = None
    instance_id: str | None = msgspec.field(default=None, name="instanceID")
    node_name: str | None = None  # the Kubernetes node the instance registered as
    conditions: list[Condition] | None = None


class GPUNodeClaim(Model):
    """A pending or fulfilled request to the vendor for one GPU node."""

    api_version: Literal["tensor-fusion.ai/v1"]
    kind: Literal["GPUNodeClaim"]
    metadata: ObjectMeta | None = None
    spec: GPUNodeClaimSpec | None = None
    status: GPUNodeClaimStatus | None = None
