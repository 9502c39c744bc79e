"""Alert rules as users write them (dynamicConfig.alertRules), validated and compiled.

A rule is SQL over the metrics tables. Its query may use `{{ .Conditions }}` (the time filter
for the last evaluation interval, in the store's dialect) and `{{ .Threshold }}`; its summary,
description and alertTargetInstance may use any column of the query's result rows (and
`{{ .Threshold }}`). Every row the query returns is a hit for the instance it names.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec

from tfcore.alerts import template
from tfcore.alerts.duration import parse_duration
from tfcore.metrics.store import Dialect
from tfcore.model.codec import decode
from tfcore.model.errors import Problem, ValidationError

QUERY_FIELDS = frozenset({"Conditions", "Threshold"})
ROW_EXTRA_FIELDS = frozenset({"Threshold"})
WATCHDOG = "WatchDog"


class AlertRule(msgspec.Struct, rename="camel", forbid_unknown_fields=True, frozen=True, omit_defaults=True):
    """One entry of dynamicConfig.alertRules, field for field as the spec writes it."""

    name: str
    query: str
    severity: str
    threshold: float = 0.0
    evaluation_interval: str = "1m"
    consecutive_count: int = 1
    summary: str = ""
    description: str = ""
    alert_target_instance: str = ""
    runbook_url: str = msgspec.field(default="", name="runbookURL")


@dataclass(frozen=True, slots=True)
class CompiledRule:
    rule: AlertRule
    interval: timedelta
    query: template.Template
    summary: template.Template
    description: template.Template
    instance: template.Template

    @property
    def name(self) -> str:
        return self.rule.name

    @property
    def row_fields(self) -> frozenset[str]:
        """Result-row columns the rule's label and annotation templates need."""
        return (self.summary.fields | self.description.fields | self.instance.fields) - ROW_EXTRA_FIELDS

    def render_query(self, dialect: Dialect, now: datetime) -> str:
        conditions = dialect.time_filter(now - self.interval, now)
        values = {"Conditions": conditions, "Threshold": self.rule.threshold}
        return self.query.render(values, where=f"{self.name}.query")


def compile_rule(rule: AlertRule) -> CompiledRule:
    """Validate one rule; raise ValidationError listing every problem, fields named as in YAML."""
    problems: list[Problem] = []
    compiled: dict[str, template.Template] = {}
    if not rule.name.strip() or "\n" in rule.name:
        problems.append(Problem("name", f"bad name {rule.name!r}", "a non-empty single-line name"))
    if not rule.severity.strip():
        problems.append(Problem("severity", "must not be empty", "a severity such as P0, P1, P2, P3"))
    if not rule.query.strip():
        problems.append(Problem("query", "must not be empty", "a SQL SELECT over the tf_* tables"))
    if not math.isfinite(rule.threshold):
        problems.append(Problem("threshold", f"{rule.threshold!r} is not a finite number", "a number"))
    if rule.consecutive_count < 1:
        problems.append(Problem("consecutiveCount", f"{rule.consecutive_count} is below 1", "an integer >= 1"))
    interval = timedelta(0)
    try:
        interval = parse_duration(rule.evaluation_interval, field="evaluationInterval")
    except ValidationError as exc:
        problems.extend(exc.problems)
    for field, source, allowed in (
        ("query", rule.query, QUERY_FIELDS),
        ("summary", rule.summary or rule.name, None),
        ("description", rule.description, None),
        ("alertTargetInstance", rule.alert_target_instance, None),
    ):
        try:
            compiled[field] = template.parse(source, where=field)
        except ValidationError as exc:
            problems.extend(exc.problems)
            continue
        unknown = compiled[field].fields - allowed if allowed is not None else frozenset()
        if unknown:
            problems.append(
                Problem(field, f"unknown field(s) {_dotted(unknown)}", f"only {_dotted(allowed or ())} in a query")
            )
    if rule.runbook_url and not rule.runbook_url.startswith(("http://", "https://")):
        problems.append(Problem("runbookURL", f"not a URL: {rule.runbook_url!r}", "an http:// or https:// URL"))
    if problems:
        raise ValidationError(problems)
    return CompiledRule(
        rule, interval, compiled["query"], compiled["summary"], compiled["description"], compiled["alertTargetInstance"]
    )


def compile_rules(raw: Any, *, where: str = "alertRules") -> list[CompiledRule]:
    """Decode and validate a list of rules; every problem of every rule is reported at once."""
    if not isinstance(raw, list):
        raise ValidationError.single(where, f"got {type(raw).__name__}", "a list of alert rules")
    problems: list[Problem] = []
    rules: list[CompiledRule] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        label = f"{where}[{index}]"
        name = item.get("name") if isinstance(item, dict) else None
        if isinstance(name, str) and name:
            label = f"{where}[{index}]({name})"
        try:
            rule = decode(item, AlertRule)
            rules.append(compile_rule(rule))
        except ValidationError as exc:
            problems.extend(exc.prefixed(label).problems)
            continue
        if rule.name in seen:
            problems.append(Problem(f"{label}.name", f"duplicate rule name {rule.name!r}", "unique rule names"))
        seen.add(rule.name)
    if problems:
        raise ValidationError(problems)
    return rules


def check_columns(rule: CompiledRule, columns: Sequence[str]) -> list[Problem]:
    """Problems when the templates name a column the rule's query does not return."""
    missing = rule.row_fields - set(columns)
    if not missing:
        return []
    return [
        Problem(
            rule.name,
            f"template uses {_dotted(missing)} but the query returns only {_dotted(columns) or 'no columns'}",
            "templates that name columns of the query's result",
        )
    ]


def _dotted(names: Iterable[str]) -> str:
    return ", ".join(f".{n}" for n in sorted(names))
