"""GPUNode: its status, from its pool and the GPU objects its hypervisor reports."""

from __future__ import annotations

import logging
from typing import Final

from daemons.controller.context import Context, now
from tfcore.model.annotations import GPU_POOL
from tfcore.operator import fleet
from tfcore.operator.objects import deleting, labels_of

NAME: Final = "gpunode"
log = logging.getLogger(__name__)


async def reconcile(ctx: Context, name: str) -> None:
    gpunode = ctx.store.get("GPUNode", name)
    if gpunode is None or deleting(gpunode):
        return
    pool = ctx.store.get("GPUPool", labels_of(gpunode).get(GPU_POOL, ""))
    gpus = [g for g in ctx.store.objects("GPU") if fleet.gpu_node_name(g) == name]
    report = fleet.gpunode_status(gpunode, pool, gpus, now=now())
    for problem in report.invalid:
        log.warning("GPUNode %s: skipped a GPU: %s", name, problem)
    await ctx.write.status("GPUNode", gpunode, report.status)
