"""Canary rebalancing: replaces pods of a ReplicaSet until its enabled-replicas share holds."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from daemons.controller.context import Context, Key
from tfcore.k8s import NotFound, split_key
from tfcore.operator import canary

NAME: Final = "canary"


async def reconcile(ctx: Context, name: str) -> None:
    namespace, rs_name = split_key(name)
    try:
        owner = await ctx.read("ReplicaSet", rs_name, namespace)
    except NotFound:
        return
    decision = canary.rebalance(owner, ctx.store.objects("Pod"), datetime.now(UTC), ctx.settings.canary_settle)
    if isinstance(decision, canary.Wait):
        ctx.queue.add_after(Key(NAME, name), decision.seconds)
    elif isinstance(decision, canary.Replace):
        victim = {"metadata": {"name": decision.pod, "namespace": namespace}}
        if not await ctx.write.delete("Pod", victim, body={"preconditions": {"uid": decision.uid}}):
            return  # gone already: its successor brings us back
        await ctx.recorder.emit(owner, "Normal", "CanaryRebalance", decision.message)
