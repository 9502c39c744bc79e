"""The one interface both metrics stores implement, and the SQL dialect each one speaks.

A store writes points and answers SQL. Rules never see which store they run on: the only
dialect-specific SQL they contain is `{{ .Conditions }}`, rendered by the store's Dialect.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from tfcore.metrics.lineproto import Point
from tfcore.metrics.tables import TIME_COLUMN


class StoreUnavailable(Exception):
    """The store cannot be reached or is failing now; the caller should retry later."""


class QueryFailed(Exception):
    """The store is up but rejected the SQL (syntax, unknown table or column, type error)."""


@dataclass(frozen=True, slots=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


@dataclass(frozen=True, slots=True)
class Rejected:
    point: Point
    reason: str


@dataclass(frozen=True, slots=True)
class WriteResult:
    """Points the store accepted, and points it refused for good (retrying cannot help them)."""

    written: int
    rejected: list[Rejected] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Dialect:
    """How a store spells the time filter that `{{ .Conditions }}` expands to."""

    name: str
    timestamp_literal: str  # format string with {iso}: the store's literal for a UTC instant

    def time_filter(self, start: datetime, end: datetime) -> str:
        """Rows with start <= ts < end, both instants in UTC."""
        return f"{TIME_COLUMN} >= {self.literal(start)} AND {TIME_COLUMN} < {self.literal(end)}"

    def literal(self, instant: datetime) -> str:
        utc = instant.astimezone(UTC) if instant.tzinfo else instant.replace(tzinfo=UTC)
        return self.timestamp_literal.format(iso=utc.strftime("%Y-%m-%d %H:%M:%S.%f"))


# DuckDB stores ts as TIMESTAMP holding UTC; GreptimeDB compares a TIMESTAMP column with an
# RFC 3339 string, which we give with an explicit UTC offset so the session time zone is moot.
DUCKDB = Dialect("duckdb", "TIMESTAMP '{iso}'")
GREPTIME = Dialect("greptime", "'{iso}+00:00'")


class MetricsStore(Protocol):
    """Both backends. Every method is async and never blocks the event loop."""

    @property
    def dialect(self) -> Dialect: ...

    async def write(self, points: Sequence[Point]) -> WriteResult:
        """Raise StoreUnavailable when the store cannot take the batch now."""
        ...

    async def query(self, sql: str) -> QueryResult:
        """Raise QueryFailed for bad SQL, StoreUnavailable when the store is down."""
        ...

    async def columns(self, sql: str) -> list[str]:
        """The columns `sql` returns, without reading data (validates the SQL too)."""
        ...

    async def apply_ttl(self, ttl: timedelta, now: datetime) -> None:
        """Make rows older than `ttl` go away (delete, or set the store's own TTL)."""
        ...

    async def close(self) -> None: ...
