"""Managed pools (provisioningMode Provisioned or Karpenter): scale up, expire, compact, launch.

One pass over all pools, from tfcore.fleet.view's plan:
- claims not Ready within CLAIM_TIMEOUT are deleted (the next pass asks again);
- a shortfall becomes NodeClaims (Karpenter) or GPUNodeClaims (Provisioned), named so that a
  second writer collides; the claims are the only record of pending capacity;
- every `nodeCompaction.period`, the claims behind removable empty nodes are deleted (Karpenter
  drains its own nodes; a GPUNodeClaim's finalizer cordons, evicts through the Eviction API,
  which honours PodDisruptionBudgets, then terminates the instance);
- GPUNodeClaims without an instance get one from the cloud provider, found by tag first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final

from daemons.controller.fleet_io import LISTS, FleetApi, pod_path
from tfcore.fleet import claims, view
from tfcore.fleet.capacity import ScaleUp
from tfcore.fleet.provider import CloudProvider, launch_request
from tfcore.fleet.rollout import parse_time
from tfcore.k8s import ApiError
from tfcore.model.annotations import GPU_POOL
from tfcore.model.codec import decode
from tfcore.model.meta import parse_duration
from tfcore.model.node import GPUNodeClass
from tfcore.model.pool import DEFAULT_COMPACTION_PERIOD, ComputingVendorConfig, GPUPool

log = logging.getLogger(__name__)

KINDS: Final = ("GPUPool", "GPUNode", "GPUNodeClaim", "GPUNodeClass", "TensorFusionCluster", "Node", "Pod", "NodeClaim")
CLAIM_FINALIZER: Final = "tensor-fusion.ai/finalizer"
ProviderFor = Callable[[ComputingVendorConfig], CloudProvider | None]


async def reconcile_capacity(api: FleetApi, now: datetime, provider_for: ProviderFor) -> list[view.CapacityPlan]:
    snap = await api.snapshot(KINDS)
    plans = view.plan_capacity(snap, now, compact_due=lambda obj, pool: _compaction_due(obj, pool, now))
    vendor = snap.vendor()
    pools = {p["metadata"]["name"]: p for p in snap.all("GPUPool")}
    for plan in plans:
        if plan.mode not in view.MANAGED_MODES:
            continue
        pool_obj = pools[plan.pool]
        pool = decode(dict(pool_obj), GPUPool)
        for claim in plan.expired:
            log.warning("pool %s: %s %s not Ready in time; deleting it to retry", plan.pool, claim.kind, claim.name)
            await api.delete(_claim_path(claim.kind, claim.name), uid=claim.obj["metadata"].get("uid"))
        if isinstance(plan.scale, ScaleUp):
            await _scale_up(api, plan, pool, vendor)
        if plan.verdict is not None:  # computed only when the pool's compaction period is due
            if plan.verdict.removals:
                await _compact(api, plan, snap)
            stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
            await api.patch("GPUPool", plan.pool, {"status": {"lastCompactionTime": stamp}}, status=True)
    if vendor is not None:
        provider = provider_for(vendor)
        if provider is not None:
            await _drive_gpu_claims(api, snap, vendor, provider)
    return plans


async def _scale_up(
    api: FleetApi, plan: view.CapacityPlan, pool: GPUPool, vendor: ComputingVendorConfig | None
) -> None:
    assert isinstance(plan.scale, ScaleUp)
    config = pool.spec.node_manager_config if pool.spec else None
    provisioner = config.node_provisioner if config else None
    if provisioner is None:
        log.warning("pool %s: %s needs nodeManagerConfig.nodeProvisioner", plan.pool, plan.mode)
        return
    taken = [c.name for c in plan.claims]
    offset = len(plan.claims)  # spreads zones across successive claims
    extra = (vendor.params.extra_params if vendor and vendor.params else None) or {}
    log.info("pool %s: %s", plan.pool, plan.scale.reason)
    for index, name in enumerate(claims.claim_names(plan.pool, taken, plan.scale.count)):
        if plan.mode == "Karpenter":
            body = claims.karpenter_nodeclaim(
                name, plan.pool, plan.scale.offer, provisioner, offset + index, extra=extra
            )
            await api.create("NodeClaim", body)
        else:
            body = claims.gpu_nodeclaim(name, plan.pool, plan.scale.offer, provisioner, offset + index)
            body["metadata"]["finalizers"] = [CLAIM_FINALIZER]
            await api.create("GPUNodeClaim", body)


def _compaction_due(pool_obj: Mapping[str, Any], pool: GPUPool, now: datetime) -> bool:
    config = pool.spec.node_manager_config if pool.spec else None
    period = parse_duration(
        (config.node_compaction.period if config and config.node_compaction else None) or DEFAULT_COMPACTION_PERIOD
    )
    last = (pool_obj.get("status") or {}).get("lastCompactionTime")
    return not last or now - parse_time(str(last), "status.lastCompactionTime") >= period


async def _compact(api: FleetApi, plan: view.CapacityPlan, snap: view.Snapshot) -> None:
    assert plan.verdict is not None
    nodes = {n["metadata"]["name"]: n for n in snap.all("Node")}
    for removal in plan.verdict.removals:
        claim = _claim_of(plan, nodes.get(removal.node))
        if claim is None:
            log.info("pool %s: empty node %s is not one of our claims; left alone", plan.pool, removal.node)
            continue
        log.info("pool %s: compacting empty node %s (%s %s)", plan.pool, removal.node, claim.kind, claim.name)
        await api.delete(_claim_path(claim.kind, claim.name), uid=claim.obj["metadata"].get("uid"))


def _claim_of(plan: view.CapacityPlan, node: dict[str, Any] | None) -> view.Claim | None:
    if node is None:
        return None
    name = node["metadata"]["name"]
    instance = view.node_instance(node)
    for claim in plan.claims:
        status = claim.obj.get("status") or {}
        if status.get("nodeName") == name or (instance and status.get("instanceID") == instance):
            return claim
    return None


async def _drive_gpu_claims(
    api: FleetApi, snap: view.Snapshot, vendor: ComputingVendorConfig, provider: CloudProvider
) -> None:
    classes = {c["metadata"]["name"]: c for c in snap.all("GPUNodeClass")}
    nodes = snap.all("Node")
    for claim in snap.all("GPUNodeClaim"):
        meta, status = claim["metadata"], claim.get("status") or {}
        name = meta["name"]
        if meta.get("deletionTimestamp"):
            if CLAIM_FINALIZER in (meta.get("finalizers") or ()) and await _drained(api, snap, claim, nodes):
                found = None if status.get("instanceID") else await asyncio.to_thread(provider.find, name)
                instance_id = status.get("instanceID") or (found.id if found else None)
                if instance_id:
                    await asyncio.to_thread(provider.terminate, instance_id)
                rest = [f for f in meta.get("finalizers") or () if f != CLAIM_FINALIZER]
                await api.patch(
                    "GPUNodeClaim",
                    name,
                    {"metadata": {"finalizers": rest, "resourceVersion": meta.get("resourceVersion")}},
                )
            continue
        if status.get("instanceID"):
            joined = _node_of(nodes, status["instanceID"])
            if joined is not None and status.get("phase") != "Running":
                await _dress_node(api, snap, claim, joined)
                await api.patch("GPUNodeClaim", name, {"status": {"phase": "Running", "nodeName": joined}}, status=True)
            continue
        ref = (claim.get("spec") or {}).get("nodeClassRef") or {}
        node_class = classes.get(str(ref.get("name")))
        spec = decode(dict(node_class), GPUNodeClass).spec if node_class else None
        try:
            request = launch_request(claim, spec, vendor)
            instance = await asyncio.to_thread(provider.launch, request)
        except Exception as exc:  # the vendor said no (capacity, quota, bad parameters): this claim only
            log.warning("GPUNodeClaim %s: launch failed: %r", name, exc)
            if status.get("phase") != "Failed":
                await api.patch("GPUNodeClaim", name, {"status": {"phase": "Failed"}}, status=True)
            continue
        log.info("GPUNodeClaim %s: instance %s (%s)", name, instance.id, instance.instance_type)
        await api.patch(
            "GPUNodeClaim", name, {"status": {"phase": "Provisioning", "instanceID": instance.id}}, status=True
        )


async def _dress_node(api: FleetApi, snap: view.Snapshot, claim: dict[str, Any], node_name: str) -> None:
    """Give a joined node its pool's gpuNodeLabels, gpuNodeAnnotations and gpuTaints (Karpenter does
    this for its own NodeClaims; a provisioned instance's kubelet does not know them)."""
    node = next(n for n in snap.all("Node") if n["metadata"]["name"] == node_name)
    pool_name = (claim["metadata"].get("labels") or {}).get(GPU_POOL)
    pool_obj = next((p for p in snap.all("GPUPool") if p["metadata"]["name"] == pool_name), None)
    pool = decode(dict(pool_obj), GPUPool) if pool_obj else None
    config = pool.spec.node_manager_config if pool and pool.spec else None
    provisioner = config.node_provisioner if config else None
    taints = list((node.get("spec") or {}).get("taints") or [])
    for taint in (provisioner.gpu_taints if provisioner else None) or ():
        wanted = {k: v for k, v in (("key", taint.key), ("value", taint.value), ("effect", taint.effect)) if v}
        if not any(t.get("key") == taint.key and t.get("effect") == taint.effect for t in taints):
            taints.append(wanted)
    patch: dict[str, Any] = {
        "metadata": {
            "labels": {k: v for k, v in (claim["metadata"].get("labels") or {}).items() if k not in claims.MANAGED_BY},
            "annotations": dict(claim["metadata"].get("annotations") or {}),
        }
    }
    if taints != ((node.get("spec") or {}).get("taints") or []):
        patch["spec"] = {"taints": taints}
    await api.patch("Node", node_name, patch)


def _node_of(nodes: list[dict[str, Any]], instance: str) -> str | None:
    for node in nodes:
        if view.node_instance(node) == instance:
            return str(node["metadata"]["name"])
    return None


async def _drained(api: FleetApi, snap: view.Snapshot, claim: dict[str, Any], nodes: list[dict[str, Any]]) -> bool:
    """Cordon the claim's node and evict its non-DaemonSet pods; True once none is left."""
    instance = (claim.get("status") or {}).get("instanceID")
    node = _node_of(nodes, instance) if instance else None
    if node is None:
        return True
    await api.patch("Node", node, {"spec": {"unschedulable": True}})
    left = False
    for pod in snap.all("Pod"):
        spec, meta = pod.get("spec") or {}, pod["metadata"]
        if spec.get("nodeName") != node or any(o.get("kind") == "DaemonSet" for o in meta.get("ownerReferences") or ()):
            continue
        left = True
        eviction = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
        }
        try:
            await api.call("POST", pod_path(pod) + "/eviction", eviction)
        except ApiError as exc:
            if exc.status != 429:  # 429: a PodDisruptionBudget says not now; try next pass
                raise
    return not left


def _claim_path(kind: str, name: str) -> str:
    return f"{LISTS[kind]}/{name}"
