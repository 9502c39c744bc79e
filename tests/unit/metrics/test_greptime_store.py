"""The GreptimeDB backend against a contract fake of GreptimeDB's HTTP API.

The fake answers the routes and shapes GreptimeDB documents: POST /v1/influxdb/write?db=
&precision= (204), POST /v1/sql?db= with form field `sql` answering {"output": [{"records":
{"schema": {"column_schemas": [{"name", "data_type"}]}, "rows": [...]}}], "execution_time_ms"}
or {"code", "error"} with HTTP 400; Basic auth (401 otherwise). It is a stand-in, not
GreptimeDB: to answer SELECTs it runs them on DuckDB over the points it received.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import duckdb
import pytest
from aiohttp import web

from tfcore.metrics.lineproto import Point, decode_lines
from tfcore.metrics.store import QueryFailed, StoreUnavailable
from tfcore.metrics.tables import TABLES
from tfcore.web.greptime import GreptimeSettings, GreptimeStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)
AUTH = "Basic " + base64.b64encode(b"user:secret").decode()


@dataclass
class FakeGreptime:
    sql_seen: list[str] = field(default_factory=list)
    writes: list[tuple[dict[str, str], str]] = field(default_factory=list)
    down: bool = False
    db: duckdb.DuckDBPyConnection = field(default_factory=lambda: duckdb.connect(":memory:"))

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/influxdb/write", self.write)
        app.router.add_post("/v1/sql", self.sql)
        return app

    def check(self, request: web.Request) -> web.Response | None:
        if self.down:
            return web.json_response({"code": 1003, "error": "internal"}, status=503)
        if request.headers.get("Authorization") != AUTH:
            return web.json_response({"code": 7002, "error": "auth failed"}, status=401)
        if request.query.get("db") != "tfdb":
            return web.json_response({"code": 4001, "error": "database not found"}, status=400)
        return None

    async def write(self, request: web.Request) -> web.Response:
        refused = self.check(request)
        if refused:
            return refused
        body = await request.text()
        self.writes.append((dict(request.query), body))
        precision = request.query.get("precision", "ns")
        for point in decode_lines(body, precision):  # type: ignore[arg-type]
            table = TABLES[point.measurement]
            row = {**point.tags, **point.fields}
            cols = ["ts", *row]
            self.db.execute(
                f"INSERT INTO {table.name} ({', '.join(cols)}) VALUES (make_timestamp(?), {', '.join('?' * len(row))})",
                [(point.time_ns or 0) // 1000, *row.values()],
            )
        return web.Response(status=204)

    async def sql(self, request: web.Request) -> web.Response:
        refused = self.check(request)
        if refused:
            return refused
        sql = (await request.post())["sql"]
        assert isinstance(sql, str)
        self.sql_seen.append(sql)
        if sql.startswith(("CREATE TABLE", "ALTER TABLE")):
            if sql.startswith("CREATE TABLE"):
                name = sql.split('"')[1]
                table = TABLES[name]
                cols = ["ts TIMESTAMP", *(f"{t} VARCHAR" for t in table.tags), *(f"{f} DOUBLE" for f in table.fields)]
                self.db.execute(f"CREATE TABLE IF NOT EXISTS {name} ({', '.join(cols)})")
            return web.json_response({"output": [{"affectedrows": 0}], "execution_time_ms": 1})
        try:
            cursor = self.db.execute(sql)
        except duckdb.Error as exc:
            return web.json_response({"code": 1004, "error": str(exc)}, status=400)
        schemas = [
            {"name": d[0], "data_type": "TimestampMillisecond" if "TIMESTAMP" in str(d[1]) else "Float64"}
            for d in cursor.description or []
        ]
        rows = [
            [int(v.replace(tzinfo=UTC).timestamp() * 1000) if isinstance(v, datetime) else v for v in r]
            for r in cursor.fetchall()
        ]
        return web.json_response(
            {
                "output": [{"records": {"schema": {"column_schemas": schemas}, "rows": rows, "total_rows": len(rows)}}],
                "execution_time_ms": 2,
            }
        )


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeGreptime, int]]:
    server = FakeGreptime()
    runner = web.AppRunner(server.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield server, runner.addresses[0][1]
    await runner.cleanup()


def settings(port: int, password: str = "secret") -> GreptimeSettings:
    return GreptimeSettings(host="127.0.0.1", port=port, user="user", password=password, db="tfdb")


async def test_tables_are_created_with_ts_time_index_and_ttl(fake: tuple[FakeGreptime, int]) -> None:
    server, port = fake
    store = GreptimeStore(settings(port), ttl=timedelta(days=30))
    await store.write([Point("tf_gpu_usage", {"node": "n1"}, {"temperature": 91.0}, 0)])
    await store.close()
    creates = [s for s in server.sql_seen if s.startswith("CREATE TABLE")]
    assert len(creates) == len(TABLES)
    gpu = next(s for s in creates if '"tf_gpu_usage"' in s)
    assert 'TIME INDEX ("ts")' in gpu
    assert 'PRIMARY KEY ("node", "pool", "uuid", "model")' in gpu
    assert gpu.endswith("WITH (ttl = '30d')")


async def test_write_uses_line_protocol_in_ms_and_query_reads_it_back(fake: tuple[FakeGreptime, int]) -> None:
    server, port = fake
    store = GreptimeStore(settings(port))
    t = int(T0.timestamp()) * 10**9
    result = await store.write([Point("tf_gpu_usage", {"node": "n1", "uuid": "g"}, {"temperature": 95.0}, t)])
    assert result.written == 1
    params, body = server.writes[0]
    assert params == {"db": "tfdb", "precision": "ms"}
    assert body == f"tf_gpu_usage,node=n1,uuid=g temperature=95.0 {t // 10**6}\n"
    where = store.dialect.time_filter(T0 - timedelta(seconds=15), T0 + timedelta(seconds=1))
    rows = (await store.query(f"SELECT ts, node, temperature FROM tf_gpu_usage WHERE {where}")).records()
    assert rows == [{"ts": T0, "node": "n1", "temperature": 95.0}]
    assert await store.columns("SELECT node, max(temperature) AS t FROM tf_gpu_usage GROUP BY node") == ["node", "t"]
    await store.close()


async def test_errors_map_to_query_failed_or_unavailable(fake: tuple[FakeGreptime, int]) -> None:
    server, port = fake
    store = GreptimeStore(settings(port))
    with pytest.raises(QueryFailed, match="nope"):
        await store.query("SELECT nope FROM nowhere")
    server.down = True
    with pytest.raises(StoreUnavailable, match="503"):
        await store.query("SELECT 1")
    with pytest.raises(StoreUnavailable):
        await store.write([Point("tf_gpu_usage", {}, {"temperature": 1.0})])
    await store.close()
    wrong = GreptimeStore(settings(port, password="wrong"))
    server.down = False
    with pytest.raises(StoreUnavailable, match="401"):
        await wrong.query("SELECT 1")
    await wrong.close()


async def test_unreachable_server_is_unavailable_not_a_crash() -> None:
    store = GreptimeStore(GreptimeSettings(host="127.0.0.1", port=1, timeout=1.0))
    with pytest.raises(StoreUnavailable, match="unreachable"):
        await store.write([Point("tf_gpu_usage", {}, {"temperature": 1.0})])
    await store.close()


async def test_ttl_change_alters_every_table_once(fake: tuple[FakeGreptime, int]) -> None:
    server, port = fake
    store = GreptimeStore(settings(port), ttl=timedelta(days=30))
    await store.apply_ttl(timedelta(days=30), T0)
    await store.apply_ttl(timedelta(days=7), T0)
    await store.apply_ttl(timedelta(days=7), T0)
    await store.close()
    alters = [s for s in server.sql_seen if s.startswith("ALTER")]
    assert alters == [f"ALTER TABLE \"{name}\" SET 'ttl' = '7d'" for name in TABLES]


def test_cloud_uses_https() -> None:
    assert (
        GreptimeSettings(host="x.aws.greptime.cloud", port=5001, is_cloud=True).base_url
        == "https://x.aws.greptime.cloud:5001"
    )
