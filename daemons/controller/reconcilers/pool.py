"""GPUPool: its status, summed from the GPUNodes it holds."""

from __future__ import annotations

from typing import Final

from daemons.controller.context import Context, now
from tfcore.operator import fleet
from tfcore.operator.objects import deleting

NAME: Final = "pool"


async def reconcile(ctx: Context, name: str) -> None:
    pool = ctx.store.get("GPUPool", name)
    if pool is None or deleting(pool):
        return
    await ctx.write.status("GPUPool", pool, fleet.pool_status(pool, ctx.store.objects("GPUNode"), now=now()))
