"""The dynamic config: ConfigMap tensor-fusion-sys-config, key config.yaml, reloaded live.

It holds what the chart's `dynamicConfig:` values hold (metricsTTL, metricsFormat,
alertRules, metricsExtraPodLabels). A document may also be a whole Helm values file: then
its `dynamicConfig:` section is used and the rest ignored, so the spec's
values-production.yaml can be checked with `tensor-fusion alerts test --config` as written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import msgspec

from tfcore.alerts.builtin import builtin_rules, with_watchdog
from tfcore.alerts.duration import parse_duration
from tfcore.alerts.rules import CompiledRule, compile_rules
from tfcore.metrics.formats import MetricsFormat, check_format
from tfcore.model.codec import decode, load_yaml
from tfcore.model.errors import Problem, ValidationError

CONFIGMAP_NAME = "tensor-fusion-sys-config"
CONFIG_KEY = "config.yaml"
DEFAULT_TTL = "30d"


class DynamicConfigDocument(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    metricsTTL: str = DEFAULT_TTL
    metricsFormat: str = "influx"
    alertRules: list[Any] | None = None
    metricsExtraPodLabels: dict[str, str] = {}


@dataclass(frozen=True, slots=True)
class DynamicConfig:
    metrics_ttl: timedelta
    metrics_format: MetricsFormat
    alert_rules: tuple[CompiledRule, ...]
    metrics_extra_pod_labels: dict[str, str]
    uses_builtin_rules: bool


def parse_dynamic_config(text: str | bytes, *, where: str = CONFIG_KEY) -> DynamicConfig:
    """Parse and validate a config.yaml; ValidationError lists every problem with its field path."""
    data = load_yaml(text, where=where)
    if data is None:
        data = {}
    if isinstance(data, dict) and "dynamicConfig" in data:
        data = data["dynamicConfig"] or {}
        where = f"{where}:dynamicConfig"
    document = decode(data, DynamicConfigDocument, where=where)
    problems: list[Problem] = []
    ttl = timedelta(0)
    fmt: MetricsFormat = "influx"
    try:
        ttl = parse_duration(document.metricsTTL, field=f"{where}.metricsTTL")
    except ValidationError as exc:
        problems.extend(exc.problems)
    try:
        fmt = check_format(document.metricsFormat)
    except ValidationError as exc:
        problems.extend(exc.prefixed(where).problems)
    rules: list[CompiledRule] = []
    try:
        rules = (
            builtin_rules()
            if document.alertRules is None
            else compile_rules(document.alertRules, where=f"{where}.alertRules")
        )
    except ValidationError as exc:
        problems.extend(exc.problems)
    if problems:
        raise ValidationError(problems)
    return DynamicConfig(
        metrics_ttl=ttl,
        metrics_format=fmt,
        alert_rules=tuple(with_watchdog(rules)),
        metrics_extra_pod_labels=dict(document.metricsExtraPodLabels),
        uses_builtin_rules=document.alertRules is None,
    )
