"""GPU: owned by its GPUNode and labelled with its pool."""

from __future__ import annotations

from typing import Final

from daemons.controller.context import Context
from tfcore.operator import fleet
from tfcore.operator.objects import deleting

NAME: Final = "gpu"


async def reconcile(ctx: Context, name: str) -> None:
    gpu = ctx.store.get("GPU", name)
    if gpu is None or deleting(gpu):
        return
    node = fleet.gpu_node_name(gpu)
    gpunode = ctx.store.get("GPUNode", node) if node else None
    if gpunode is not None and deleting(gpunode):
        gpunode = None
    patch = fleet.gpu_patch(gpu, gpunode)
    if patch is not None:
        await ctx.write.patch("GPU", gpu, patch)
