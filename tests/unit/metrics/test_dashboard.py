"""The Grafana dashboard shipped with the chart reads only tables and columns that exist."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tfcore.metrics.tables import TABLES

DASHBOARDS = sorted((Path(__file__).resolve().parents[3] / "charts/tensor-fusion/dashboards").glob("*.json"))
IDENT = re.compile(r"\b([a-z_][a-z0-9_]*)\b")
SQL_WORDS = {
    "select",
    "from",
    "where",
    "and",
    "group",
    "by",
    "order",
    "as",
    "in",
    "avg",
    "max",
    "sum",
    "min",
    "distinct",
    "value",
    "metric",
}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_panel_query_names_known_columns(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    queries = [t["rawSql"] for p in dashboard["panels"] for t in p["targets"]]
    queries += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    assert len(queries) >= 10
    for sql in queries:
        table = re.search(r"FROM (\w+)", sql)
        assert table, sql
        assert table[1] in TABLES, sql
        stripped = re.sub(r"\$\w+(\([^)]*\))?", "", sql)
        names = {n for n in IDENT.findall(stripped) if n not in SQL_WORDS and not n.isdigit()}
        unknown = names - set(TABLES[table[1]].columns) - {table[1]}
        assert not unknown, f"{sql}: {unknown}"
