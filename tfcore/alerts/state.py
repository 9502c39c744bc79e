"""The firing/resolving state machine of one rule: pure, driven by query results and a clock.

Each result row is a hit for the instance it renders (alertTargetInstance, or the rule name).
An instance fires after `consecutiveCount` consecutive evaluations with a hit and resolves
(endsAt = now) at the first evaluation without one. A firing alert is re-sent every
`resend_interval` with endsAt pushed ahead, so AlertManager keeps it active while we do and
expires it on its own if we (or the leader) disappear; nothing is re-sent in between, so
there is no duplicate storm.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from tfcore.alerts.rules import CompiledRule

DEFAULT_JOB = "tensor-fusion"
DEFAULT_RESEND = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Alert:
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime
    firing: bool
    generator_url: str = ""
    validity: timedelta = timedelta(0)  # how far past "now" a firing alert's endsAt is pushed when sent

    def as_sent_at(self, now: datetime) -> Alert:
        """A firing alert whose send was delayed (an outage) must not arrive already expired."""
        if self.firing and self.ends_at < now + self.validity:
            return replace(self, ends_at=now + self.validity)
        return self

    @property
    def key(self) -> tuple[tuple[str, str], ...]:
        """AlertManager identifies an alert by its label set."""
        return tuple(sorted(self.labels.items()))


@dataclass(slots=True)
class _Instance:
    hits: int = 0
    firing_since: datetime | None = None
    last_sent: datetime | None = None
    last_alert: Alert | None = None


@dataclass(slots=True)
class RuleState:
    rule: CompiledRule
    job: str = DEFAULT_JOB
    resend_interval: timedelta = DEFAULT_RESEND
    generator_url: str = ""
    instances: dict[str, _Instance] = field(default_factory=dict)

    @property
    def validity(self) -> timedelta:
        """How long AlertManager should keep a firing alert without hearing from us again."""
        return 4 * max(self.rule.interval, self.resend_interval)

    def firing(self) -> list[Alert]:
        return [i.last_alert for i in self.instances.values() if i.firing_since and i.last_alert]

    def observe(self, rows: Sequence[Mapping[str, Any]], now: datetime) -> list[Alert]:
        """Feed one evaluation's rows; return the alerts to send now (new, due for resend, resolved)."""
        rule = self.rule
        hits: dict[str, Mapping[str, Any]] = {}
        for row in rows:
            row_values = {**row, "Threshold": rule.rule.threshold}
            instance = rule.instance.render(row_values, where=f"{rule.name}.alertTargetInstance") or rule.name
            hits.setdefault(instance, row_values)
        out: list[Alert] = []
        for instance, values in hits.items():
            state = self.instances.setdefault(instance, _Instance())
            state.hits += 1
            if state.hits < rule.rule.consecutive_count:
                continue
            newly = state.firing_since is None
            if newly:
                state.firing_since = now
            alert = self._alert(instance, values, state.firing_since or now, now + self.validity, firing=True)
            changed = state.last_alert is None or alert.annotations != state.last_alert.annotations
            if newly or changed or state.last_sent is None or now - state.last_sent >= self.resend_interval:
                out.append(alert)
                state.last_sent = now
            state.last_alert = alert
        for instance in [i for i in self.instances if i not in hits]:
            state = self.instances.pop(instance)
            if state.firing_since is not None and state.last_alert is not None:
                last = state.last_alert
                out.append(Alert(last.labels, last.annotations, last.starts_at, now, False, last.generator_url))
        return out

    def _alert(
        self, instance: str, values: Mapping[str, Any], starts: datetime, ends: datetime, *, firing: bool
    ) -> Alert:
        rule = self.rule
        labels = {"alertname": rule.name, "severity": rule.rule.severity, "instance": instance, "job": self.job}
        annotations = {
            "summary": rule.summary.render(values, where=f"{rule.name}.summary"),
            "description": rule.description.render(values, where=f"{rule.name}.description"),
        }
        if rule.rule.runbook_url:
            annotations["runbook_url"] = rule.rule.runbook_url
        return Alert(labels, annotations, starts, ends, firing, self.generator_url, self.validity)
