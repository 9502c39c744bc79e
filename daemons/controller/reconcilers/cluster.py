"""TensorFusionCluster: its finalizer, the GPUPools its spec lists, and its status."""

from __future__ import annotations

from typing import Final

from daemons.controller.context import Context, Key, now
from tfcore.k8s import ApiError
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
    problem, reason = None, "InvalidSpec"
    try:
        clusters.check_cluster(cluster)
    except ValidationError as exc:
        problem = str(exc)
    if problem is None:
        rejected = await _converge_pools(ctx, cluster)
        if rejected:
            problem, reason = rejected, "PoolRejected"
    status = clusters.cluster_status(
        cluster, ctx.store.objects("GPUPool"), now=now(), problem=problem, problem_reason=reason
    )
    became_invalid = problem is not None and _reason(cluster) != reason
    if await ctx.write.status("TensorFusionCluster", cluster, status) and became_invalid:
        await ctx.recorder.emit(cluster, "Warning", reason, problem or "")


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


async def _converge_pools(ctx: Context, cluster: Obj) -> str | None:
    """Create, update and delete its pools; what the API server refused to create (a 400/422 is
    the object's fault: reported as a condition, not retried), None when it refused nothing."""
    plan = clusters.plan_pools(cluster, list(ctx.store.objects("GPUPool")))
    rejected = None
    for body in plan.create:
        try:
            created = await ctx.write.create("GPUPool", body)
        except ApiError as exc:
            if exc.status not in (400, 422):  # not the object's fault: retried with backoff
                raise
            rejected = f"GPUPool {name_of(body)} refused by the API server: {exc.reason}"
            continue
        if created is not None:
            await ctx.recorder.emit(cluster, "Normal", "PoolCreated", f"created GPUPool {name_of(body)}")
    for pool_name, patch in plan.update:
        await ctx.write.patch("GPUPool", ctx.store.of_kind("GPUPool")[pool_name], patch)
        await ctx.recorder.emit(cluster, "Normal", "PoolUpdated", f"updated GPUPool {pool_name} from its template")
    for pool_name in plan.delete:
        if await ctx.write.delete("GPUPool", ctx.store.of_kind("GPUPool")[pool_name]):
            await ctx.recorder.emit(
                cluster, "Normal", "PoolDeleted", f"deleted GPUPool {pool_name}: no longer in gpuPools"
            )
    return rejected


def _reason(obj: Obj) -> str | None:
    for condition in (obj.get("status") or {}).get("conditions") or ():
        if condition.get("type") == "Ready":
            return str(condition.get("reason"))
    return None
