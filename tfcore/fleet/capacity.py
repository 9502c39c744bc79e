"""Scale-up planning for managed pools: keep total >= minResources and available >= warmResources,
never going beyond maxResources counting capacity still being provisioned.

Amounts are exact integers: milli-TFLOPS and bytes (as tfcore.operator.capacity counts them).
CPU and memory bounds of GPUOrCPUResources are not used for GPU pools.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from tfcore.fleet.catalogue import InstanceType
from tfcore.fleet.requirements import Offer
from tfcore.model.pool import CapacityConfig, GPUOrCPUResources
from tfcore.sched.units import capacity_bytes, capacity_milli_tflops, tflops_text


@dataclass(frozen=True, slots=True)
class Amount:
    """milli-TFLOPS and bytes of VRAM; a bound's unset resource is None (no bound)."""

    tflops: int | None = None
    vram: int | None = None

    def __add__(self, other: Amount) -> Amount:
        return Amount((self.tflops or 0) + (other.tflops or 0), (self.vram or 0) + (other.vram or 0))

    def scaled(self, count: int) -> Amount:
        return Amount((self.tflops or 0) * count, (self.vram or 0) * count)

    @property
    def unset(self) -> bool:
        return self.tflops is None and self.vram is None

    @classmethod
    def of(cls, instance: InstanceType) -> Amount:
        return cls(instance.milli_tflops, instance.vram_bytes)

    @classmethod
    def from_model(cls, model: GPUOrCPUResources | None) -> Amount:
        if model is None:
            return cls()
        return cls(
            capacity_milli_tflops(model.tflops) if model.tflops is not None else None,
            capacity_bytes(model.vram) if model.vram is not None else None,
        )

    def text(self) -> str:
        parts = []
        if self.tflops is not None:
            parts.append(f"{tflops_text(self.tflops)} TFLOPS")
        if self.vram is not None:
            parts.append(f"{self.vram / 2**30:g}Gi VRAM")
        return " / ".join(parts) or "nothing"


@dataclass(frozen=True, slots=True)
class Bounds:
    min: Amount
    warm: Amount
    max: Amount

    @classmethod
    def from_model(cls, config: CapacityConfig | None) -> Bounds:
        config = config or CapacityConfig()
        return cls(
            Amount.from_model(config.min_resources),
            Amount.from_model(config.warm_resources),
            Amount.from_model(config.max_resources),
        )


@dataclass(frozen=True, slots=True)
class Observed:
    """Physical capacity of the pool's joined nodes, what is free of it, and what is on its way."""

    total: Amount
    available: Amount
    pending: Amount


@dataclass(frozen=True, slots=True)
class ScaleUp:
    offer: Offer
    count: int
    reason: str

    @property
    def hourly_cost(self) -> float:
        return (self.offer.instance.price or 0.0) * self.count


@dataclass(frozen=True, slots=True)
class NoScaleUp:
    reason: str


def shortfall(bounds: Bounds, seen: Observed) -> tuple[Amount, str]:
    """How much capacity is missing (per resource, >= 0) and why, counting pending capacity."""
    reasons: list[str] = []
    gaps: dict[str, int] = {}
    for resource in ("tflops", "vram"):
        coming = (getattr(seen.total, resource) or 0) + (getattr(seen.pending, resource) or 0)
        free = (getattr(seen.available, resource) or 0) + (getattr(seen.pending, resource) or 0)
        low, warm = getattr(bounds.min, resource), getattr(bounds.warm, resource)
        gap = 0
        if low is not None and coming < low:
            gap = low - coming
            reasons.append(f"total+pending {resource} below minResources")
        if warm is not None and free < warm:
            gap = max(gap, warm - free)
            reasons.append(f"available+pending {resource} below warmResources")
        gaps[resource] = gap
    return Amount(gaps["tflops"], gaps["vram"]), "; ".join(reasons)


def room(bounds: Bounds, seen: Observed) -> Amount:
    """What maxResources still allows on top of total + pending (None where unbounded)."""
    coming = seen.total + seen.pending
    return Amount(
        None if bounds.max.tflops is None else bounds.max.tflops - (coming.tflops or 0),
        None if bounds.max.vram is None else bounds.max.vram - (coming.vram or 0),
    )


def nodes_needed(gap: Amount, per_node: Amount) -> int:
    counts = [0]
    for resource in ("tflops", "vram"):
        want, each = getattr(gap, resource) or 0, getattr(per_node, resource) or 0
        if want > 0:
            counts.append(math.ceil(want / each) if each > 0 else 0)
    return max(counts)


def nodes_allowed(space: Amount, per_node: Amount) -> int | None:
    """How many nodes fit under maxResources (None: unbounded)."""
    limits = [
        getattr(space, r) // (getattr(per_node, r) or 1)
        for r in ("tflops", "vram")
        if getattr(space, r) is not None and (getattr(per_node, r) or 0) > 0
    ]
    return max(0, min(limits)) if limits else None


def plan_scale_up(
    bounds: Bounds, seen: Observed, offers: Sequence[Offer], *, max_nodes: int = 100
) -> ScaleUp | NoScaleUp:
    """The cheapest priced offer (count x hourly price) closing the shortfall within maxResources.

    When the max cannot fit the whole shortfall, as many nodes as fit are asked for.
    """
    gap, why = shortfall(bounds, seen)
    if not why:
        return NoScaleUp("minResources and warmResources hold")
    space = room(bounds, seen)
    best: ScaleUp | None = None
    for offer in offers:
        if offer.instance.price is None:
            continue
        per_node = Amount.of(offer.instance)
        want = nodes_needed(gap, per_node)
        allowed = nodes_allowed(space, per_node)
        count = min(want, max_nodes, allowed if allowed is not None else want)
        if count < 1:
            continue
        candidate = ScaleUp(offer, count, f"{why}: {count} x {offer.instance.name} ({offer.capacity_type})")
        if best is None or (count < want, candidate.hourly_cost, offer.key()) < (
            best.count < nodes_needed(gap, Amount.of(best.offer.instance)),
            best.hourly_cost,
            best.offer.key(),
        ):
            best = candidate
    if best is None:
        if not any(o.instance.price is not None for o in offers):
            return NoScaleUp(f"{why}, but no priced instance type matches gpuRequirements")
        return NoScaleUp(f"{why}, but maxResources ({bounds.max.text()}) leaves no room counting pending capacity")
    return best
