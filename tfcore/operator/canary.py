"""Canary convergence: the controller's backstop for `tensor-fusion.ai/enabled-replicas`.

The webhook decides each ReplicaSet pod at creation (tfcore.admission.canary). Its ledger is
per process, so webhook replicas admitting one burst together can overshoot N, and a webhook
that could not list the owner's pods admits a native pod rather than fail it. Once the owner
is steady (all replicas exist, none terminating, the youngest older than the settle time, which
exceeds the webhook's reservation TTL) this picks one pod to replace: the youngest TF pod when
there are more than N, the youngest native pod when there are fewer and natives exist. The
ReplicaSet recreates it and the webhook, counting again, decides the other way. One pod per
owner at a time; pure (the clock is passed in).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from tfcore.model.annotations import ENABLED_REPLICAS
from tfcore.model.pods import Mode, recorded_mode
from tfcore.operator.objects import Obj, controller_of, deleting, meta, name_of

SETTLE_SECONDS: Final = 45.0  # above the webhook's 30 s reservation TTL
FINISHED: Final = frozenset({"Succeeded", "Failed"})


@dataclass(frozen=True, slots=True)
class Replace:
    """Delete this pod (its uid as a precondition); the owner recreates it."""

    pod: str
    uid: str
    message: str


@dataclass(frozen=True, slots=True)
class Wait:
    """Not steady yet: look again after `seconds`."""

    seconds: float


def enabled_replicas(owner: Obj) -> int | None:
    """N from the owner's pod template (the truth for pods to come), None when absent or bad."""
    template = ((owner.get("spec") or {}).get("template") or {}).get("metadata") or {}
    text = (template.get("annotations") or {}).get(ENABLED_REPLICAS)
    return int(text) if isinstance(text, str) and text.isdigit() and len(text) < 6 else None


def _created(pod: Obj) -> datetime | None:
    text = meta(pod).get("creationTimestamp")
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")) if text else None
    except ValueError:
        return None


def rebalance(owner: Obj, pods: Iterable[Obj], now: datetime, settle: float = SETTLE_SECONDS) -> Replace | Wait | None:
    """What to do for a ReplicaSet `owner` given its pods (any pods: those it controls are picked)."""
    wanted = enabled_replicas(owner)
    if owner.get("kind") != "ReplicaSet" or wanted is None:
        return None
    uid = meta(owner).get("uid")
    mine = [p for p in pods if (controller_of(p) or {}).get("uid") == uid]
    replicas = (owner.get("spec") or {}).get("replicas")
    replicas = replicas if isinstance(replicas, int) else 1
    live = [p for p in mine if (p.get("status") or {}).get("phase") not in FINISHED]  # evicted pods linger
    active = [p for p in live if not deleting(p)]
    if len(active) != replicas or len(active) != len(live):
        return Wait(settle)  # the ReplicaSet is still creating or removing pods
    born = [c for c in (_created(p) for p in active) if c is not None]
    if len(born) != len(active):
        return Wait(settle)
    youngest = max(born, default=now)
    age = (now - youngest).total_seconds()
    if age < settle:
        return Wait(settle - age)
    by_age = sorted(active, key=lambda p: _created(p) or now, reverse=True)  # youngest first
    tf = [p for p in by_age if recorded_mode(p) is Mode.TENSOR_FUSION]
    native = [p for p in by_age if recorded_mode(p) is Mode.NATIVE]
    target = min(wanted, replicas)
    if len(tf) > target:
        pod, becomes = tf[0], "native"
    elif len(tf) < target and native:
        pod, becomes = native[0], "a TensorFusion pod"
    else:
        return None
    message = (
        f"{len(tf)} of {replicas} pods run on TensorFusion, enabled-replicas is {wanted}: "
        f"replacing {name_of(pod)} (its replacement runs as {becomes})"
    )
    return Replace(name_of(pod), str(meta(pod).get("uid") or ""), message)
