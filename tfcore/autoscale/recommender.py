"""The percentile recommender: requests and limits from a workload's usage histograms.

Each estimate is a percentile of usage times (1 + margin). The limit is the upper estimate;
the request depends on QoS (critical: upper, high: target, low/medium: lower). Both are
clamped to a ratio band around the original spec and to floors; the compute limit never
drops below the original (burst headroom costs nothing while the GPU is idle), and the VRAM
limit never below the observed peak x (1 + margin): going under would fail allocations the
workload already makes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from tfcore.autoscale.history import WorkloadHistory
from tfcore.autoscale.resources import Amounts, Resources
from tfcore.autoscale.settings import MIN_TFLOPS, MIN_VRAM_BYTES, RESOURCES, Percentiles, Resource, Settings
from tfcore.model.meta import QoSLevel

# Confidence: a percentile p is trusted once the histogram holds enough samples that
# TAIL_SAMPLES of them are expected above it (p95: 40, p98: 100), and never below MIN_SAMPLES.
TAIL_SAMPLES: Final = 2
MIN_SAMPLES: Final = 20


@dataclass(frozen=True, slots=True)
class Estimate:
    """What the percentile recommender says: resources, or why not (not confident yet)."""

    resources: Resources | None
    confident: bool
    samples: dict[str, int]
    reason: str


def required_samples(p: float) -> int:
    return max(MIN_SAMPLES, math.ceil(TAIL_SAMPLES / max(1e-9, 1.0 - p)))


def _bounds(history: WorkloadHistory, resource: Resource, p: Percentiles, margin: float) -> tuple[float, float, float]:
    histogram = history.compute if resource == "compute" else history.vram
    lower, target, upper = (value * (1.0 + margin) for value in histogram.percentiles((p.lower, p.target, p.upper)))
    return lower, target, upper


def _request_for(qos: QoSLevel | None, lower: float, target: float, upper: float) -> float:
    if qos == "critical":
        return upper
    if qos == "high":
        return target
    return lower  # low, medium and unset (the default QoS is medium)


def recommend(
    history: WorkloadHistory, settings: Settings, original: Resources, qos: QoSLevel | None, now_s: float
) -> Estimate:
    """Resources for both compute and VRAM (the caller applies only the targeted ones)."""
    history.flush(now_s)
    samples = {"compute": history.compute.count, "vram": history.vram.count}
    needed = {"compute": required_samples(settings.compute.target), "vram": required_samples(settings.vram.target)}
    short = [f"{r} {samples[r]}/{needed[r]}" for r in RESOURCES if samples[r] < needed[r]]
    if short:
        return Estimate(None, False, samples, "collecting samples: " + ", ".join(short))
    if history.span_s() < settings.initial_delay.total_seconds():
        span = timedelta(seconds=int(history.span_s()))
        return Estimate(None, False, samples, f"history spans {span}, initialDelayPeriod is {settings.initial_delay}")
    result = original
    notes: list[str] = []
    for resource in RESOURCES:
        percentiles = settings.compute if resource == "compute" else settings.vram
        lower, target, upper = _bounds(history, resource, percentiles, settings.margin)
        request = _request_for(qos, lower, target, upper)
        low_ratio, high_ratio = settings.compute_ratio if resource == "compute" else settings.vram_ratio
        floor = MIN_TFLOPS if resource == "compute" else MIN_VRAM_BYTES
        request = _clamp(request, original.requests.get(resource), low_ratio, high_ratio, floor)
        limit = _clamp(upper, original.limits.get(resource), low_ratio, high_ratio, floor)
        if resource == "compute":
            limit = max(limit, original.limits.tflops)
        else:
            safe = history.vram_peak() * (1.0 + settings.margin)
            if limit < safe:
                notes.append(f"VRAM limit raised to the observed peak x {1 + settings.margin:g}")
                limit = safe
        limit = max(limit, request)
        result = result.with_(resource, request, limit)
    reason = f"p{_pct(settings.compute.target)} compute, p{_pct(settings.vram.target)} VRAM, QoS {qos or 'medium'}"
    return Estimate(result, True, samples, "; ".join([reason, *notes]))


def _clamp(value: float, original: float, low_ratio: float, high_ratio: float, floor: float) -> float:
    return max(floor, min(max(value, original * low_ratio), original * high_ratio))


def _pct(p: float) -> str:
    return f"{p * 100:g}"


def worth_applying(
    current: Resources, proposed: Resources, targets: frozenset[Resource], threshold: float
) -> tuple[bool, bool]:
    """(changed beyond the threshold, any increase among those changes). Requests and limits
    both count: a limit that moves far while the request stays is still a change."""
    changed = increase = False
    for resource in targets:
        for now, then in (
            (current.requests.get(resource), proposed.requests.get(resource)),
            (current.limits.get(resource), proposed.limits.get(resource)),
        ):
            if now <= 0 or abs(then - now) / now > threshold:
                changed = True
                increase = increase or then > now
    return changed, increase


def restrict(current: Resources, proposed: Resources, targets: frozenset[Resource]) -> Resources:
    """`proposed` for the targeted resources, `current` for the others."""
    result = current
    for resource in targets:
        result = result.with_(resource, proposed.requests.get(resource), proposed.limits.get(resource))
    return result


__all__ = ["Amounts", "Estimate", "recommend", "required_samples", "restrict", "worth_applying"]
