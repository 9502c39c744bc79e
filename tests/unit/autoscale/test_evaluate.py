"""One decision: sources merged, the VRAM safety floor over every source, cooldown, targets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tfcore.autoscale.evaluate import Situation, evaluate
from tfcore.autoscale.history import WorkloadHistory
from tfcore.autoscale.resources import Amounts, Resources
from tfcore.autoscale.settings import resolve
from tfcore.model.autoscaling import AutoScalingConfig
from tfcore.model.codec import decode

GIB = 1024**3
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)  # a Thursday, noon
SPEC = Resources(Amounts(10.0, 8 * GIB), Amounts(20.0, 8 * GIB))


def _history(tflops: float, vram: float) -> WorkloadHistory:
    history = WorkloadHistory(half_life_s=3600, history_s=7200)
    start = NOW.timestamp() - 7200
    for i in range(480):
        history.add("w", start + i * 15, tflops, vram)
    return history


def _config(**extra: object) -> AutoScalingConfig:
    return decode({"autoSetResources": {"enable": True, "targetResource": "all"}, **extra}, AutoScalingConfig)


def test_a_cron_rule_cannot_push_the_vram_limit_under_the_observed_peak() -> None:
    rule = {
        "enable": True,
        "name": "night",
        "start": "0 0 * * *",
        "end": "59 23 * * *",
        "desiredResources": {"requests": {"vram": "1Gi"}, "limits": {"vram": "1Gi"}},
    }
    config = _config(cronScalingRules=[rule])
    situation = Situation(resolve(config), config, SPEC, SPEC, "medium", NOW)
    outcome = evaluate(_history(5.0, 6 * GIB), situation)
    assert outcome.active_cron_rule == "night"
    assert outcome.recommendation is not None
    assert outcome.recommendation.limits.vram >= 6 * GIB * 1.15


def test_scale_down_waits_for_the_cooldown_scale_up_does_not() -> None:
    config = _config()
    settings = resolve(config)
    recent = NOW - timedelta(minutes=1)
    down = evaluate(_history(2.0, 2 * GIB), Situation(settings, config, SPEC, SPEC, "medium", NOW, last_applied=recent))
    assert down.apply is None
    assert "cooldown" in down.reason
    later = NOW - settings.cooldown - timedelta(seconds=1)
    assert evaluate(
        _history(2.0, 2 * GIB), Situation(settings, config, SPEC, SPEC, "medium", NOW, last_applied=later)
    ).apply
    up = evaluate(_history(60.0, 7 * GIB), Situation(settings, config, SPEC, SPEC, "high", NOW, last_applied=recent))
    assert up.apply is not None
    assert up.apply.requests.tflops > SPEC.requests.tflops


def test_only_targeted_resources_are_applied() -> None:
    config = decode({"autoSetResources": {"enable": True, "targetResource": "compute"}}, AutoScalingConfig)
    outcome = evaluate(_history(2.0, 2 * GIB), Situation(resolve(config), config, SPEC, SPEC, "medium", NOW))
    assert outcome.apply is not None
    assert outcome.apply.requests.tflops < SPEC.requests.tflops
    assert outcome.apply.requests.vram == SPEC.requests.vram  # VRAM is recommended, not applied
    assert outcome.recommendation is not None
    assert outcome.recommendation.requests.vram < SPEC.requests.vram


def test_a_broken_cron_rule_does_not_stop_percentile_scaling() -> None:
    rules = [
        {"enable": True, "name": n, "start": "0 0 * * *", "end": "59 23 * * *",
         "desiredResources": {"requests": {"tflops": "1"}}}
        for n in ("a", "b")
    ]  # fmt: skip
    config = _config(cronScalingRules=rules)
    outcome = evaluate(_history(2.0, 2 * GIB), Situation(resolve(config), config, SPEC, SPEC, "medium", NOW))
    assert outcome.apply is not None
    assert any("2 rules are open" in error for error in outcome.errors)
