"""The cloud-provider edge as data: what to launch for a GPUNodeClaim, and what the vendor reports.

Implementations (daemons/controller/aws.py) turn a LaunchRequest into one instance and must be
idempotent per claim: `find` by the claim's tag first, and the claim's uid as the vendor's client
token, so a controller killed between the call and the status write never gets a second machine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

from tfcore.model.node import CloudSelectorTerm, GPUNodeClassSpec
from tfcore.model.pool import ComputingVendorConfig
from tfcore.sched.units import capacity_bytes

CLAIM_TAG: Final = "tensor-fusion.ai/node-claim"
POOL_TAG: Final = "tensor-fusion.ai/gpupool"
InstanceState = Literal["pending", "running", "stopping", "stopped", "shutting-down", "terminated"]


@dataclass(frozen=True, slots=True)
class Disk:
    device: str
    size_gib: int | None
    volume_type: str | None
    encrypted: bool | None
    delete_on_termination: bool


@dataclass(frozen=True, slots=True)
class LaunchRequest:
    claim: str
    token: str  # idempotency key: the claim's uid
    pool: str
    instance_type: str
    spot: bool
    region: str
    zone: str | None
    image_id: str | None
    image_name: str | None
    subnets: tuple[CloudSelectorTerm, ...] = ()
    security_groups: tuple[CloudSelectorTerm, ...] = ()
    key_pair: str | None = None
    instance_profile: str | None = None
    user_data: str | None = None
    disks: tuple[Disk, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    metadata_options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Instance:
    id: str
    state: InstanceState
    instance_type: str
    zone: str | None
    private_ip: str | None
    private_dns: str | None
    spot: bool


class CloudProvider(Protocol):
    def launch(self, request: LaunchRequest) -> Instance: ...

    def find(self, claim: str) -> Instance | None: ...

    def describe(self, instance_id: str) -> Instance | None: ...

    def terminate(self, instance_id: str) -> None: ...


def launch_request(
    claim: Mapping[str, Any], node_class: GPUNodeClassSpec | None, vendor: ComputingVendorConfig | None
) -> LaunchRequest:
    """The launch for a GPUNodeClaim object from its node class and the cluster's computingVendor.

    ValueError names the missing field (no region anywhere, no image).
    """
    meta, spec = claim.get("metadata") or {}, claim.get("spec") or {}
    params = vendor.params if vendor else None
    region = spec.get("region") or (params.default_region if params else None)
    if not region:
        raise ValueError("spec.region: missing, and computingVendor.params.defaultRegion is unset")
    node_class = node_class or GPUNodeClassSpec()
    image = node_class.os_image_selector_terms[0] if node_class.os_image_selector_terms else None
    if image is None or not (image.id or image.name):
        raise ValueError("GPUNodeClass spec.osImageSelectorTerms[0]: missing (expected an image id or name)")
    extra = (params.extra_params if params else None) or {}
    disks = tuple(
        Disk(
            device=m.device_name or "/dev/xvda",
            size_gib=capacity_bytes(m.ebs.volume_size) // 2**30 if m.ebs and m.ebs.volume_size else None,
            volume_type=m.ebs.volume_type if m.ebs else None,
            encrypted=m.ebs.encrypted if m.ebs else None,
            delete_on_termination=m.ebs.delete_on_termination is not False if m.ebs else True,
        )
        for m in node_class.block_device_mappings or ()
    )
    metadata = node_class.metadata_options
    pool = str((meta.get("labels") or {}).get(POOL_TAG, ""))
    return LaunchRequest(
        claim=str(meta.get("name")),
        token=str(meta.get("uid") or meta.get("name")),
        pool=pool,
        instance_type=str(spec.get("instanceType")),
        spot=spec.get("capacityType") == "Spot",
        region=str(region),
        zone=spec.get("zone"),
        image_id=image.id,
        image_name=None if image.id else image.name,
        subnets=tuple(node_class.subnet_selector_terms or ()),
        security_groups=tuple(node_class.security_group_selector_terms or ()),
        key_pair=str(extra["keyPairName"]) if extra.get("keyPairName") else None,
        instance_profile=node_class.instance_profile,
        user_data=node_class.user_data,
        disks=disks,
        tags={**(node_class.tags or {}), CLAIM_TAG: str(meta.get("name")), POOL_TAG: pool},
        metadata_options={
            k: v
            for k, v in {
                "HttpEndpoint": metadata.http_endpoint if metadata else None,
                "HttpTokens": metadata.http_tokens if metadata else None,
                "HttpPutResponseHopLimit": metadata.http_put_response_hop_limit if metadata else None,
            }.items()
            if v is not None
        },
    )
