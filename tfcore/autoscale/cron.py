"""Cron scaling rules: desired resources while a rule's [start, end) window is open.

A rule is open at `now` when its next end comes before its next start. Two open rules are an
error (which one wins would be arbitrary); it stops the cron source only. When no rule is open
but one was, the spec's own resources come back (the rule's effect ends with its window).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from croniter import croniter

from tfcore.autoscale.resources import Resources, overlay
from tfcore.model.autoscaling import CronScalingRule


class CronRuleError(ValueError):
    """The rules cannot be evaluated (bad rule, several open at once)."""


@dataclass(frozen=True, slots=True)
class CronDecision:
    rule: str | None  # the open rule's name; None: none open
    resources: Resources | None  # what to apply; None: nothing to say


def is_open(rule: CronScalingRule, now: datetime) -> bool:
    if not rule.enable or not rule.start or not rule.end:
        return False
    next_start: datetime = croniter(rule.start, now).get_next(datetime)
    next_end: datetime = croniter(rule.end, now).get_next(datetime)
    return next_end < next_start


def decide(
    rules: Sequence[CronScalingRule], original: Resources, now: datetime, previously_active: str | None
) -> CronDecision:
    """Raises CronRuleError when several rules are open or an open rule lacks resources."""
    open_rules = [rule for rule in rules if is_open(rule, now)]
    if len(open_rules) > 1:
        names = ", ".join(repr(r.name or f"#{rules.index(r)}") for r in open_rules)
        raise CronRuleError(f"cronScalingRules: {len(open_rules)} rules are open at once ({names}); at most one may be")
    if not open_rules:
        return CronDecision(None, original if previously_active else None)
    rule = open_rules[0]
    name = rule.name or f"#{rules.index(rule)}"
    desired = rule.desired_resources
    if desired is None or (desired.requests is None and desired.limits is None):
        raise CronRuleError(f"cronScalingRules[{name}].desiredResources: empty (expected requests and/or limits)")
    return CronDecision(name, overlay(original, desired))
