"""Alert-rule SQL cannot write files, drop tables or read files, on either metrics store.

Each escape is tried the way an operator's rule reaches the store: through the rule check
(`columns`, which wraps the query in a subquery) and the evaluation (`query`), on the
embedded DuckDB store and on GreptimeDB (its contract fake runs SQL on an unrestricted DuckDB,
so only the shared gate stands between a rule and the files).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.metrics.test_greptime_store import FakeGreptime
from tests.unit.metrics.test_greptime_store import settings as greptime_settings
from tfcore.alerts.evaluator import AlertEvaluator
from tfcore.alerts.rules import AlertRule, compile_rule
from tfcore.metrics.embedded import DuckDBStore
from tfcore.metrics.lineproto import Point
from tfcore.metrics.readonly_sql import single_select
from tfcore.metrics.store import QueryFailed
from tfcore.web.greptime import GreptimeStore

NOW = datetime(2026, 1, 1, tzinfo=UTC)
Store = DuckDBStore | GreptimeStore


@pytest.fixture(params=["duckdb", "greptime"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "duckdb":
        embedded = await DuckDBStore(tmp_path / "m.duckdb").open()
        await embedded.write([Point("tf_gpu_usage", {"node": "n1"}, {"temperature": 95.0}, 0)])
        yield embedded
        await embedded.close()
        return
    fake = FakeGreptime()
    runner = web.AppRunner(fake.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    remote = GreptimeStore(greptime_settings(runner.addresses[0][1]))
    await remote.write([Point("tf_gpu_usage", {"node": "n1"}, {"temperature": 95.0}, 0)])
    yield remote
    await remote.close()
    await runner.cleanup()
    fake.db.close()


def escapes(tmp_path: Path) -> dict[str, str]:
    """Each way out, as a rule's query; `secret` stands for the service-account token."""
    written = tmp_path / "written.csv"
    secret = tmp_path / "secret"
    reopen = "SELECT * FROM (SELECT 1 AS x"
    return {
        "copy_closing_the_subquery": f"SELECT 1 AS x) AS y; COPY (SELECT 42) TO '{written}'; {reopen}",
        "drop_closing_the_subquery": f"SELECT 1 AS x) AS y; DROP TABLE tf_gpu_usage; {reopen}",
        "copy_statement": f"COPY (SELECT 42) TO '{written}'",
        "two_statements": f"SELECT 1; COPY (SELECT 42) TO '{written}'",
        "read_csv": f"SELECT column0 AS leaked FROM read_csv('{secret}', header = false)",
        "read_text": f"SELECT content AS leaked FROM read_text('{secret}')",
        "read_text_in_a_subquery": (
            f"SELECT node FROM tf_gpu_usage WHERE node IN (SELECT content FROM read_text('{secret}'))"
        ),
        "file_path_as_table": f"SELECT * FROM '{secret}'",
    }


ESCAPES = list(escapes(Path("/x")))


async def _check_then_evaluate(store: Store, query: str) -> list[str]:
    """What the controller does with a rule: check it, and evaluate it if accepted."""
    rule = compile_rule(AlertRule(name="R", query=query, severity="P1", summary="{{ .leaked }}"))
    published: list[str] = []
    evaluator = AlertEvaluator(store, lambda alerts: published.extend(str(a.annotations) for a in alerts), lambda: True)
    problems = await evaluator.set_rules([rule])
    if not problems:
        await evaluator.evaluate("R")
    return [str(p) for p in problems]


@pytest.mark.parametrize("escape", ESCAPES)
async def test_escape_is_refused_and_has_no_effect(store: Store, tmp_path: Path, escape: str) -> None:
    (tmp_path / "secret").write_text("service-account-token\n")
    query = escapes(tmp_path)[escape]
    problems = await _check_then_evaluate(store, query)
    assert problems, f"{escape} was accepted"
    assert problems[0].startswith("R.query: ")
    with pytest.raises(QueryFailed):
        await store.query(query)
    assert not (tmp_path / "written.csv").exists()
    assert (await store.query("SELECT count(*) AS n FROM tf_gpu_usage")).rows == [(1,)]


@pytest.mark.parametrize(
    "query",
    [
        "SELECT node, max(temperature) AS t FROM tf_gpu_usage WHERE ts > TIMESTAMP '2026-01-01' GROUP BY node",
        "WITH hot AS (SELECT node FROM tf_gpu_usage) SELECT node FROM hot",
        "SELECT 1 AS a UNION ALL SELECT 2",
        "SELECT a.node FROM tf_gpu_usage AS a JOIN main.tf_gpu_usage AS b ON a.node = b.node;",
        "SELECT node FROM tf_gpu_usage -- trailing comment",
    ],
)
def test_ordinary_rule_queries_pass_the_gate(query: str) -> None:
    assert single_select(query) == query.strip().rstrip(";").strip()


async def test_a_trailing_comment_does_not_break_the_column_check(tmp_path: Path) -> None:
    store = await DuckDBStore(tmp_path / "m.duckdb").open()
    try:
        assert await store.columns("SELECT node FROM tf_gpu_usage -- the hot ones") == ["node"]
    finally:
        await store.close()


@given(st.text(max_size=200))
@settings(max_examples=200, deadline=None)
def test_the_gate_answers_any_text_with_a_select_or_query_failed(text: str) -> None:
    try:
        accepted = single_select(text)
    except QueryFailed as exc:
        message = str(exc)
    else:
        message = accepted
    assert message
