"""Canary migration: `tensor-fusion.ai/enabled-replicas: N` makes N replicas of an owner TF pods.

The rest of the owner's pods stay native (they keep `nvidia.com/gpu`). Decisions:

- StatefulSet: deterministic by ordinal, `<name>-<k>` is a TF pod iff k < N. Scale down
  removes the highest ordinals, scale up adds them, a replaced pod keeps its ordinal, so the
  count is exact at all times without looking at other pods.
- ReplicaSet (and so Deployment): pods have no ordinal. A pod is a TF pod iff the owner's
  live TF pods plus this process's recent TF decisions whose pods are not visible yet number
  fewer than N. The ReplicaSet controller creates pods concurrently, so decisions must be
  counted before the pods exist: each TF decision is reserved in a ledger under the admission
  request's UID (written on the pod as a ticket annotation) and released once a listing shows
  the pod or after a TTL (the API server may have rejected it after us).
  The caller serialises list-and-decide per owner, so a listing never predates a decision it
  is compared with.
- No owner (a bare pod): N >= 1 means TF, N == 0 native.

Pure: the clock is passed in, listings come from the caller.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from tfcore.model.annotations import ADMISSION, CANARY_TICKET
from tfcore.model.pods import Mode, recorded_mode

# Written by admission on every pod it decides for; read back to stay idempotent.
MODE_ANNOTATION: Final = ADMISSION
TICKET_ANNOTATION: Final = CANARY_TICKET
SYSTEM_ANNOTATIONS: Final = (MODE_ANNOTATION, TICKET_ANNOTATION)
DELETION_COST: Final = "controller.kubernetes.io/pod-deletion-cost"
# Added to a TF pod's deletion cost so the ReplicaSet controller removes native pods first.
TF_DELETION_COST_BONUS: Final = 1000
_INT32: Final = (-(2**31), 2**31 - 1)
_ORDINAL: Final = re.compile(r"-(0|[1-9][0-9]{0,8})$")


@dataclass(frozen=True, slots=True)
class Owner:
    """The controller owning a pod (ownerReferences entry with controller: true)."""

    kind: str
    name: str
    uid: str
    api_version: str = ""


@dataclass(frozen=True, slots=True)
class Sibling:
    """What the canary count needs of one of the owner's existing pods."""

    name: str
    mode: Mode | None
    ticket: str | None
    terminating: bool


def controller_owner(pod: Mapping[str, Any]) -> Owner | None:
    metadata = pod.get("metadata") or {}
    for ref in metadata.get("ownerReferences") or ():
        if isinstance(ref, Mapping) and ref.get("controller") is True:
            kind, name, uid = ref.get("kind"), ref.get("name"), ref.get("uid")
            if isinstance(kind, str) and isinstance(name, str) and isinstance(uid, str):
                return Owner(kind, name, uid, str(ref.get("apiVersion", "")))
    return None


def workload_name(pod: Mapping[str, Any], owner: Owner | None) -> str:
    """The name a pod's workload goes by: its Deployment, StatefulSet, ReplicaSet, or itself.

    A Deployment's ReplicaSet is named `<deployment>-<pod-template-hash>` and its pods carry
    that hash label, so the Deployment's name needs no API call.
    """
    metadata = pod.get("metadata") or {}
    if owner is not None:
        labels = metadata.get("labels") or {}
        template_hash = labels.get("pod-template-hash")
        suffix = f"-{template_hash}"
        if owner.kind == "ReplicaSet" and template_hash and owner.name.endswith(suffix):
            return owner.name[: -len(suffix)]
        return owner.name
    name = metadata.get("name") or ""
    if not name:
        name = (metadata.get("generateName") or "pod").rstrip("-")
    return str(name)


def statefulset_ordinal(pod: Mapping[str, Any], owner: Owner) -> int | None:
    metadata = pod.get("metadata") or {}
    labels = metadata.get("labels") or {}
    index = labels.get("apps.kubernetes.io/pod-index")
    if isinstance(index, str) and index.isdigit():
        return int(index)
    name = metadata.get("name") or ""
    match = _ORDINAL.search(name)
    if match and name[: match.start()] == owner.name:
        return int(match.group(1))
    return None


def sibling(pod: Mapping[str, Any], scheduler_name: str) -> Sibling:
    """Classify an existing pod; pods admitted before canary bookkeeping count by scheduler."""
    metadata = pod.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    mode = recorded_mode(pod)
    if mode is None and (pod.get("spec") or {}).get("schedulerName") == scheduler_name:
        mode = Mode.TENSOR_FUSION
    return Sibling(
        name=str(metadata.get("name") or ""),
        mode=mode,
        ticket=annotations.get(TICKET_ANNOTATION),
        terminating=bool(metadata.get("deletionTimestamp")),
    )


def tf_deletion_cost(current: str | None) -> str:
    """A TF pod's cost: the user's (default 0) plus a bonus, clamped to int32."""
    base = int(current) if current is not None and re.fullmatch(r"-?[0-9]{1,10}", current) else 0
    return str(max(_INT32[0], min(_INT32[1], base + TF_DELETION_COST_BONUS)))


class CanaryLedger:
    """Recent TF decisions per ReplicaSet whose pods may not be visible yet (one per process)."""

    def __init__(self, ttl_seconds: float = 30.0) -> None:
        self.ttl_seconds = ttl_seconds
        self._reserved: dict[str, dict[str, float]] = {}  # owner uid -> ticket -> expiry

    def decide(
        self,
        owner_uid: str,
        enabled_replicas: int,
        siblings: Iterable[Sibling],
        ticket: str,
        now: float,
        *,
        reserve: bool = True,
    ) -> Mode:
        """TF iff fewer than N TF pods exist or are on their way; a TF decision is reserved
        (unless `reserve` is False: a dry run creates no pod)."""
        reserved = self._reserved.setdefault(owner_uid, {})
        visible_tickets: set[str] = set()
        live_tf = 0
        for pod in siblings:
            if pod.ticket:
                visible_tickets.add(pod.ticket)
            if pod.mode is Mode.TENSOR_FUSION and not pod.terminating:
                live_tf += 1
        for held in [t for t, expiry in reserved.items() if expiry <= now or t in visible_tickets]:
            del reserved[held]
        mode = Mode.TENSOR_FUSION if live_tf + len(reserved) < enabled_replicas else Mode.NATIVE
        if mode is Mode.TENSOR_FUSION and reserve:
            reserved[ticket] = now + self.ttl_seconds
        if not reserved:
            del self._reserved[owner_uid]
        return mode

    def observe(self, pod: Mapping[str, Any]) -> None:
        """A pod seen by a watch: its reservation (if any) ends, even if the pod is deleted soon
        after, before any listing could have shown it (as the ReplicaSet controller's expectations)."""
        owner = controller_owner(pod)
        ticket = ((pod.get("metadata") or {}).get("annotations") or {}).get(TICKET_ANNOTATION)
        tickets = self._reserved.get(owner.uid) if owner is not None else None
        if owner is None or tickets is None or not isinstance(ticket, str):
            return
        if tickets.pop(ticket, None) is not None and not tickets:
            del self._reserved[owner.uid]

    def pending(self, owner_uid: str) -> int:
        return len(self._reserved.get(owner_uid, ()))

    def total_pending(self) -> int:
        return sum(len(tickets) for tickets in self._reserved.values())

    def forget_expired(self, now: float) -> None:
        """Drop expired entries of owners that are no longer admitting pods (bounded memory)."""
        for owner_uid in list(self._reserved):
            tickets = self._reserved[owner_uid]
            for ticket in [t for t, expiry in tickets.items() if expiry <= now]:
                del tickets[ticket]
            if not tickets:
                del self._reserved[owner_uid]
