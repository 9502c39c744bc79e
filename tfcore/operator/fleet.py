"""GPUPool membership of nodes, GPUNode and GPU ownership, and node and pool status.

A Kubernetes Node joins the pool its `tensor-fusion.ai/gpupool` label names (nodes a managed pool's
claims brought), else the first pool (by name) whose nodeManagerConfig.nodeSelector matches
its labels (or metadata.name through matchFields); the controller keeps a GPUNode of the same
name, labelled `tensor-fusion.ai/gpupool` and controlled by the pool. GPUs (written by the
hypervisors, status only) get their node's pool label and the GPUNode as controller.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tfcore.model.annotations import GPU_POOL
from tfcore.model.codec import decode
from tfcore.model.node import GPU, GPUNode
from tfcore.model.pool import GPUPool
from tfcore.operator.capacity import Totals, node_totals, sells
from tfcore.operator.conditions import conditions_with_ready, ready_condition, without_times
from tfcore.operator.objects import (
    API_VERSION,
    LABEL_MANAGED_BY,
    MANAGER,
    Obj,
    controller_of,
    controller_ref,
    labels_of,
    meta,
    name_of,
    with_owner,
)
from tfcore.operator.selectors import node_matches
from tfcore.sched.state import HOSTNAME_LABEL, PoolInfo, pool_from_model
from tfcore.sched.units import capacity_bytes

READY_GPU_PHASES = frozenset({"Running", None})


def pool_for_node(pools: Sequence[GPUPool], node: Obj) -> str | None:
    """The pool a Node belongs to: the one its `tensor-fusion.ai/gpupool` label names (nodes a
    pool's claims brought carry it), else the first by name whose node selector matches, else None."""
    labels, fields = labels_of(node), {"metadata.name": name_of(node)}
    named = labels.get(GPU_POOL)
    for pool in pools:
        if named and pool.metadata and pool.metadata.name == named and not pool.metadata.deletion_timestamp:
            return named
    for pool in sorted(pools, key=lambda p: p.metadata.name if p.metadata and p.metadata.name else ""):
        config = pool.spec.node_manager_config if pool.spec else None
        selector = config.node_selector if config else None
        usable = pool.metadata and pool.metadata.name and not pool.metadata.deletion_timestamp
        if usable and selector and node_matches(selector, labels, fields) and pool.metadata:
            return pool.metadata.name
    return None


def desired_gpunode(node: Obj, pool: Obj) -> dict[str, Any]:
    """A new GPUNode for a Node that joined `pool`."""
    return {
        "apiVersion": API_VERSION,
        "kind": "GPUNode",
        "metadata": {
            "name": name_of(node),
            "labels": {GPU_POOL: name_of(pool), LABEL_MANAGED_BY: MANAGER},
            "ownerReferences": [controller_ref(pool)],
        },
        "spec": {"manageMode": "AutoSelect"},
    }


def gpunode_patch(gpunode: Obj, pool: Obj) -> dict[str, Any] | None:
    """The metadata merge patch moving an existing GPUNode into `pool`; None when it is there."""
    patch: dict[str, Any] = {}
    if labels_of(gpunode).get(GPU_POOL) != name_of(pool):
        patch["labels"] = {GPU_POOL: name_of(pool)}
    owners = with_owner(gpunode, controller_ref(pool))
    if owners is not None:
        patch["ownerReferences"] = owners
    return {"metadata": patch} if patch else None


def owned_by_pool(gpunode: Obj) -> bool:
    """Whether a GPUNode is one the controller manages (a GPUPool controls it)."""
    ref = controller_of(gpunode)
    return ref is not None and ref.get("kind") == "GPUPool"


def gpu_node_name(gpu: Obj) -> str | None:
    """The node a GPU sits on: status.nodeSelector's hostname, else its GPUNode owner."""
    selector = (gpu.get("status") or {}).get("nodeSelector") or {}
    if selector.get(HOSTNAME_LABEL):
        return str(selector[HOSTNAME_LABEL])
    for ref in meta(gpu).get("ownerReferences") or ():
        if ref.get("kind") == "GPUNode":
            return str(ref.get("name"))
    return None


def gpu_patch(gpu: Obj, gpunode: Obj | None) -> dict[str, Any] | None:
    """The metadata merge patch giving a GPU its node's pool label and the GPUNode as controller."""
    patch: dict[str, Any] = {}
    pool = labels_of(gpunode).get(GPU_POOL) if gpunode else None
    if labels_of(gpu).get(GPU_POOL) != pool:
        patch["labels"] = {GPU_POOL: pool}  # None removes it: the node left its pool
    if gpunode is not None:
        owners = with_owner(gpu, controller_ref(gpunode))
        if owners is not None:
            patch["ownerReferences"] = owners
    return {"metadata": patch} if patch else None


@dataclass(frozen=True, slots=True)
class NodeReport:
    """What a GPUNode status write needs besides the node itself."""

    status: dict[str, Any]
    invalid: tuple[str, ...]  # GPUs skipped because their status did not decode


def gpunode_status(gpunode: Obj, pool: Obj | None, gpus: Iterable[Obj], *, now: str) -> NodeReport:
    """A GPUNode's status from its GPUs: totals, virtual capacity, managed devices, readiness.

    Only the keys the controller owns are produced (the hypervisor writes nodeInfo and
    hypervisorStatus); a merge patch of this leaves those alone.
    """
    decoded: list[GPU] = []
    invalid: list[str] = []
    for obj in sorted(gpus, key=name_of):
        try:
            decoded.append(decode(dict(obj), GPU, where=f"GPU/{name_of(obj)}"))
        except Exception as exc:  # a bad report must not stop the node's other GPUs
            invalid.append(str(exc))
    info = decode(dict(gpunode), GPUNode).status if gpunode.get("status") else None
    node_info = info.node_info if info else None
    ram = capacity_bytes(node_info.ram_size) if node_info and node_info.ram_size else 0
    disk = capacity_bytes(node_info.data_disk_size) if node_info and node_info.data_disk_size else 0
    ratios = pool_info(pool)
    totals = node_totals(ratios, decoded, ram_bytes=ram, disk_bytes=disk)
    managed = [g for g in decoded if sells(g)]
    not_running = [name_of_model(g) for g in managed if g.status and g.status.phase not in READY_GPU_PHASES]
    if pool is None:
        phase, ok, reason, message = "Pending", "False", "NoPool", "the node matches no GPUPool"
    elif not managed:
        phase, ok, reason, message = "Pending", "False", "NoGPUs", "no GPUs reported by the hypervisor yet"
    elif not_running:
        phase, ok, reason, message = "Pending", "False", "GPUsNotRunning", f"GPUs not running: {', '.join(not_running)}"
    else:
        phase, ok, reason, message = "Running", "True", "GPUsRunning", f"{len(managed)} GPU(s) running"
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": [ready_condition(gpunode, ok, reason, message, now=now)],
        "totalGPUs": len(decoded),
        "managedGPUs": len(managed),
        "managedGPUDeviceIDs": [g.status.uuid or name_of_model(g) for g in managed if g.status],
        **totals.fields(),
    }
    return NodeReport(status=status, invalid=tuple(invalid))


def pool_status(pool: Obj, gpunodes: Iterable[Obj], *, now: str) -> dict[str, Any]:
    """A GPUPool's status: node counts and the sum of its nodes' capacity."""
    members = [n for n in gpunodes if labels_of(n).get(GPU_POOL) == name_of(pool)]
    totals = Totals()
    ready = gpus = 0
    for node in members:
        observed = node.get("status") or {}
        totals.add_status(observed)
        gpus += int(observed.get("managedGPUs") or 0)
        ready += observed.get("phase") == "Running"
    generation = meta(pool).get("generation")
    if ready:
        phase, ok, reason, message = "Running", "True", "NodesReady", f"{ready} of {len(members)} node(s) ready"
    elif members:
        phase, ok, reason, message = "Pending", "False", "NodesNotReady", f"none of {len(members)} node(s) ready"
    else:
        phase, ok, reason, message = "Pending", "False", "NoNodes", "no node matches the pool's node selector"
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": conditions_with_ready(pool, ok, reason, message, now=now),
        "totalNodes": len(members),
        "readyNodes": ready,
        "notReadyNodes": len(members) - ready,
        "totalGPUs": gpus,
        **totals.fields(),
    }
    owner = controller_of(pool)
    if owner and owner.get("kind") == "TensorFusionCluster":
        status["cluster"] = str(owner.get("name"))
    if generation is not None:
        status["observedGeneration"] = generation
    return status


def pool_info(pool: Obj | None) -> PoolInfo:
    """The pool's oversubscription ratios (defaults for a missing pool)."""
    if pool is None:
        return PoolInfo(name="")
    return pool_from_model(decode(dict(pool), GPUPool, where=f"GPUPool/{name_of(pool)}"))


def name_of_model(gpu: GPU) -> str:
    return gpu.metadata.name if gpu.metadata and gpu.metadata.name else ""


def changed(observed: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> bool:
    """Whether writing `desired` (a partial status) would change `observed`, ignoring condition times."""
    observed = observed or {}
    for key, value in desired.items():
        if key == "conditions":
            if without_times(observed.get(key)) != without_times(value):
                return True
        elif observed.get(key) != value:
            return True
    return False
