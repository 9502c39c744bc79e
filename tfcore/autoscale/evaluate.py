"""One autoscaling decision for one workload: the sources, their merge, and whether to apply.

What is recommended always covers both resources; what is applied covers only those the
config targets (`targetResource`) plus those a cron rule or the external recommender names.
Scale-ups apply at once; scale-downs wait out a cooldown of several intervals since the last
change, so a workload is not resized back and forth (hysteresis in time as well as size).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from tfcore.autoscale.cron import CronRuleError
from tfcore.autoscale.cron import decide as decide_cron
from tfcore.autoscale.history import WorkloadHistory
from tfcore.autoscale.merge import Merged, SourceResult, merge
from tfcore.autoscale.recommender import Estimate, recommend, worth_applying
from tfcore.autoscale.resources import Resources
from tfcore.autoscale.settings import RESOURCES, Resource, Settings
from tfcore.model.autoscaling import AutoScalingConfig
from tfcore.model.meta import QoSLevel


@dataclass(frozen=True, slots=True)
class Situation:
    settings: Settings
    config: AutoScalingConfig | None
    original: Resources  # the spec's resources
    current: Resources  # what the workers have now
    qos: QoSLevel | None
    now: datetime
    active_cron_rule: str | None = None  # as the status last said
    last_applied: datetime | None = None
    external: SourceResult | None = None  # fetched by the caller (an I/O edge)


@dataclass(frozen=True, slots=True)
class Outcome:
    estimate: Estimate
    recommendation: Resources | None  # what the sources say, both resources
    apply: Resources | None  # what to apply now; None: nothing
    reason: str
    active_cron_rule: str | None
    errors: list[str] = field(default_factory=list)


def evaluate(history: WorkloadHistory, situation: Situation) -> Outcome:
    s = situation
    settings = s.settings
    estimate = recommend(history, settings, s.original, s.qos, s.now.timestamp())
    sources: list[SourceResult] = []
    if settings.enabled and estimate.resources is not None:
        sources.append(SourceResult("percentile", estimate.resources))
    cron_rule = s.active_cron_rule
    rules = (s.config.cron_scaling_rules if s.config else None) or []
    if rules:
        try:
            cron = decide_cron(rules, s.original, s.now, s.active_cron_rule)
        except CronRuleError as exc:
            sources.append(SourceResult("cron", error=str(exc)))
        else:
            cron_rule = cron.rule
            if cron.resources is not None:
                sources.append(SourceResult("cron", cron.resources, floor=cron.rule is not None))
    if s.external is not None:
        sources.append(s.external)
    floor = history.vram_peak() * (1.0 + settings.margin)
    recommended = _safe(merge(s.current, sources), floor)
    applied_targets = _applied_targets(settings, sources)
    narrowed = [_narrow(source, settings.targets) if source.name == "percentile" else source for source in sources]
    to_apply = _safe(merge(s.current, narrowed), floor)
    if recommended.resources is not None and not applied_targets:
        apply, why = None, "recommend only (no targetResource)"
    else:
        apply, why = _decide(s, to_apply, applied_targets, cron_rule != s.active_cron_rule)
    reason = "; ".join(part for part in (_describe(recommended, estimate), why) if part)
    return Outcome(estimate, recommended.resources, apply, reason, cron_rule, recommended.errors)


def _safe(merged: Merged, vram_floor: float) -> Merged:
    """Whatever a source says, the VRAM limit stays above the observed peak x (1 + margin):
    below it the workload's next allocation of a size it already made would fail."""
    result = merged.resources
    if result is None or result.limits.vram >= vram_floor:
        return merged
    raised = result.with_("vram", result.requests.vram, vram_floor)
    return Merged(raised, merged.winners, merged.errors)


def _narrow(source: SourceResult, targets: frozenset[Resource]) -> SourceResult:
    return SourceResult(source.name, source.resources, source.covers & targets, source.error, source.floor)


def _applied_targets(settings: Settings, sources: list[SourceResult]) -> frozenset[Resource]:
    targets = set(settings.targets if settings.enabled else ())
    for source in sources:
        if source.name != "percentile" and source.usable:
            targets |= source.covers
    return frozenset(targets)


def _decide(
    s: Situation, merged: Merged, targets: frozenset[Resource], cron_changed: bool
) -> tuple[Resources | None, str]:
    if merged.resources is None or not targets:
        return None, ""
    changed, increase = worth_applying(s.current, merged.resources, targets, s.settings.threshold)
    if not changed:
        return None, f"within the {s.settings.threshold:.0%} update threshold"
    cooling = s.last_applied is not None and s.now - s.last_applied < s.settings.cooldown
    if cooling and not increase and not cron_changed:
        return None, f"scale-down waits for the cooldown ({s.settings.cooldown} since the last change)"
    return merged.resources, ""


def _describe(merged: Merged, estimate: Estimate) -> str:
    parts = [estimate.reason]
    for resource in RESOURCES:
        if resource in merged.winners and merged.winners[resource] != "percentile":
            parts.append(f"{resource} from {merged.winners[resource]}")
    parts += [f"failed: {error}" for error in merged.errors]
    return "; ".join(parts)
