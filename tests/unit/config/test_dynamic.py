"""The dynamic config (ConfigMap tensor-fusion-sys-config, config.yaml)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.unit.alerts.test_rules import SPEC_EXAMPLE
from tfcore.config.dynamic import parse_dynamic_config
from tfcore.model.errors import ValidationError


def test_defaults_are_30d_influx_and_the_builtin_rules() -> None:
    config = parse_dynamic_config("")
    assert config.metrics_ttl == timedelta(days=30)
    assert config.metrics_format == "influx"
    assert config.uses_builtin_rules
    assert len(config.alert_rules) >= 15


def test_the_specs_values_block_parses_as_written() -> None:
    config = parse_dynamic_config(SPEC_EXAMPLE)
    assert [r.name for r in config.alert_rules] == ["WatchDog", "My Special Alert"]
    assert not config.uses_builtin_rules


def test_plain_config_yaml_form() -> None:
    config = parse_dynamic_config("metricsTTL: 7d\nmetricsFormat: json\nalertRules: []\n")
    assert (config.metrics_ttl, config.metrics_format) == (timedelta(days=7), "json")
    assert [r.name for r in config.alert_rules] == ["WatchDog"]


def test_every_problem_is_reported_with_its_path() -> None:
    text = "metricsTTL: forever\nmetricsFormat: xml\nalertRules:\n  - name: A\n    query: SELECT 1\n    severity: ''\n"
    with pytest.raises(ValidationError) as err:
        parse_dynamic_config(text)
    fields = [p.field for p in err.value.problems]
    assert fields == ["config.yaml.metricsTTL", "config.yaml.metricsFormat", "config.yaml.alertRules[0](A).severity"]


@pytest.mark.parametrize("text", ["metricsTTL: [", "unknownKey: 1", "- a list"])
def test_malformed_documents_are_rejected(text: str) -> None:
    with pytest.raises(ValidationError):
        parse_dynamic_config(text)
