"""Node claims for a scale-up: Karpenter `karpenter.sh/v1` NodeClaims or tensor-fusion GPUNodeClaims.

The claims in the API server are the only record of capacity on its way: the planner counts
them as pending, so a controller restarted between two creations asks only for what is still
missing. Names are `<pool>-<n>` with the lowest free n, so two writers racing get a 409, not
a second node.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from tfcore.fleet.requirements import CAPACITY_TYPE, CLAIM_CAPACITY_TYPE, INSTANCE_TYPE, ZONE, Offer
from tfcore.model.annotations import GPU_POOL
from tfcore.model.pool import NodeProvisioner
from tfcore.sched.units import bytes_text, tflops_text

KARPENTER_API: Final = "karpenter.sh/v1"
TFLOPS_OFFERED: Final = "tensor-fusion.ai/tflops-offered"
VRAM_OFFERED: Final = "tensor-fusion.ai/vram-offered"
CLAIM_LABEL: Final = "tensor-fusion.ai/node-claim"
MANAGED_BY: Final = {"app.kubernetes.io/managed-by": "tensor-fusion-controller"}


def claim_names(pool: str, existing: Iterable[str], count: int) -> list[str]:
    taken = set(existing)
    names: list[str] = []
    index = 0
    while len(names) < count:
        name = f"{pool}-{index}"
        if name not in taken:
            names.append(name)
        index += 1
    return names


def _labels(pool: str, provisioner: NodeProvisioner) -> dict[str, str]:
    return {**(provisioner.gpu_node_labels or {}), GPU_POOL: pool, **MANAGED_BY}


def karpenter_nodeclaim(
    name: str,
    pool: str,
    offer: Offer,
    provisioner: NodeProvisioner,
    index: int,
    *,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A NodeClaim pinned to the chosen type and capacity type, the pool's other requirements kept.

    No `karpenter.sh/do-not-disrupt` is added (Karpenter may consolidate or replace the node as
    usual) unless the pool's gpuNodeAnnotations carry it. `extra` is computingVendor.params.extraParams:
    `karpenter.nodeClaim.terminationGracePeriod` and `karpenter.gpuResource` are honoured.
    """
    ref = provisioner.karpenter_node_class_ref
    if ref is None or not ref.name:
        raise ValueError("nodeProvisioner.karpenterNodeClassRef.name: missing (expected the EC2NodeClass name)")
    pinned = {INSTANCE_TYPE, CAPACITY_TYPE} | ({ZONE} if offer.zones else set())
    requirements: list[dict[str, Any]] = [
        {"key": r.key, "operator": r.operator or "In", **({"values": list(r.values)} if r.values else {})}
        for r in provisioner.gpu_requirements or ()
        if r.key not in pinned
    ]
    requirements.append({"key": INSTANCE_TYPE, "operator": "In", "values": [offer.instance.name]})
    requirements.append({"key": CAPACITY_TYPE, "operator": "In", "values": [offer.capacity_type]})
    zone = offer.zone_for(index)
    if zone:
        requirements.append({"key": ZONE, "operator": "In", "values": [zone]})
    extra = extra or {}
    spec: dict[str, Any] = {
        "nodeClassRef": {
            "group": ref.group or "karpenter.k8s.aws",
            "kind": ref.kind or "EC2NodeClass",
            "name": ref.name,
        },
        "requirements": requirements,
    }
    gpu_resource = extra.get("karpenter.gpuResource")
    if gpu_resource:
        spec["resources"] = {"requests": {str(gpu_resource): str(offer.instance.gpus)}}
    grace = extra.get("karpenter.nodeClaim.terminationGracePeriod")
    if grace:
        spec["terminationGracePeriod"] = str(grace)
    if provisioner.gpu_taints:
        spec["taints"] = [
            {k: v for k, v in (("key", t.key), ("value", t.value), ("effect", t.effect)) if v}
            for t in provisioner.gpu_taints
        ]
    return {
        "apiVersion": KARPENTER_API,
        "kind": "NodeClaim",
        "metadata": {
            "name": name,
            "labels": _labels(pool, provisioner),
            "annotations": {**(provisioner.gpu_node_annotations or {}), **_offered(offer)},
        },
        "spec": spec,
    }


def gpu_nodeclaim(name: str, pool: str, offer: Offer, provisioner: NodeProvisioner, index: int) -> dict[str, Any]:
    """A tensor-fusion GPUNodeClaim (Provisioned mode); the controller turns it into a cloud instance."""
    return {
        "apiVersion": "tensor-fusion.ai/v1",
        "kind": "GPUNodeClaim",
        "metadata": {
            "name": name,
            "labels": _labels(pool, provisioner),
            "annotations": dict(provisioner.gpu_node_annotations or {}),
        },
        "spec": {
            "nodeName": name,
            "instanceType": offer.instance.name,
            "capacityType": CLAIM_CAPACITY_TYPE[offer.capacity_type],
            **({"region": offer.region} if offer.region else {}),
            **({"zone": offer.zone_for(index)} if offer.zones else {}),
            **(
                {"nodeClassRef": {"group": "tensor-fusion.ai", "kind": "GPUNodeClass", "name": provisioner.node_class}}
                if provisioner.node_class
                else {}
            ),
            "tflopsOffered": tflops_text(offer.instance.milli_tflops),
            "vramOffered": bytes_text(offer.instance.vram_bytes),
            "gpuDeviceOffered": offer.instance.gpus,
        },
    }


def _offered(offer: Offer) -> dict[str, str]:
    return {
        TFLOPS_OFFERED: tflops_text(offer.instance.milli_tflops),
        VRAM_OFFERED: bytes_text(offer.instance.vram_bytes),
    }
