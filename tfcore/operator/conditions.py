"""Status conditions (metav1.Condition) that keep their transition time while unchanged."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def condition(
    type_: str,
    status: str,
    reason: str,
    message: str,
    *,
    now: str,
    generation: int | None,
    previous: Sequence[Mapping[str, Any]] | None,
) -> dict[str, Any]:
    """A condition (status "True"/"False"/"Unknown"); lastTransitionTime moves only when the status does."""
    before = next((c for c in previous or () if c.get("type") == type_), None)
    since = before.get("lastTransitionTime") if before and before.get("status") == status else None
    result: dict[str, Any] = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since or now,
    }
    if generation is not None:
        result["observedGeneration"] = generation
    return result


def without_times(conditions: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """Conditions minus their timestamps, to tell whether a status write would change anything."""
    return [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in conditions or ()]


def ready_condition(obj: Mapping[str, Any], status: str, reason: str, message: str, *, now: str) -> dict[str, Any]:
    """The `Ready` condition for `obj`'s next status: its generation, and the transition time kept
    from the condition it has while the status does not change."""
    metadata = obj.get("metadata") or {}
    previous = (obj.get("status") or {}).get("conditions")
    generation = metadata.get("generation")
    return condition("Ready", status, reason, message, now=now, generation=generation, previous=previous)


def conditions_with_ready(
    obj: Mapping[str, Any], status: str, reason: str, message: str, *, now: str
) -> list[dict[str, Any]]:
    """`obj`'s next conditions: a fresh Ready, and every other type kept as other writers left it
    (the autoscaler's ResourceUpdate, the rollout's HypervisorRolloutPaused)."""
    previous = (obj.get("status") or {}).get("conditions") or ()
    others = [dict(c) for c in previous if isinstance(c, Mapping) and c.get("type") != "Ready"]
    return [ready_condition(obj, status, reason, message, now=now), *others]
