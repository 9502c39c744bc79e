"""Compaction: which empty GPU nodes of a managed pool can go, without stranding any pod.

A node is removable when (notes/fleet-features.md section 3):
- none of its GPU capacity is in use and no pod on it uses a GPU (TF worker or nvidia.com/gpu);
- it is older than MIN_AGE, Ready, and neither it nor a pod on it says do-not-disrupt;
- the pool keeps total >= minResources and available >= warmResources without it;
- every pod on it that is not a DaemonSet pod (tensor-fusion's or not) fits on another node
  that stays: requests within what is free there, node selector and required node affinity
  matched, NoSchedule/NoExecute taints tolerated. Candidates are taken one by one, each landing
  spot reserved before the next node is looked at, so two removals never count on the same room.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from tfcore.fleet.capacity import Amount, Bounds

MIN_AGE: Final = timedelta(minutes=5)
DO_NOT_DISRUPT: Final = "tensor-fusion.ai/do-not-disrupt"
KARPENTER_DO_NOT_DISRUPT: Final = "karpenter.sh/do-not-disrupt"


@dataclass(frozen=True, slots=True)
class PodView:
    key: str  # namespace/name
    node: str
    daemonset: bool
    do_not_disrupt: bool
    uses_gpu: bool
    cpu_milli: int
    memory: int
    node_selector: Mapping[str, str] = field(default_factory=dict)
    affinity_terms: Sequence[Sequence[Mapping[str, Any]]] = ()  # required terms (OR) of match expressions (AND)
    tolerations: Sequence[Mapping[str, Any]] = ()


@dataclass(frozen=True, slots=True)
class NodeView:
    name: str
    created: datetime
    ready: bool
    schedulable: bool
    labels: Mapping[str, str]
    taints: Sequence[Mapping[str, Any]]
    cpu_milli: int  # allocatable
    memory: int
    pods: int
    do_not_disrupt: bool = False
    pool_member: bool = False  # a GPU node of the pool being compacted
    capacity: Amount = field(default_factory=lambda: Amount(0, 0))  # GPU capacity it brings to the pool
    available: Amount = field(default_factory=lambda: Amount(0, 0))


@dataclass(frozen=True, slots=True)
class Removal:
    node: str
    landings: Mapping[str, str]  # pod key -> node it would land on


@dataclass(frozen=True, slots=True)
class Verdict:
    removals: tuple[Removal, ...]
    kept: Mapping[str, str]  # candidate node -> why it stays


def plan_compaction(
    *,
    nodes: Sequence[NodeView],
    pods: Sequence[PodView],
    bounds: Bounds,
    total: Amount,
    available: Amount,
    now: datetime,
) -> Verdict:
    by_node: dict[str, list[PodView]] = {}
    for pod in pods:
        by_node.setdefault(pod.node, []).append(pod)
    free = {n.name: _Room(n.cpu_milli, n.memory, n.pods) for n in nodes}
    for pod in pods:
        if pod.node in free:
            free[pod.node].take(pod)
    kept: dict[str, str] = {}
    removals: list[Removal] = []
    leaving: set[str] = set()
    receiving: set[str] = set()  # nodes counted on as landing spots: they must stay
    for node in sorted((n for n in nodes if n.pool_member), key=lambda n: (n.created, n.name)):
        residents = by_node.get(node.name, [])
        why = "pods of a node removed before it would land here" if node.name in receiving else None
        why = why or _not_candidate(node, residents, now)
        if why is None:
            after_total, after_free = _minus(total, node.capacity), _minus(available, node.available)
            why = _bounds_broken(bounds, after_total, after_free)
        landings: dict[str, str] = {}
        if why is None:
            stays = [n for n in nodes if n.name != node.name and n.name not in leaving and n.ready and n.schedulable]
            trial = {n.name: free[n.name].copy() for n in stays}
            for pod in sorted(
                (p for p in residents if not p.daemonset), key=lambda p: (-p.cpu_milli, -p.memory, p.key)
            ):
                spot = next((n.name for n in stays if trial[n.name].fits(pod) and _admits(n, pod)), None)
                if spot is None:
                    why = f"pod {pod.key} has nowhere else to run"
                    break
                trial[spot].take(pod)
                landings[pod.key] = spot
            if why is None:
                free.update(trial)
        if why is not None:
            kept[node.name] = why
            continue
        leaving.add(node.name)
        receiving.update(landings.values())
        total, available = _minus(total, node.capacity), _minus(available, node.available)
        removals.append(Removal(node.name, landings))
    return Verdict(tuple(removals), kept)


def _not_candidate(node: NodeView, residents: Sequence[PodView], now: datetime) -> str | None:
    if node.do_not_disrupt:
        return f"node has {DO_NOT_DISRUPT}"
    if not node.ready:
        return "node is not Ready"
    if now - node.created < MIN_AGE:
        return f"node is younger than {MIN_AGE}"
    if (node.available.tflops or 0) < (node.capacity.tflops or 0) or (node.available.vram or 0) < (
        node.capacity.vram or 0
    ):
        return "its GPUs are in use"
    for pod in residents:
        if pod.uses_gpu:
            return f"pod {pod.key} uses a GPU"
        if pod.do_not_disrupt:
            return f"pod {pod.key} has {DO_NOT_DISRUPT}"
    return None


def _bounds_broken(bounds: Bounds, total: Amount, available: Amount) -> str | None:
    for resource in ("tflops", "vram"):
        low, warm = getattr(bounds.min, resource), getattr(bounds.warm, resource)
        if low is not None and (getattr(total, resource) or 0) < low:
            return f"total {resource} would fall below minResources"
        if warm is not None and (getattr(available, resource) or 0) < warm:
            return f"available {resource} would fall below warmResources"
    return None


def _minus(a: Amount, b: Amount) -> Amount:
    return Amount((a.tflops or 0) - (b.tflops or 0), (a.vram or 0) - (b.vram or 0))


@dataclass(slots=True)
class _Room:
    cpu_milli: int
    memory: int
    pods: int

    def fits(self, pod: PodView) -> bool:
        return self.cpu_milli >= pod.cpu_milli and self.memory >= pod.memory and self.pods >= 1

    def take(self, pod: PodView) -> None:
        self.cpu_milli -= pod.cpu_milli
        self.memory -= pod.memory
        self.pods -= 1

    def copy(self) -> _Room:
        return _Room(self.cpu_milli, self.memory, self.pods)


def _admits(node: NodeView, pod: PodView) -> bool:
    if any(node.labels.get(k) != v for k, v in pod.node_selector.items()):
        return False
    if pod.affinity_terms and not any(_term_matches(term, node.labels) for term in pod.affinity_terms):
        return False
    return all(
        taint.get("effect") not in ("NoSchedule", "NoExecute") or any(_tolerates(t, taint) for t in pod.tolerations)
        for taint in node.taints
    )


def _term_matches(term: Sequence[Mapping[str, Any]], labels: Mapping[str, str]) -> bool:
    for expression in term:
        key, op, values = expression.get("key"), expression.get("operator"), expression.get("values") or []
        value = labels.get(str(key))
        if op == "In":
            ok = value in values
        elif op == "NotIn":
            ok = value not in values
        elif op == "Exists":
            ok = value is not None
        elif op == "DoesNotExist":
            ok = value is None
        elif op in ("Gt", "Lt") and value is not None and value.lstrip("-").isdigit() and values:
            ok = int(value) > int(values[0]) if op == "Gt" else int(value) < int(values[0])
        else:
            ok = False  # unknown: assume no fit rather than strand the pod
        if not ok:
            return False
    return True


def _tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    if toleration.get("effect") and toleration.get("effect") != taint.get("effect"):
        return False
    if toleration.get("operator") == "Exists":
        return not toleration.get("key") or toleration.get("key") == taint.get("key")
    return toleration.get("key") == taint.get("key") and toleration.get("value") == taint.get("value")
