"""Node: joins or leaves a pool by the pools' node selectors (creates, moves or deletes its GPUNode)."""

from __future__ import annotations

from typing import Final

from daemons.controller.context import Context
from tfcore.model.annotations import GPU_POOL
from tfcore.operator import fleet
from tfcore.operator.objects import deleting, labels_of

NAME: Final = "node"


async def reconcile(ctx: Context, name: str) -> None:
    node = ctx.store.get("Node", name)
    gpunode = ctx.store.get("GPUNode", name)
    pool_name = fleet.pool_for_node(ctx.pools(), node) if node is not None and not deleting(node) else None
    pool = ctx.store.get("GPUPool", pool_name) if pool_name else None
    if pool is None:
        leaves = gpunode is not None and fleet.owned_by_pool(gpunode) and not deleting(gpunode)
        if leaves and gpunode is not None and await ctx.write.delete("GPUNode", gpunode):
            former = ctx.store.get("GPUPool", labels_of(gpunode).get(GPU_POOL, ""))
            if former is not None:
                await ctx.recorder.emit(former, "Normal", "NodeLeft", f"node {name} left the pool")
        return
    if gpunode is None:
        if await ctx.write.create("GPUNode", fleet.desired_gpunode(node or {}, pool)) is not None:
            await ctx.recorder.emit(pool, "Normal", "NodeJoined", f"node {name} joined the pool")
        return
    patch = fleet.gpunode_patch(gpunode, pool)
    if patch is not None and not deleting(gpunode):
        await ctx.write.patch("GPUNode", gpunode, patch)
        await ctx.recorder.emit(pool, "Normal", "NodeJoined", f"node {name} moved into the pool")
