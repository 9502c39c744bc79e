"""GreptimeDB metrics store over its HTTP API (the production backend).

Writes: InfluxDB line protocol to /v1/influxdb/write?db=..&precision=ms. Queries: form field
`sql` to /v1/sql?db=.., answered as {"output": [{"records": {"schema": {"column_schemas":
[...]}, "rows": [...]}}]} or {"code": N, "error": "..."}. Basic auth when a user is set;
https for Greptime Cloud (isCloud). Tables are created up front with `ts` as time index and
the TTL as a table option, so the SQL of the rules is the same as on the embedded store.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from tfcore.alerts.duration import format_duration
from tfcore.config import env as environment
from tfcore.metrics.lineproto import Point, encode_lines
from tfcore.metrics.readonly_sql import single_select
from tfcore.metrics.store import GREPTIME, Dialect, QueryFailed, QueryResult, Rejected, StoreUnavailable, WriteResult
from tfcore.metrics.tables import TABLES, TIME_COLUMN, FieldType, Table
from tfcore.model.errors import ValidationError

log = logging.getLogger(__name__)
_SQL_TYPE: dict[FieldType, str] = {"float": "DOUBLE", "int": "BIGINT", "bool": "BOOLEAN", "string": "STRING"}


@dataclass(frozen=True, slots=True)
class GreptimeSettings:
    """The chart's greptime.* values."""

    host: str
    port: int = 4000
    user: str = ""
    password: str = field(default="", repr=False)  # never in logs or reprs
    db: str = "public"
    is_cloud: bool = False
    timeout: float = 10.0

    @property
    def base_url(self) -> str:
        scheme = "https" if self.is_cloud else "http"
        return f"{scheme}://{self.host}:{self.port}"


def create_table_sql(table: Table, ttl: timedelta) -> str:
    columns = [f'"{TIME_COLUMN}" TIMESTAMP(3) NOT NULL']
    columns += [f'"{tag}" STRING NULL' for tag in table.tags]
    columns += [f'"{name}" {_SQL_TYPE[kind]} NULL' for name, kind in table.fields.items()]
    columns.append(f'TIME INDEX ("{TIME_COLUMN}")')
    columns.append("PRIMARY KEY (" + ", ".join(f'"{t}"' for t in table.tags) + ")")
    return (
        f'CREATE TABLE IF NOT EXISTS "{table.name}" (\n  '
        + ",\n  ".join(columns)
        + f"\n) WITH (ttl = '{format_duration(ttl)}')"
    )


class GreptimeStore:
    def __init__(
        self,
        settings: GreptimeSettings,
        *,
        ttl: timedelta = timedelta(days=30),
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.settings = settings
        self._session = session
        self._owns_session = session is None
        self._ttl = ttl
        self._applied_ttl: timedelta | None = None
        self._tables_ready = False
        self._headers: dict[str, str] = {}
        if settings.user:
            token = base64.b64encode(f"{settings.user}:{settings.password}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"

    @property
    def dialect(self) -> Dialect:
        return GREPTIME

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.settings.timeout))
        return self._session

    async def ensure_tables(self) -> None:
        for table in TABLES.values():
            await self._sql(create_table_sql(table, self._ttl))
        self._tables_ready = True
        self._applied_ttl = self._ttl

    async def write(self, points: Sequence[Point]) -> WriteResult:
        if not self._tables_ready:
            try:
                await self.ensure_tables()
            except QueryFailed as exc:
                raise StoreUnavailable(f"creating the metrics tables failed: {exc}") from exc
        accepted: list[Point] = []
        rejected: list[Rejected] = []
        lines: list[str] = []
        for point in points:
            try:
                lines.append(encode_lines([point], "ms"))
                accepted.append(point)
            except ValidationError as exc:
                rejected.append(Rejected(point, str(exc)))
        if not accepted:
            return WriteResult(0, rejected)
        params = {"db": self.settings.db, "precision": "ms"}
        status, text = await self._post("/v1/influxdb/write", params=params, data="".join(lines).encode())
        if status in (200, 204):
            return WriteResult(len(accepted), rejected)
        if status == 400:  # the server refused the batch's content: retrying cannot help
            reason = f"GreptimeDB refused the batch: {text[:300]}"
            return WriteResult(0, rejected + [Rejected(p, reason) for p in accepted])
        raise StoreUnavailable(f"GreptimeDB write answered HTTP {status}: {text[:300]}")

    async def query(self, sql: str) -> QueryResult:
        """One SELECT only: the same gate as the embedded store (readonly_sql)."""
        return await self._sql(single_select(sql))

    async def columns(self, sql: str) -> list[str]:
        result = await self._sql(f"SELECT * FROM (\n{single_select(sql)}\n) AS tf_probe LIMIT 0")
        return result.columns

    async def apply_ttl(self, ttl: timedelta, now: datetime) -> None:
        self._ttl = ttl
        if not self._tables_ready:
            await self.ensure_tables()
            return
        if self._applied_ttl == ttl:
            return
        for name in TABLES:
            await self._sql(f"ALTER TABLE \"{name}\" SET 'ttl' = '{format_duration(ttl)}'")
        self._applied_ttl = ttl

    async def close(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()
        self._session = None

    async def _post(self, path: str, *, params: dict[str, str], data: Any) -> tuple[int, str]:
        url = self.settings.base_url + path
        try:
            async with self._client().post(url, params=params, data=data, headers=self._headers) as response:
                return response.status, await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise StoreUnavailable(f"GreptimeDB at {self.settings.base_url} unreachable: {exc!r}") from exc

    async def _sql(self, sql: str) -> QueryResult:
        status, text = await self._post("/v1/sql", params={"db": self.settings.db}, data={"sql": sql})
        body = _json(text)
        if status == 200 and isinstance(body, dict) and "output" in body:
            return _records(body)
        message = body.get("error", text[:300]) if isinstance(body, dict) else text[:300]
        if status in (400, 404) or (isinstance(body, dict) and "code" in body and status < 500 and status != 401):
            raise QueryFailed(f"GreptimeDB: {message}")
        raise StoreUnavailable(f"GreptimeDB SQL answered HTTP {status}: {message}")


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _records(body: dict[str, Any]) -> QueryResult:
    outputs = body.get("output") or []
    for output in outputs:
        records = output.get("records") if isinstance(output, dict) else None
        if records is None:
            continue
        schemas = records.get("schema", {}).get("column_schemas", [])
        columns = [c["name"] for c in schemas]
        kinds = [str(c.get("data_type", "")) for c in schemas]
        rows = [tuple(_value(v, k) for v, k in zip(row, kinds, strict=False)) for row in records.get("rows", [])]
        return QueryResult(columns, rows)
    return QueryResult([], [])  # DDL answers {"output": [{"affectedrows": N}]}


_TIME_UNITS = {"Second": 1, "Millisecond": 1_000, "Microsecond": 1_000_000, "Nanosecond": 1_000_000_000}


def _value(value: Any, kind: str) -> Any:
    """Timestamps come back as integers in the column's unit; hand out aware datetimes."""
    if isinstance(value, int) and kind.startswith("Timestamp"):
        per_second = _TIME_UNITS.get(kind.removeprefix("Timestamp"), 1_000)
        return datetime.fromtimestamp(value / per_second, UTC)
    return value


def greptime_from_env(env: Mapping[str, str]) -> GreptimeSettings | None:
    """The chart's TF_GREPTIME_* variables; None without TF_GREPTIME_HOST (use the embedded store)."""
    host = environment.GREPTIME_HOST.read(env).strip()
    if not host:
        return None
    return GreptimeSettings(
        host=host,
        port=environment.GREPTIME_PORT.read(env),
        user=environment.GREPTIME_USER.read(env),
        password=environment.GREPTIME_PASSWORD.read(env),
        db=environment.GREPTIME_DB.read(env).strip(),
        is_cloud=environment.GREPTIME_IS_CLOUD.read(env),
    )
