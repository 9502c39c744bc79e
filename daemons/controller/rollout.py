"""Hypervisor rolling updates (the DaemonSet runs `updateStrategy: OnDelete`): one pass over all pools.

The plan comes from tfcore.fleet.view; this module writes it. The pool's rollout annotation is
written first, then the pods of every in-flight node still on an old revision are deleted, so a
controller killed in between finishes the same batch after a restart instead of starting another.
A paused rollout is reported as the pool condition `HypervisorRolloutPaused`.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Final

from daemons.controller.fleet_io import FleetApi, pod_path
from tfcore.fleet import view
from tfcore.fleet.rollout import STATE_ANNOTATION
from tfcore.operator.conditions import condition

log = logging.getLogger(__name__)

KINDS: Final = ("GPUPool", "GPUNode", "Pod", "DaemonSet", "ControllerRevision")
CONDITION: Final = "HypervisorRolloutPaused"
ANNOTATION: Final = STATE_ANNOTATION.format(component="hypervisor")


async def reconcile_rollouts(api: FleetApi, now: datetime) -> list[view.RolloutPlan]:
    snap = await api.snapshot(KINDS)
    plans = view.plan_rollouts(snap, now)
    pools = {p["metadata"]["name"]: p for p in snap.all("GPUPool")}
    for plan in plans:
        pool = pools[plan.pool]
        decision = plan.decision
        if decision.action == "disabled":
            continue
        text = decision.state.to_json() if decision.state else None
        annotations = pool["metadata"].get("annotations") or {}
        if annotations.get(ANNOTATION) != text:
            version = pool["metadata"].get("resourceVersion")
            await api.patch(
                "GPUPool", plan.pool, {"metadata": {"annotations": {ANNOTATION: text}, "resourceVersion": version}}
            )
        await _condition(api, pool, decision.action == "paused", decision.reason, now)
        if decision.action == "replace":
            log.info(
                "pool %s: replacing hypervisor pods on %s (%s)", plan.pool, ", ".join(decision.nodes), decision.reason
            )
        for node, pod in plan.pods.items():
            await api.delete(pod_path(pod), uid=pod["metadata"].get("uid"))
            log.debug("pool %s: deleted hypervisor pod on %s", plan.pool, node)
    return plans


async def _condition(api: FleetApi, pool: dict[str, Any], paused: bool, reason: str, now: datetime) -> None:
    conditions = list((pool.get("status") or {}).get("conditions") or [])
    previous = next((c for c in conditions if c.get("type") == CONDITION), None)
    if previous is None and not paused:
        return
    status = "True" if paused else "False"
    if previous is not None and previous.get("status") == status and (not paused or previous.get("message") == reason):
        return
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    generation = pool["metadata"].get("generation")
    fresh = condition(
        CONDITION,
        status,
        "Paused" if paused else "Progressing",
        reason,
        now=stamp,
        generation=generation,
        previous=conditions,
    )
    kept = [c for c in conditions if c.get("type") != CONDITION]
    await api.patch("GPUPool", pool["metadata"]["name"], {"status": {"conditions": [*kept, fresh]}}, status=True)
