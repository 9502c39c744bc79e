"""The embedded metrics store: one DuckDB file, no server (the default for one node).

DuckDB calls block, so each connection lives on its own single worker thread: one for
writes, one for queries (a slow rule query never holds up writes, nor the event loop).
Batches insert column-wise with one statement per table (UNNEST of list parameters), which
is two orders of magnitude faster than one INSERT per point. New measurements and fields
create tables and columns, as GreptimeDB's line-protocol ingestion does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from tfcore.metrics.lineproto import FieldValue, Point
from tfcore.metrics.readonly_sql import single_select
from tfcore.metrics.store import DUCKDB, Dialect, QueryFailed, QueryResult, Rejected, StoreUnavailable, WriteResult
from tfcore.metrics.tables import TABLES, TIME_COLUMN, FieldType

log = logging.getLogger(__name__)
T = TypeVar("T")

_SQL_TYPE: dict[FieldType, str] = {"float": "DOUBLE", "int": "BIGINT", "bool": "BOOLEAN", "string": "VARCHAR"}
# Which stored column types accept a value of each Python type (int widens into DOUBLE).
_ACCEPTS: dict[type, frozenset[str]] = {
    bool: frozenset({"BOOLEAN"}),
    int: frozenset({"BIGINT", "DOUBLE"}),
    float: frozenset({"DOUBLE"}),
    str: frozenset({"VARCHAR"}),
}
_TYPE_OF_VALUE: dict[type, FieldType] = {bool: "bool", int: "int", float: "float", str: "string"}
_HARDENED: dict[str, Any] = {"enable_external_access": False, "lock_configuration": True}


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class DuckDBStore:
    """MetricsStore over a DuckDB file (or ":memory:" for tests)."""

    def __init__(self, path: str | Path, *, clock: Callable[[], datetime] | None = None) -> None:
        self.path = str(path)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tf-duckdb-write")
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tf-duckdb-query")
        self._con: duckdb.DuckDBPyConnection | None = None
        self._query_con: duckdb.DuckDBPyConnection | None = None
        self._schema: dict[str, dict[str, str]] = {}  # table -> column -> SQL type

    @property
    def dialect(self) -> Dialect:
        return DUCKDB

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> DuckDBStore:
        await self._on(self._writer, self._open_sync)
        return self

    def _open_sync(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            # Nothing here reads or writes files but the database itself; locked so that no
            # statement can turn file access back on.
            self._con = duckdb.connect(self.path, config=_HARDENED)
        except duckdb.Error as exc:
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from exc
        self._query_con = self._con.cursor()
        for table in TABLES.values():
            columns = [f"{quote_identifier(TIME_COLUMN)} TIMESTAMP NOT NULL"]
            columns += [f"{quote_identifier(tag)} VARCHAR" for tag in table.tags]
            columns += [f"{quote_identifier(name)} {_SQL_TYPE[kind]}" for name, kind in table.fields.items()]
            self._con.execute(f"CREATE TABLE IF NOT EXISTS {quote_identifier(table.name)} ({', '.join(columns)})")
        self._load_schema()

    def _load_schema(self) -> None:
        assert self._con is not None
        rows = self._con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'main'"
        ).fetchall()
        schema: dict[str, dict[str, str]] = defaultdict(dict)
        for table, column, data_type in rows:
            schema[table][column] = data_type
        self._schema = dict(schema)

    async def close(self) -> None:
        # Let in-flight queries finish first: DuckDB refuses to close a connection that another
        # thread is using ("connection is busy"), and a query must never see it vanish.
        await asyncio.get_running_loop().run_in_executor(None, self._reader.shutdown, True)
        if self._con is not None:
            await self._on(self._writer, self._close_sync)
        self._writer.shutdown(wait=True)

    def _close_sync(self) -> None:
        if self._query_con is not None:
            self._query_con.close()
        if self._con is not None:
            self._con.close()
        self._con = self._query_con = None

    async def _on(self, executor: ThreadPoolExecutor, func: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(executor, func)

    # -- writes ------------------------------------------------------------------------------

    async def write(self, points: Sequence[Point]) -> WriteResult:
        return await self._on(self._writer, lambda: self.write_sync(points))

    def write_sync(self, points: Sequence[Point]) -> WriteResult:
        """The blocking write, for the writer thread and for one-shot tools."""
        if self._con is None:
            raise StoreUnavailable("store is not open")
        now_us = _to_us(self._clock())
        by_table: dict[str, list[Point]] = defaultdict(list)
        rejected: list[Rejected] = []
        for point in points:
            reason = _structural_problem(point)
            if reason:
                rejected.append(Rejected(point, reason))
            else:
                by_table[point.measurement].append(point)
        written = 0
        try:
            self._con.execute("BEGIN TRANSACTION")
            for table, table_points in by_table.items():
                accepted = self._fit_schema(table, table_points, rejected)
                if accepted:
                    self._insert(table, accepted, now_us)
                    written += len(accepted)
            self._con.execute("COMMIT")
        except duckdb.Error as exc:
            self._rollback()
            self._load_schema()
            raise StoreUnavailable(f"write to {self.path} failed: {exc}") from exc
        return WriteResult(written, rejected)

    def _rollback(self) -> None:
        assert self._con is not None
        with contextlib.suppress(duckdb.Error):  # no transaction was open
            self._con.execute("ROLLBACK")

    def _fit_schema(self, table: str, points: list[Point], rejected: list[Rejected]) -> list[Point]:
        """Create the table and columns these points need; drop points whose types conflict."""
        assert self._con is not None
        columns = self._schema.get(table)
        if columns is None:
            self._con.execute(
                f"CREATE TABLE {quote_identifier(table)} ({quote_identifier(TIME_COLUMN)} TIMESTAMP NOT NULL)"
            )
            columns = self._schema[table] = {TIME_COLUMN: "TIMESTAMP"}
        accepted: list[Point] = []
        for point in points:
            conflict = None
            for key in point.tags:
                stored = columns.get(key)
                if stored is not None and stored != "VARCHAR":
                    conflict = f"tag {key!r}: column {table}.{key} is {stored}, not a tag"
            for key, value in point.fields.items():
                stored = columns.get(key)
                if stored is not None and stored not in _ACCEPTS[type(value)]:
                    conflict = f"field {key!r}: {type(value).__name__} value into {stored} column {table}.{key}"
            if conflict:
                rejected.append(Rejected(point, conflict))
                continue
            for key in point.tags:
                self._add_column(table, columns, key, "VARCHAR")
            for key, value in point.fields.items():
                self._add_column(table, columns, key, _SQL_TYPE[_TYPE_OF_VALUE[type(value)]])
            accepted.append(point)
        return accepted

    def _add_column(self, table: str, columns: dict[str, str], name: str, sql_type: str) -> None:
        if name not in columns:
            assert self._con is not None
            self._con.execute(f"ALTER TABLE {quote_identifier(table)} ADD COLUMN {quote_identifier(name)} {sql_type}")
            columns[name] = sql_type

    def _insert(self, table: str, points: list[Point], now_us: int) -> None:
        assert self._con is not None
        names: dict[str, None] = {}
        for point in points:
            names.update(dict.fromkeys(point.tags))
            names.update(dict.fromkeys(point.fields))
        values: dict[str, list[Any]] = {name: [] for name in names}
        times: list[int] = []
        for point in points:
            times.append(now_us if point.time_ns is None else point.time_ns // 1000)
            row: dict[str, FieldValue] = {**point.tags, **point.fields}
            for name, column in values.items():
                column.append(row.get(name))
        ordered = list(names)
        target = ", ".join(quote_identifier(n) for n in (TIME_COLUMN, *ordered))
        selects = ", ".join(
            ["make_timestamp(UNNEST($1::BIGINT[]))"]
            + [f"UNNEST(${i}::{self._schema[table][n]}[])" for i, n in enumerate(ordered, start=2)]
        )
        self._con.execute(
            f"INSERT INTO {quote_identifier(table)} ({target}) SELECT {selects}",
            [times, *(values[n] for n in ordered)],
        )

    # -- queries -----------------------------------------------------------------------------

    async def query(self, sql: str) -> QueryResult:
        return await self._on(self._reader, lambda: self.query_sync(sql))

    def query_sync(self, sql: str) -> QueryResult:
        """One SELECT (readonly_sql decides), run in a read-only transaction."""
        if self._query_con is None:
            raise StoreUnavailable("store is not open")
        sql = single_select(sql)
        try:
            self._query_con.execute("BEGIN TRANSACTION READ ONLY")
            try:
                cursor = self._query_con.execute(sql)
                columns = [d[0] for d in cursor.description or []]
                rows = cursor.fetchall()
            finally:
                with contextlib.suppress(duckdb.Error):  # a failed statement may have ended it
                    self._query_con.execute("ROLLBACK")
        except (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException) as exc:
            raise QueryFailed(str(exc).strip()) from exc
        except duckdb.ConversionException as exc:
            raise QueryFailed(str(exc).strip()) from exc
        except duckdb.Error as exc:
            raise StoreUnavailable(str(exc).strip()) from exc
        return QueryResult(columns, [tuple(_plain(v) for v in row) for row in rows])

    async def columns(self, sql: str) -> list[str]:
        # Newlines: a trailing line comment in the rule cannot swallow the closing parenthesis.
        result = await self.query(f"SELECT * FROM (\n{single_select(sql)}\n) AS tf_probe LIMIT 0")
        return result.columns

    async def apply_ttl(self, ttl: timedelta, now: datetime) -> None:
        cutoff = DUCKDB.literal(now - ttl)

        def delete() -> None:
            assert self._con is not None
            for table in list(self._schema):
                self._con.execute(f"DELETE FROM {quote_identifier(table)} WHERE {TIME_COLUMN} < {cutoff}")

        try:
            await self._on(self._writer, delete)
        except duckdb.Error as exc:
            raise StoreUnavailable(f"TTL delete failed: {exc}") from exc


def _structural_problem(point: Point) -> str | None:
    if TIME_COLUMN in point.tags or TIME_COLUMN in point.fields:
        return f"{TIME_COLUMN!r} is the time column and cannot be a tag or field"
    overlap = set(point.tags) & set(point.fields)
    if overlap:
        return f"{sorted(overlap)} used as both tag and field"
    if not point.fields:
        return "a point needs at least one field"
    return None


def _to_us(instant: datetime) -> int:
    utc = instant.astimezone(UTC) if instant.tzinfo else instant.replace(tzinfo=UTC)
    return int(utc.timestamp() * 1_000_000)


def _plain(value: Any) -> Any:
    """Query results as plain Python: naive TIMESTAMPs are UTC."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value
