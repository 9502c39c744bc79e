"""TensorFusionCluster: its finalizer, the GPUPools its spec lists, and its status."""

from __future__ import annotations

from typing import Final

from daemons.controller.context import Context, Key, now
from tfcore.model.errors import ValidationError
from tfcore.operator import cluster as clusters
from tfcore.operator.objects import FINALIZER, Obj, deleting, has_finalizer, is_controlled_by, meta, name_of

NAME: Final = "cluster"
FINALIZER_WAIT: Final = 0.5  # seconds between checks that a deleting cluster's pools are gone


async def reconcile(ctx: Context, name: str) -> None:
    cluster = ctx.store.get("TensorFusionCluster", name)
    if cluster is None:
        return
    if deleting(cluster):
        await _finalize(ctx, cluster)
        return
    if not has_finalizer(cluster):
        finalizers = [*(meta(cluster).get("finalizers") or []), FINALIZER]
        await ctx.write.finalizers("TensorFusionCluster", cluster, finalizers)
        return  # the update event queues the rest
    problem = None
    try:
        clusters.check_cluster(cluster)
    except ValidationError as exc:
        problem = str(exc)
    if problem is None:
        await _converge_pools(ctx, cluster)
    status = clusters.cluster_status(cluster, ctx.store.objects("GPUPool"), now=now(), problem=problem)
    became_invalid = problem is not None and _reason(cluster) != "InvalidSpec"
    if await ctx.write.status("TensorFusionCluster", cluster, status) and became_invalid:
        await ctx.recorder.emit(cluster, "Warning", "InvalidSpec", problem or "")


async def _finalize(ctx: Context, cluster: Obj) -> None:
    """Delete the pools it owns; drop the finalizer once they are gone."""
    if not has_finalizer(cluster):
        return
    owned = [p for p in ctx.store.objects("GPUPool") if is_controlled_by(p, cluster)]
    for pool in owned:
        if not deleting(pool) and await ctx.write.delete("GPUPool", pool):
            await ctx.recorder.emit(cluster, "Normal", "PoolDeleted", f"deleting GPUPool {name_of(pool)}")
    if owned:
        ctx.queue.add_after(Key(NAME, name_of(cluster)), FINALIZER_WAIT)
        return
    finalizers = [f for f in meta(cluster)["finalizers"] if f != FINALIZER]
    await ctx.write.finalizers("TensorFusionCluster", cluster, finalizers)


async def _converge_pools(ctx: Context, cluster: Obj) -> None:
    plan = clusters.plan_pools(cluster, list(ctx.store.objects("GPUPool")))
    for body in plan.create:
        if await ctx.write.create("GPUPool", body) is not None:
            await ctx.recorder.emit(cluster, "Normal", "PoolCreated", f"created GPUPool {name_of(body)}")
    for pool_name, patch in plan.update:
        await ctx.write.patch("GPUPool", ctx.store.of_kind("GPUPool")[pool_name], patch)
        await ctx.recorder.emit(cluster, "Normal", "PoolUpdated", f"updated GPUPool {pool_name} from its template")
    for pool_name in plan.delete:
        if await ctx.write.delete("GPUPool", ctx.store.of_kind("GPUPool")[pool_name]):
            await ctx.recorder.emit(
                cluster, "Normal", "PoolDeleted", f"deleted GPUPool {pool_name}: no longer in gpuPools"
            )


def _reason(obj: Obj) -> str | None:
    for condition in (obj.get("status") or {}).get("conditions") or ():
        if condition.get("type") == "Ready":
            return str(condition.get("reason"))
    return None
