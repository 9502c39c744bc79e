"""Rule templates, validation at load, and the spec's custom-alert example as written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from tfcore.alerts import template
from tfcore.alerts.builtin import builtin_rules, with_watchdog
from tfcore.alerts.duration import format_duration, parse_duration
from tfcore.alerts.rules import check_columns, compile_rules
from tfcore.metrics.store import DUCKDB, GREPTIME
from tfcore.model.errors import ValidationError

SPEC_EXAMPLE = """
dynamicConfig:
  metricsTTL: 30d
  metricsFormat: influx
  alertRules:
    # ... copy and modify built-in alert rules

    - name: My Special Alert
      query: |
        SELECT ...
        FROM tf_worker_usage
        WHERE {{ .Conditions }}
        GROUP BY ...
        HAVING ...
      threshold: 0
      evaluationInterval: 15s
      consecutiveCount: 3
      severity: P1
      summary: "My Special Alert"
      description: "Worker {{ .worker }} from Node {{ .node }} is ..."
      alertTargetInstance: "{{ .worker }}-{{ .uuid }}"
      runbookURL: "https://<your-own-runbook-url>"
"""
NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def rule(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "name": "R",
        "query": "SELECT worker FROM tf_worker_usage WHERE {{ .Conditions }} HAVING count(*) > {{ .Threshold }}",
        "severity": "P1",
        "evaluationInterval": "15s",
    }
    base.update(changes)
    return base


def test_spec_example_loads_with_every_field() -> None:
    raw = yaml.safe_load(SPEC_EXAMPLE)["dynamicConfig"]["alertRules"]
    (compiled,) = compile_rules(raw)
    r = compiled.rule
    assert (r.name, r.threshold, r.evaluation_interval, r.consecutive_count, r.severity) == (
        "My Special Alert",
        0.0,
        "15s",
        3,
        "P1",
    )
    assert r.runbook_url == "https://<your-own-runbook-url>"
    assert compiled.interval == timedelta(seconds=15)
    assert compiled.row_fields == {"worker", "node", "uuid"}
    sql = compiled.render_query(DUCKDB, NOW)
    assert "WHERE ts >= TIMESTAMP '2026-01-01 11:59:45.000000' AND ts < TIMESTAMP '2026-01-01 12:00:00.000000'" in sql


def test_conditions_speak_each_dialect() -> None:
    (compiled,) = compile_rules([rule()])
    assert "ts >= '2026-01-01 11:59:45.000000+00:00' AND ts < '2026-01-01 12:00:00.000000+00:00'" in (
        compiled.render_query(GREPTIME, NOW)
    )
    assert compiled.render_query(DUCKDB, NOW).endswith("HAVING count(*) > 0")


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"query": "SELECT {{ .worker }}"}, "query", "unknown field(s) .worker"),
        ({"query": "SELECT {{ .Conditions "}, "query", "unclosed"),
        ({"summary": '{{ printf "%s" .x }}'}, "summary", "only field lookups"),
        ({"description": "a }} b"}, "description", "without a matching"),
        ({"evaluationInterval": "0s"}, "evaluationInterval", "not positive"),
        ({"evaluationInterval": "soon"}, "evaluationInterval", "not a duration"),
        ({"consecutiveCount": 0}, "consecutiveCount", "below 1"),
        ({"severity": " "}, "severity", "must not be empty"),
        ({"runbookURL": "ftp://x"}, "runbookURL", "not a URL"),
        ({"threshold": "high"}, "threshold", "expected float"),
        ({"colour": "red"}, "colour", "unknown field"),
    ],
)
def test_bad_rules_are_rejected_naming_the_field(change: dict[str, object], field: str, message: str) -> None:
    with pytest.raises(ValidationError) as err:
        compile_rules([rule(), rule(name="Other", **change)])
    (problem,) = err.value.problems
    assert problem.field.startswith("alertRules[1](Other)")
    assert field in problem.field or field in problem.message
    assert message in str(problem)


def test_duplicate_names_and_non_list_are_rejected() -> None:
    with pytest.raises(ValidationError, match="duplicate rule name"):
        compile_rules([rule(), rule()])
    with pytest.raises(ValidationError, match="a list of alert rules"):
        compile_rules({"name": "R"})


def test_templates_render_fields_and_name_unknown_ones() -> None:
    t = template.parse("{{.worker}}-{{ .uuid }} at {{ .v }}%")
    assert t.render({"worker": "w", "uuid": "g", "v": 97.0}) == "w-g at 97%"
    with pytest.raises(ValidationError, match=r"unknown field \.uuid.*one of: v, worker"):
        t.render({"worker": "w", "v": 1})


@given(st.text(max_size=30))
def test_template_parser_never_crashes(source: str) -> None:
    try:
        parsed = template.parse(source)
    except ValidationError:
        return
    assert parsed.render(dict.fromkeys(parsed.fields, "x")).count("{{") == 0 or "{{" in source


def test_check_columns_reports_template_fields_the_query_does_not_return() -> None:
    (compiled,) = compile_rules([rule(summary="{{ .worker }} on {{ .node }}")])
    assert check_columns(compiled, ["worker", "node"]) == []
    (problem,) = check_columns(compiled, ["worker"])
    assert ".node" in problem.message


def test_durations() -> None:
    assert parse_duration("1m30s", field="f") == timedelta(seconds=90)
    assert parse_duration("500ms", field="f") == timedelta(milliseconds=500)
    assert format_duration(timedelta(days=30)) == "30d"
    assert format_duration(timedelta(seconds=90)) == "90s"


def test_builtin_rules_are_the_charts_file_and_include_watchdog() -> None:
    chart = Path(__file__).resolve().parents[3] / "charts/tensor-fusion/alert-rules.yaml"
    packaged = Path(__file__).resolve().parents[3] / "tfcore/alerts/builtin_rules.yaml"
    assert chart.read_text() == packaged.read_text(), "the chart's copy is stale: run `make generate`"
    names = [r["name"] for r in yaml.safe_load(chart.read_text())["alertRules"]]
    rules = builtin_rules()
    assert [r.name for r in rules] == names
    assert len(rules) >= 15
    assert rules[0].name == "WatchDog"
    custom = compile_rules([rule()])
    assert [r.name for r in with_watchdog(custom)] == ["WatchDog", "R"]
    own = compile_rules([rule(name="WatchDog")])
    assert with_watchdog(own) == own


def test_a_chosen_rules_file_replaces_the_packaged_one(tmp_path: Path) -> None:
    from tfcore.alerts.builtin import PACKAGED_PATH, builtin_rules_path, use_rules_file

    chosen = tmp_path / "rules.yaml"
    try:
        use_rules_file(str(chosen))
        assert builtin_rules_path() == chosen
    finally:
        use_rules_file(None)
    assert builtin_rules_path() == PACKAGED_PATH
