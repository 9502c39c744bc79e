"""Target shares of one GPU: guarantees first, then idle capacity to whoever wants it.

1. Every tenant gets min(request, demand).  If the guarantees alone exceed the GPU (an
   oversold pool), they are scaled down in proportion, so each keeps the same fraction of
   its promise.
2. What is left is poured into the tenants whose demand is above what they hold, in
   proportion to their requests (a small floor weight lets best-effort tenants share), until
   each reaches min(limit, demand) or nothing is left (progressive filling).

The result is work conserving (capacity stays unused only when every tenant is at its limit
or its demand), never above a limit, and never below a request the tenant wants.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

BEST_EFFORT_WEIGHT: Final = 0.01
_EPS: Final = 1e-12


@dataclass(frozen=True, slots=True)
class Demand:
    request: float
    limit: float
    demand: float  # the share it would use if let; >= limit for a tenant held back


def water_fill(tenants: Mapping[str, Demand], capacity: float = 1.0) -> dict[str, float]:
    caps = {k: max(0.0, min(d.limit, d.demand)) for k, d in tenants.items()}
    held = {k: min(d.request, caps[k]) for k, d in tenants.items()}
    guaranteed = sum(held.values())
    if guaranteed > capacity:
        scale = capacity / guaranteed
        return {k: v * scale for k, v in held.items()}
    left = capacity - guaranteed
    weights = {k: max(d.request, BEST_EFFORT_WEIGHT) for k, d in tenants.items()}
    hungry = {k for k in tenants if caps[k] - held[k] > _EPS}
    while left > _EPS and hungry:
        total = sum(weights[k] for k in hungry)
        # The level at which the first hungry tenant is satisfied, or everything is spent.
        step = min(left / total, *((caps[k] - held[k]) / weights[k] for k in hungry))
        for k in list(hungry):
            held[k] += step * weights[k]
            if caps[k] - held[k] <= _EPS:
                held[k] = caps[k]
                hungry.discard(k)
        left = capacity - sum(held.values())
    return held
