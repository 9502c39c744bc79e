"""Rolling updates, one pass over all pools: hypervisor pods (the DaemonSet runs `updateStrategy:
OnDelete`) are deleted; TF pods whose injected client shim is older than the webhook's image are
evicted through the Eviction API, so PodDisruptionBudgets hold.

The plans come from tfcore.fleet.view; this module writes them. The pool's rollout annotation is
written first, then the in-flight pods still on an old revision are deleted or evicted, so a
controller killed in between finishes the same batch after a restart instead of starting another.
A paused rollout is reported as the pool condition `HypervisorRolloutPaused` / `ClientRolloutPaused`.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Final

from daemons.controller.fleet_io import LISTS, FleetApi, evict, pod_path
from tfcore.fleet import view
from tfcore.fleet.rollout import STATE_ANNOTATION
from tfcore.operator.conditions import condition

log = logging.getLogger(__name__)

KINDS: Final = ("GPUPool", "GPUNode", "Pod", "DaemonSet", "ControllerRevision", "Deployment")
CONDITION: Final = "HypervisorRolloutPaused"
ANNOTATION: Final = STATE_ANNOTATION.format(component="hypervisor")
CLIENT_ANNOTATION: Final = STATE_ANNOTATION.format(component="client")
CLIENT_CONDITION: Final = "ClientRolloutPaused"


async def reconcile_rollouts(api: FleetApi, now: datetime) -> list[view.RolloutPlan]:
    """Hypervisor pods deleted (the DaemonSet recreates them), then client pods evicted, per pool."""
    snap = await api.snapshot(KINDS)
    pools = {p["metadata"]["name"]: p for p in snap.all("GPUPool")}
    hypervisors = view.plan_rollouts(snap, now)
    for plan in hypervisors:
        if await _record(api, pools[plan.pool], plan, annotation=ANNOTATION, condition_type=CONDITION, now=now):
            for pod in plan.pods.values():
                await api.delete(pod_path(pod), uid=pod["metadata"].get("uid"))
    clients = view.plan_client_rollouts(snap, now)
    for plan in clients:
        pool = await _fresh(api, pools[plan.pool])
        if await _record(api, pool, plan, annotation=CLIENT_ANNOTATION, condition_type=CLIENT_CONDITION, now=now):
            for key, pod in plan.pods.items():
                if not await evict(api, pod):
                    log.info("pool %s: eviction of %s refused by a PodDisruptionBudget; retrying", plan.pool, key)
    return hypervisors + clients


async def _record(
    api: FleetApi, pool: dict[str, Any], plan: view.RolloutPlan, *, annotation: str, condition_type: str, now: datetime
) -> bool:
    """Write the plan's state (before any pod is touched) and condition; False when disabled."""
    decision = plan.decision
    if decision.action == "disabled" or plan.target is None:  # off, invalid pool, or no target: keep the state
        return False
    text = decision.state.to_json() if decision.state else None
    annotations = pool["metadata"].get("annotations") or {}
    if annotations.get(annotation) != text:
        version = pool["metadata"].get("resourceVersion")
        patch = {"metadata": {"annotations": {annotation: text}, "resourceVersion": version}}
        await api.patch("GPUPool", plan.pool, patch)
    await _condition(api, pool, condition_type, paused=decision.action == "paused", reason=decision.reason, now=now)
    if decision.action == "replace":
        log.info("pool %s: %s -> %s (%s)", plan.pool, annotation, ", ".join(decision.nodes), decision.reason)
    return True


async def _fresh(api: FleetApi, pool: dict[str, Any]) -> dict[str, Any]:
    """The pool as it is now (the hypervisor step may have moved its resourceVersion)."""
    got: dict[str, Any] = await api.call("GET", f"{LISTS['GPUPool']}/{pool['metadata']['name']}")
    return got


async def _condition(
    api: FleetApi, pool: dict[str, Any], type_: str, *, paused: bool, reason: str, now: datetime
) -> None:
    conditions = list((pool.get("status") or {}).get("conditions") or [])
    previous = next((c for c in conditions if c.get("type") == type_), None)
    if previous is None and not paused:
        return
    status = "True" if paused else "False"
    if previous is not None and previous.get("status") == status and (not paused or previous.get("message") == reason):
        return
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    generation = pool["metadata"].get("generation")
    fresh = condition(
        type_,
        status,
        "Paused" if paused else "Progressing",
        reason,
        now=stamp,
        generation=generation,
        previous=conditions,
    )
    kept = [c for c in conditions if c.get("type") != type_]
    await api.patch("GPUPool", pool["metadata"]["name"], {"status": {"conditions": [*kept, fresh]}}, status=True)
