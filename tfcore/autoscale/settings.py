"""Resolved autoscaling settings: the config's strings checked, ranges enforced, defaults filled.

Defaults are the reference operator's code defaults (not its docs, which disagree).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Final, Literal

from tfcore.model.autoscaling import AutoScalingConfig, AutoSetResources
from tfcore.model.errors import Problem, ValidationError
from tfcore.model.meta import parse_duration

Resource = Literal["compute", "vram"]
RESOURCES: Final[tuple[Resource, ...]] = ("compute", "vram")
MAX_HISTORY: Final = timedelta(days=30)
DEFAULT_HISTORY: Final = timedelta(hours=2)
DEFAULT_INTERVAL: Final = timedelta(seconds=30)
# VRAM samples are the peak of each worker per window of this length: a spike shorter than a
# sample period still counts, and a steady footprint is one sample per window, not thousands.
VRAM_PEAK_WINDOW: Final = timedelta(minutes=1)
MIN_TFLOPS: Final = 1.0
MIN_VRAM_BYTES: Final = 1024**3
# At most one applied change per this many intervals (hysteresis in time as well as size).
COOLDOWN_INTERVALS: Final = 10


@dataclass(frozen=True, slots=True)
class Percentiles:
    target: float
    lower: float
    upper: float


@dataclass(frozen=True, slots=True)
class Settings:
    enabled: bool
    targets: frozenset[Resource]  # what gets applied; empty: recommend only
    compute: Percentiles
    vram: Percentiles
    margin: float
    threshold: float
    history: timedelta
    half_life: timedelta
    compute_ratio: tuple[float, float]
    vram_ratio: tuple[float, float]
    initial_delay: timedelta
    interval: timedelta

    @property
    def cooldown(self) -> timedelta:
        return self.interval * COOLDOWN_INTERVALS


def resolve(config: AutoScalingConfig | None, *, where: str = "autoScalingConfig") -> Settings:
    """Settings of `config` (None: autoscaling off, defaults). ValidationError names each bad field."""
    auto = (config.auto_set_resources if config else None) or AutoSetResources()
    base = f"{where}.autoSetResources"
    problems: list[Problem] = []

    def number(name: str, value: str | None, default: float, low: float, high: float, *, open_low: bool) -> float:
        if value is None or value == "":
            return default
        try:
            parsed = float(value)
        except ValueError:
            parsed = float("nan")
        ok = (low < parsed if open_low else low <= parsed) and parsed <= high
        if not ok:
            bracket = "(" if open_low else "["
            problems.append(
                Problem(f"{base}.{name}", f"{value!r} is out of range", f"a number in {bracket}{low}, {high}]")
            )
            return default
        return parsed

    def percentile(name: str, value: str | None, default: float) -> float:
        return number(name, value, default, 0.0, 1.0, open_low=True)

    def duration(name: str, value: str | None, default: timedelta) -> timedelta:
        if not value:
            return default
        try:
            return parse_duration(value)
        except ValueError as exc:
            problems.append(Problem(f"{base}.{name}", str(exc)))
            return default

    compute = Percentiles(
        percentile("targetComputePercentile", auto.target_compute_percentile, 0.95),
        percentile("lowerBoundComputePercentile", auto.lower_bound_compute_percentile, 0.5),
        percentile("upperBoundComputePercentile", auto.upper_bound_compute_percentile, 0.99),
    )
    vram = Percentiles(
        percentile("targetVRAMPercentile", auto.target_vram_percentile, 0.98),
        percentile("lowerBoundVRAMPercentile", auto.lower_bound_vram_percentile, 0.5),
        percentile("upperBoundVRAMPercentile", auto.upper_bound_vram_percentile, 0.99),
    )
    for name, p in (("Compute", compute), ("VRAM", vram)):
        if not p.lower <= p.target <= p.upper:
            problems.append(
                Problem(
                    f"{base}.target{name}Percentile",
                    f"lower/target/upper are {p.lower}/{p.target}/{p.upper}",
                    f"lowerBound{name}Percentile <= target{name}Percentile <= upperBound{name}Percentile",
                )
            )
    margin = number("marginFraction", auto.margin_fraction, 0.15, 0.0, 10.0, open_low=False)
    threshold = number("updateThreshold", auto.update_threshold, 0.10, 0.0, 10.0, open_low=False)
    compute_ratio = (
        number("minComputeResourcesRatio", auto.min_compute_resources_ratio, 0.1, 0.0, 1.0, open_low=True),
        number("maxComputeResourcesRatio", auto.max_compute_resources_ratio, 10.0, 1.0, 1000.0, open_low=False),
    )
    vram_ratio = (
        number("minVRAMResourcesRatio", auto.min_vram_resources_ratio, 0.2, 0.0, 1.0, open_low=True),
        number("maxVRAMResourcesRatio", auto.max_vram_resources_ratio, 5.0, 1.0, 1000.0, open_low=False),
    )
    history_set = bool(auto.history_data_period)
    history = duration("historyDataPeriod", auto.history_data_period, DEFAULT_HISTORY)
    if history <= timedelta(0) or history > MAX_HISTORY:
        problems.append(
            Problem(f"{base}.historyDataPeriod", f"{auto.history_data_period!r}", "a duration in (0, 720h]")
        )
        history, history_set = DEFAULT_HISTORY, False
    interval = duration("interval", auto.interval, DEFAULT_INTERVAL)
    if interval < timedelta(seconds=1):
        problems.append(Problem(f"{base}.interval", f"{auto.interval!r} is too short", "a duration of at least 1s"))
        interval = DEFAULT_INTERVAL
    initial_delay = duration("initialDelayPeriod", auto.initial_delay_period, timedelta(0))
    if problems:
        raise ValidationError(problems)
    target = auto.target_resource or ""
    targets: frozenset[Resource] = frozenset(RESOURCES if target == "all" else (target,) if target else ())
    return Settings(
        enabled=bool(auto.enable),
        targets=targets,
        compute=compute,
        vram=vram,
        margin=margin,
        threshold=threshold,
        history=history,
        half_life=history / 2 if history_set else timedelta(hours=1),
        compute_ratio=compute_ratio,
        vram_ratio=vram_ratio,
        initial_delay=initial_delay,
        interval=interval,
    )
