"""Node taint for NVIDIA operator coexistence: nodes running tensor-fusion workers are tainted
so the NVIDIA device plugin's pods stay off them (progressive migration only)."""

from __future__ import annotations

from typing import Final

from daemons.controller.context import Context
from tfcore.operator import taints
from tfcore.operator.objects import deleting

NAME: Final = "taint"


async def reconcile(ctx: Context, name: str) -> None:
    node = ctx.store.get("Node", name)
    if node is None or deleting(node) or not ctx.settings.taint_used_nodes:
        return
    used = name in taints.nodes_with_workers(ctx.store.objects("Pod"))
    patch = taints.taint_patch(node, used)
    if patch is not None:
        await ctx.write.patch("Node", node, patch)
        verb = "added" if used else "removed"
        await ctx.recorder.emit(node, "Normal", "TensorFusionTaint", f"{taints.USED_BY_TAINT} {verb}")
