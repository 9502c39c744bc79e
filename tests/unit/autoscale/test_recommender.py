"""The percentile recommender: quantile recovery, confidence, QoS, clamps, the VRAM peak rule."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tfcore.autoscale.histogram import DecayingHistogram
from tfcore.autoscale.history import WorkloadHistory
from tfcore.autoscale.recommender import recommend, required_samples, worth_applying
from tfcore.autoscale.resources import Amounts, Resources
from tfcore.autoscale.settings import resolve
from tfcore.model.autoscaling import AutoScalingConfig
from tfcore.model.codec import decode
from tfcore.model.errors import ValidationError
from tfcore.model.meta import QoSLevel

GIB = 1024**3
ORIGINAL = Resources(Amounts(10.0, 8 * GIB), Amounts(20.0, 8 * GIB))


def config(**auto: object) -> AutoScalingConfig:
    return decode({"autoSetResources": {"enable": True, "targetResource": "all", **auto}}, AutoScalingConfig)


@pytest.mark.parametrize(("p", "draw"), [(0.5, "uniform"), (0.95, "uniform"), (0.99, "lognormal"), (0.9, "lognormal")])
def test_stationary_trace_recovers_the_true_quantile_within_10_percent(p: float, draw: str) -> None:
    rng = random.Random(7)
    histogram = DecayingHistogram(0.1, 1e4, half_life_s=3600)
    values = []
    for i in range(20_000):
        value = rng.uniform(5, 50) if draw == "uniform" else rng.lognormvariate(2.0, 0.5)
        values.append(value)
        histogram.add(value, at_s=i * 0.36)  # 2 h of samples
    true = sorted(values)[int(p * len(values))]
    assert histogram.percentile(p) == pytest.approx(true, rel=0.10)


def test_decay_makes_recent_usage_dominate() -> None:
    histogram = DecayingHistogram(0.1, 1e4, half_life_s=600)
    for i in range(1000):
        histogram.add(100.0, at_s=i)  # old: high
    for i in range(1000):
        histogram.add(10.0, at_s=7200 + i)  # 2 h later (12 half-lives): low
    assert histogram.percentile(0.9) == pytest.approx(10.0, rel=0.06)


def test_weights_renormalise_over_long_spans_without_overflow() -> None:
    histogram = DecayingHistogram(0.1, 1e4, half_life_s=1)
    for i in range(2000):
        histogram.add(5.0, at_s=i * 10.0)  # 20 000 half-lives
    assert histogram.percentile(0.5) == pytest.approx(5.0, rel=0.06)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 5e3, allow_nan=False), min_size=1, max_size=200), st.floats(0.01, 1.0))
def test_percentiles_are_monotonic_and_cover_the_samples(values: list[float], p: float) -> None:
    histogram = DecayingHistogram(0.1, 1e4, half_life_s=3600)
    for i, value in enumerate(values):
        histogram.add(value, at_s=float(i))
    assert histogram.percentile(p) <= histogram.percentile(1.0)
    assert histogram.percentile(1.0) >= max(values) or histogram.percentile(1.0) >= 1e4 * 0.95


def _history(tflops: Sequence[float], vram: Sequence[float], *, step: float = 15.0) -> WorkloadHistory:
    history = WorkloadHistory(half_life_s=3600, history_s=7200)
    for i, (t, v) in enumerate(zip(tflops, vram, strict=True)):
        history.add("w0", at_s=i * step, tflops=t, vram_bytes=v)
    return history


def test_no_decision_before_enough_samples() -> None:
    settings_ = resolve(config())
    short = _history([5.0] * 30, [GIB] * 30)
    estimate = recommend(short, settings_, ORIGINAL, "medium", now_s=30 * 15)
    assert not estimate.confident
    assert estimate.resources is None
    assert "collecting samples" in estimate.reason
    assert required_samples(0.98) == 100


def test_qos_picks_lower_target_or_upper_bound() -> None:
    rng = random.Random(1)
    tflops = [rng.lognormvariate(2.0, 0.6) for _ in range(4000)]
    vram = [2 * GIB] * 4000
    settings_ = resolve(config())
    by_qos = {}
    qos: QoSLevel
    for qos in ("low", "medium", "high", "critical"):
        history = _history(tflops, vram, step=1.8)  # 2 h
        estimate = recommend(history, settings_, ORIGINAL, qos, now_s=4000 * 1.8)
        assert estimate.confident
        assert estimate.resources is not None
        by_qos[qos] = estimate.resources.requests.tflops
    assert by_qos["low"] == by_qos["medium"] < by_qos["high"] < by_qos["critical"]
    true = sorted(tflops)
    assert by_qos["medium"] == pytest.approx(true[2000] * 1.15, rel=0.1)  # p50 x (1 + margin)
    assert by_qos["high"] == pytest.approx(true[3800] * 1.15, rel=0.1)  # p95
    assert by_qos["critical"] == pytest.approx(true[3960] * 1.15, rel=0.1)  # p99


def test_clamps_to_the_ratio_band_and_floors() -> None:
    settings_ = resolve(config(maxComputeResourcesRatio="2", minVRAMResourcesRatio="0.5"))
    estimate = recommend(_history([500.0] * 400, [0.1 * GIB] * 400), settings_, ORIGINAL, "high", now_s=400 * 15)
    assert estimate.resources is not None
    assert estimate.resources.requests.tflops == 20.0  # 2 x 10
    assert estimate.resources.limits.tflops == 40.0  # 2 x 20
    assert estimate.resources.requests.vram == 4 * GIB  # 0.5 x 8 Gi
    idle = recommend(_history([0.0] * 400, [0.0] * 400), resolve(config()), ORIGINAL, "low", now_s=400 * 15)
    assert idle.resources is not None
    assert idle.resources.requests.tflops == 1.0
    assert idle.resources.requests.vram >= GIB
    assert idle.resources.limits.tflops == 20.0  # the compute limit keeps the original headroom


def test_vram_limit_never_below_the_observed_peak_with_margin() -> None:
    # One spike in 2 h: far above every percentile, but the limit must still cover it.
    vram = [2 * GIB] * 480
    vram[200] = 7 * GIB
    estimate = recommend(_history([5.0] * 480, vram), resolve(config()), ORIGINAL, "medium", now_s=480 * 15)
    assert estimate.resources is not None
    assert estimate.resources.limits.vram >= 7 * GIB * 1.15
    assert "peak" in estimate.reason


def test_hysteresis_counts_limits_as_well_as_requests() -> None:
    current = ORIGINAL
    limit_moved = Resources(current.requests, Amounts(30.0, current.limits.vram))
    assert worth_applying(current, limit_moved, frozenset({"compute"}), 0.1) == (True, True)
    small = Resources(Amounts(10.5, current.requests.vram), current.limits)
    assert worth_applying(current, small, frozenset({"compute"}), 0.1) == (False, False)
    assert worth_applying(current, limit_moved, frozenset({"vram"}), 0.1) == (False, False)


@pytest.mark.parametrize(
    ("auto", "field"),
    [
        ({"targetComputePercentile": "1.5"}, "targetComputePercentile"),
        ({"targetComputePercentile": "0.3"}, "targetComputePercentile"),  # below the lower bound 0.5
        ({"maxVRAMResourcesRatio": "0.5"}, "maxVRAMResourcesRatio"),
        ({"historyDataPeriod": "0s"}, "historyDataPeriod"),
        ({"interval": "10ms"}, "interval"),
    ],
)
def test_bad_settings_name_the_field(auto: dict[str, str], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        resolve(config(**auto))
    assert any(field in p.field for p in caught.value.problems)


def test_defaults_follow_the_reference_code() -> None:
    s = resolve(None)
    assert not s.enabled
    assert not s.targets
    assert (s.compute.target, s.compute.lower, s.compute.upper) == (0.95, 0.5, 0.99)
    assert (s.vram.target, s.vram.lower, s.vram.upper) == (0.98, 0.5, 0.99)
    assert (s.margin, s.threshold, s.history, s.half_life) == (0.15, 0.1, timedelta(hours=2), timedelta(hours=1))
    assert resolve(config(historyDataPeriod="4h")).half_life == timedelta(hours=2)


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            ["targetComputePercentile", "marginFraction", "interval", "historyDataPeriod", "minVRAMResourcesRatio"]
        ),
        st.text(max_size=12),
    )
)
def test_settings_parser_fuzz_either_resolves_or_names_a_field(auto: dict[str, str]) -> None:
    try:
        resolve(decode({"autoSetResources": auto}, AutoScalingConfig))
    except ValidationError as exc:
        problems = exc.problems
    else:
        return
    assert all(p.field.startswith(("autoSetResources", "autoScalingConfig.autoSetResources")) for p in problems)
