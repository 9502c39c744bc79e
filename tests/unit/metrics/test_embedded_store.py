"""The DuckDB store, for real: schema, types, conflicts, queries, TTL, files across reopen."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tfcore.metrics.embedded import DuckDBStore
from tfcore.metrics.lineproto import Point
from tfcore.metrics.store import QueryFailed, StoreUnavailable
from tfcore.metrics.tables import TABLES

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def ns(instant: datetime) -> int:
    return int(instant.timestamp()) * 10**9


async def test_all_tables_exist_with_their_columns(tmp_path: Path) -> None:
    store = await DuckDBStore(tmp_path / "m.duckdb").open()
    try:
        for table in TABLES.values():
            assert await store.columns(f"SELECT * FROM {table.name}") == list(table.columns)
    finally:
        await store.close()


async def test_points_are_stored_and_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "m.duckdb"
    store = await DuckDBStore(path).open()
    result = await store.write(
        [Point("tf_gpu_usage", {"node": "n1", "uuid": "g1"}, {"temperature": 91.5, "worker_count": 2}, ns(T0))]
    )
    assert (result.written, result.rejected) == (1, [])
    await store.close()
    store = await DuckDBStore(path).open()
    try:
        rows = (await store.query("SELECT ts, node, uuid, temperature, worker_count FROM tf_gpu_usage")).records()
        assert rows == [{"ts": T0, "node": "n1", "uuid": "g1", "temperature": 91.5, "worker_count": 2}]
    finally:
        await store.close()


async def test_new_measurements_and_fields_extend_the_schema() -> None:
    store = await DuckDBStore(":memory:").open()
    try:
        await store.write([Point("custom", {"a": "x"}, {"v": 1}, ns(T0))])
        await store.write([Point("custom", {"a": "y", "b": "z"}, {"v": 2, "w": "text"}, ns(T0))])
        rows = (await store.query("SELECT a, b, v, w FROM custom ORDER BY v")).rows
        assert rows == [("x", None, 1, None), ("y", "z", 2, "text")]
    finally:
        await store.close()


async def test_type_conflicts_reject_only_the_offending_point() -> None:
    store = await DuckDBStore(":memory:").open()
    try:
        result = await store.write(
            [
                Point("tf_gpu_usage", {"node": "n1"}, {"temperature": "hot"}, ns(T0)),
                Point("tf_gpu_usage", {"node": "n1"}, {"temperature": 50}, ns(T0)),  # int widens into DOUBLE
                Point("tf_gpu_usage", {"ts": "x"}, {"temperature": 1.0}, ns(T0)),
            ]
        )
        assert result.written == 1
        reasons = [r.reason for r in result.rejected]
        assert "str value into DOUBLE column tf_gpu_usage.temperature" in reasons[1]
        assert "time column" in reasons[0]
    finally:
        await store.close()


async def test_points_without_time_get_the_store_clock() -> None:
    store = await DuckDBStore(":memory:", clock=lambda: T0).open()
    try:
        await store.write([Point("tf_system_metrics", {"pool": "p"}, {"allocation_fail_cnt": 1})])
        assert (await store.query("SELECT ts FROM tf_system_metrics")).rows == [(T0,)]
    finally:
        await store.close()


async def test_bad_sql_is_query_failed_and_closed_store_is_unavailable() -> None:
    store = await DuckDBStore(":memory:").open()
    with pytest.raises(QueryFailed, match="no_such_table"):
        await store.query("SELECT * FROM no_such_table")
    with pytest.raises(QueryFailed):
        await store.columns("SELECT nope FROM tf_gpu_usage")
    await store.close()
    fresh = DuckDBStore(":memory:")
    with pytest.raises(StoreUnavailable):
        fresh.write_sync([Point("m", {}, {"v": 1})])


async def test_ttl_deletes_only_older_rows() -> None:
    store = await DuckDBStore(":memory:").open()
    try:
        old, new = T0 - timedelta(days=31), T0 - timedelta(days=1)
        await store.write([Point("tf_pool_metrics", {"pool": "p"}, {"gpu_count": 1}, ns(t)) for t in (old, new)])
        await store.apply_ttl(timedelta(days=30), T0)
        assert (await store.query("SELECT ts FROM tf_pool_metrics")).rows == [(new,)]
    finally:
        await store.close()


async def test_conditions_filter_selects_the_window_exactly() -> None:
    store = await DuckDBStore(":memory:").open()
    try:
        times = [T0 - timedelta(seconds=s) for s in (0, 5, 15, 16)]
        await store.write([Point("tf_gpu_usage", {"node": "n"}, {"temperature": 1.0}, ns(t)) for t in times])
        where = store.dialect.time_filter(T0 - timedelta(seconds=15), T0)
        rows = (await store.query(f"SELECT ts FROM tf_gpu_usage WHERE {where} ORDER BY ts")).rows
        assert rows == [(T0 - timedelta(seconds=15),), (T0 - timedelta(seconds=5),)]
    finally:
        await store.close()


async def test_open_fails_cleanly_when_the_path_is_unusable(tmp_path: Path) -> None:
    (tmp_path / "dir.duckdb").mkdir()
    store = DuckDBStore(tmp_path / "dir.duckdb")
    with pytest.raises(StoreUnavailable, match="cannot open"):
        await store.open()
    await store.close()
