"""`tensor-fusion metrics write` and `tensor-fusion alerts test` through the real CLI parser."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml

from daemons.cli import main

RULES = """
alertRules:
  - name: Hot
    query: >-
      SELECT node, max(temperature) AS t FROM tf_gpu_usage WHERE {{ .Conditions }}
      GROUP BY node HAVING max(temperature) > {{ .Threshold }}
    threshold: 90
    evaluationInterval: 1m
    consecutiveCount: 3
    severity: P1
    summary: "{{ .node }} is hot"
    alertTargetInstance: "{{ .node }}"
"""


def run(monkeypatch: pytest.MonkeyPatch, argv: list[str], stdin: str = "") -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(argv)


def test_write_then_test_shows_what_would_fire(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tmp_path / "m.duckdb")
    lines = "tf_gpu_usage,node=n1 temperature=95 1767225590\ntf_gpu_usage,node=n2 temperature=50 1767225590\n"
    assert run(monkeypatch, ["metrics", "write", "--store", store, "--precision", "s"], lines) == 0
    assert "wrote 2 point(s)" in capsys.readouterr().out
    config = tmp_path / "config.yaml"
    config.write_text(RULES)
    assert (
        run(monkeypatch, ["alerts", "test", "--config", str(config), "--store", store, "--at", "2026-01-01T00:00:00Z"])
        == 0
    )
    out = capsys.readouterr().out
    assert "ok    Hot: 1 alert(s) would fire after 3 consecutive hits" in out
    assert 'FIRING {alertname="Hot", severity="P1", instance="n1", job="tensor-fusion"}' in out
    assert "summary: n1 is hot" in out
    assert "ok    WatchDog: 1 alert(s) would fire now" in out


def test_bad_input_writes_nothing_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tmp_path / "m.duckdb")
    assert run(monkeypatch, ["metrics", "write", "--store", store], "tf_gpu_usage temperature=1\nbroken\n") == 1
    err = capsys.readouterr().err
    assert "stdin:2 col 7" in err
    assert "nothing written" in err


def test_invalid_rule_exits_1_naming_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(RULES.replace("1m", "-1m"))
    assert run(monkeypatch, ["alerts", "test", "--config", str(config), "--store", str(tmp_path / "m.duckdb")]) == 1
    assert "alertRules[0](Hot).evaluationInterval" in capsys.readouterr().err


def test_rule_with_failing_sql_exits_1_and_others_still_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(RULES.replace("max(temperature) AS t", "max(nope) AS t"))
    assert run(monkeypatch, ["alerts", "test", "--config", str(config), "--store", str(tmp_path / "m.duckdb")]) == 1
    out = capsys.readouterr().out
    assert "FAIL  Hot:" in out
    assert "ok    WatchDog" in out


def test_a_rule_closing_its_subquery_cannot_write_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    written = tmp_path / "written.csv"
    query = f"SELECT 1 AS x) AS y; COPY (SELECT 42) TO '{written}'; SELECT * FROM (SELECT 1 AS x"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"alertRules": [{"name": "Sneaky", "severity": "P1", "query": query}]}))
    assert run(monkeypatch, ["alerts", "test", "--config", str(config), "--store", str(tmp_path / "m.duckdb")]) == 1
    assert "FAIL  Sneaky:" in capsys.readouterr().out
    assert not written.exists()
