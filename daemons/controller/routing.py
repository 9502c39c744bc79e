"""Which reconciles an object change queues: one row per (kind, reconciler).

Each row names the reconciler and a function giving the names it should look at for the
changed object (`previous` is the copy before a MODIFIED, else None). Adding a reconciler is
one module under reconcilers/ plus its rows here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from daemons.controller.context import Context
from daemons.controller.reconcilers import Reconciler, canary, cluster, gpu, gpunode, node, pool, taint, workload
from tfcore.k8s import Obj as View
from tfcore.k8s import key_of
from tfcore.model.annotations import ENABLED_REPLICAS, GPU_POOL
from tfcore.operator import fleet
from tfcore.operator import workload as workloads
from tfcore.operator.objects import Obj

Names = Callable[[Context, Obj, Obj | None], Iterable[str]]


@dataclass(frozen=True, slots=True)
class Route:
    reconciler: Reconciler
    names: Names


def own_name(ctx: Context, obj: Obj, previous: Obj | None) -> Iterable[str]:
    return (key_of(obj),)


def owning_cluster(ctx: Context, obj: Obj, previous: Obj | None) -> Iterable[str]:
    owner = View(obj).meta.controller
    return (owner.name,) if owner and owner.kind == "TensorFusionCluster" else ()


def nodes_on_membership_change(ctx: Context, obj: Obj, previous: Obj | None) -> Iterable[str]:
    """Every node, when what decides the pool's members changed (not on its status writes)."""
    if previous is not None and _membership(previous) == _membership(obj):
        return ()
    return (*ctx.store.of_kind("Node"), *ctx.store.of_kind("GPUNode"))


def own_name_when_tainting(ctx: Context, obj: Obj, previous: Obj | None) -> Iterable[str]:
    return (key_of(obj),) if ctx.settings.taint_used_nodes else ()


def labelled_pool(ctx: Context, obj: Obj, previous: Obj | None) -> Iterable[str]:
    pool_name = View(obj).meta.labels.get(GPU_POOL)
    return (pool_name,) if pool_name else ()


def gpus_of_node(ctx: Context, obj: Obj, previous: Obj | None) -> Iterable[str]:
    name = View(obj).meta.name
    return [key for key, gpu_obj in ctx.store.of_kind("GPU").items() if fleet.gpu_node_name(gpu_obj) == name]


def holding_gpunode(ctx: Context, obj: Obj, previous: Obj | None) -> Iterable[str]:
    holder = fleet.gpu_node_name(obj)
    return (holder,) if holder else ()


def pod_workload(ctx: Context, obj: Obj, previous: Obj | None) -> Iterable[str]:
    key = workloads.workload_key(obj)
    return (f"{key[0]}/{key[1]}",) if key else ()


def canary_replicaset(ctx: Context, obj: Obj, previous: Obj | None) -> Iterable[str]:
    meta = View(obj).meta
    owner = meta.controller
    if ENABLED_REPLICAS in meta.annotations and owner and owner.kind == "ReplicaSet":
        return (f"{meta.namespace or 'default'}/{owner.name}",)
    return ()


def pod_nodes_when_tainting(ctx: Context, obj: Obj, previous: Obj | None) -> Iterable[str]:
    """The node the pod runs on, before and after the change."""
    if not ctx.settings.taint_used_nodes:
        return ()
    return [str(where) for pod in (obj, previous) if (where := ((pod or {}).get("spec") or {}).get("nodeName"))]


ROUTES: Final[Mapping[str, tuple[Route, ...]]] = {
    "TensorFusionCluster": (Route(cluster, own_name),),
    "GPUPool": (
        Route(pool, own_name),
        Route(cluster, owning_cluster),
        Route(node, nodes_on_membership_change),
    ),
    "Node": (Route(node, own_name), Route(taint, own_name_when_tainting)),
    "GPUNode": (
        Route(gpunode, own_name),
        Route(node, own_name),
        Route(pool, labelled_pool),
        Route(gpu, gpus_of_node),
    ),
    "GPU": (Route(gpu, own_name), Route(gpunode, holding_gpunode)),
    "Pod": (
        Route(workload, pod_workload),
        Route(canary, canary_replicaset),
        Route(taint, pod_nodes_when_tainting),
    ),
    "TensorFusionWorkload": (Route(workload, own_name),),
}

RECONCILERS: Final[Mapping[str, Reconciler]] = {
    route.reconciler.NAME: route.reconciler for routes in ROUTES.values() for route in routes
}


def _membership(pool_obj: Obj) -> tuple[object, object]:
    """What decides which nodes a pool holds: its node selector and whether it is being deleted."""
    config = View(pool_obj).spec.get("nodeManagerConfig") or {}
    return config.get("nodeSelector"), View(pool_obj).meta.raw.get("deletionTimestamp")
