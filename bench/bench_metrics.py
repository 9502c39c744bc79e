"""Metrics store: points/s through the batching writer into DuckDB vs one INSERT per point,
and the time to evaluate every built-in alert rule over one million rows.

Prints one JSON line per figure.
"""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from tfcore.alerts.builtin import builtin_rules
from tfcore.metrics.batcher import BatchingWriter
from tfcore.metrics.embedded import DuckDBStore
from tfcore.metrics.lineproto import Point

NOW = datetime(2026, 1, 1, tzinfo=UTC)
NODES, GPUS_PER_NODE, WORKERS_PER_GPU = 50, 8, 4


def _worker_points(count: int, start: datetime, span: timedelta) -> list[Point]:
    rng = random.Random(7)
    step = span / count
    points = []
    for i in range(count):
        node, gpu, worker = i % NODES, (i // NODES) % GPUS_PER_NODE, (i // (NODES * GPUS_PER_NODE)) % WORKERS_PER_GPU
        points.append(
            Point(
                "tf_worker_usage",
                {
                    "workload": f"wl-{worker}",
                    "worker": f"wl-{worker}-{node}-{gpu}",
                    "namespace": "default",
                    "pool": "shared",
                    "node": f"node-{node}",
                    "uuid": f"GPU-{node}-{gpu}",
                },
                {
                    "compute_tflops": rng.uniform(0, 100),
                    "compute_percentage": rng.uniform(0, 100),
                    "memory_bytes": rng.randrange(1 << 34),
                    "memory_percentage": rng.uniform(0, 100),
                    "compute_throttled_cnt": rng.randrange(3),
                    "vram_freezed_cnt": 0,
                    "vram_resumed_cnt": 0,
                },
                int((start + i * step).timestamp() * 1e9),
            )
        )
    return points


async def _batched_points_per_s(path: Path, points: list[Point]) -> float:
    store = await DuckDBStore(path).open()
    writer = BatchingWriter(store, max_buffer=len(points) + 1, batch_size=10_000, flush_interval=0.05)
    task = asyncio.create_task(writer.run())
    start = time.perf_counter()
    writer.submit_many(points)
    assert await writer.flush(timeout=600)
    elapsed = time.perf_counter() - start
    task.cancel()
    await store.close()
    assert writer.stats.written == len(points)
    return len(points) / elapsed


def _naive_points_per_s(path: Path, points: list[Point]) -> float:
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE tf_worker_usage (ts TIMESTAMP, workload VARCHAR, worker VARCHAR, namespace VARCHAR, pool VARCHAR,"
        " node VARCHAR, uuid VARCHAR, compute_tflops DOUBLE, compute_percentage DOUBLE, memory_bytes BIGINT,"
        " memory_percentage DOUBLE, compute_throttled_cnt BIGINT, vram_freezed_cnt BIGINT, vram_resumed_cnt BIGINT)"
    )
    start = time.perf_counter()
    for p in points:
        con.execute(
            "INSERT INTO tf_worker_usage VALUES (make_timestamp(?), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(p.time_ns or 0) // 1000, *p.tags.values(), *p.fields.values()],
        )
    elapsed = time.perf_counter() - start
    con.close()
    return len(points) / elapsed


async def _rules_over_rows(path: Path, rows: int) -> dict[str, float]:
    store = await DuckDBStore(path).open()
    # One million rows spread over every table the rules read, the last hour of samples.
    span = timedelta(hours=1)
    per_table = rows // 4
    await store.write(_worker_points(per_table, NOW - span, span))
    rng = random.Random(3)
    for table, fields in (
        ("tf_gpu_usage", ("compute_percentage", "memory_percentage", "temperature")),
        ("tf_node_metrics", ("allocated_tflops_percent", "allocated_vram_percent")),
        ("tf_pool_metrics", ("allocated_tflops_percent_virtual", "allocated_vram_percent_virtual")),
    ):
        batch = [
            Point(
                table,
                {"node": f"node-{i % NODES}", "pool": "shared", "uuid": f"GPU-{i % NODES}-{i % GPUS_PER_NODE}"}
                if table != "tf_pool_metrics"
                else {"pool": f"pool-{i % 5}"},
                {
                    **{f: rng.uniform(0, 100) for f in fields},
                    **({"worker_count": i % 3} if table == "tf_gpu_usage" else {}),
                },
                int((NOW - span + i * span / per_table).timestamp() * 1e9),
            )
            for i in range(per_table)
        ]
        if table != "tf_gpu_usage":
            batch = [
                Point(p.measurement, {k: v for k, v in p.tags.items() if k != "uuid"}, p.fields, p.time_ns)
                for p in batch
            ]
        await store.write(batch)
    total = 0
    for table in ("tf_worker_usage", "tf_gpu_usage", "tf_node_metrics", "tf_pool_metrics"):
        total += (await store.query(f"SELECT count(*) FROM {table}")).rows[0][0]
    rules = builtin_rules()
    # Worst case: every rule's window covers the whole hour, so each query scans its whole table.
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        for rule in rules:
            wide = rule.query.render(
                {"Conditions": store.dialect.time_filter(NOW - span, NOW), "Threshold": rule.rule.threshold}
            )
            await store.query(wide)
        timings.append(time.perf_counter() - start)
    await store.close()
    return {"rows": total, "rules": len(rules), "seconds": min(timings)}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        points = _worker_points(200_000, NOW - timedelta(hours=1), timedelta(hours=1))
        batched = asyncio.run(_batched_points_per_s(Path(tmp) / "batched.duckdb", points))
        naive = _naive_points_per_s(Path(tmp) / "naive.duckdb", points[:5_000])
        print(
            json.dumps(
                {
                    "bench": "metrics_write_duckdb",
                    "batched_points_per_s": round(batched),
                    "one_insert_per_point_points_per_s": round(naive),
                    "ratio_batched_over_naive": round(batched / naive, 1),
                }
            )
        )
        result = asyncio.run(_rules_over_rows(Path(tmp) / "rules.duckdb", 1_000_000))
        print(
            json.dumps(
                {
                    "bench": "alert_rules_eval_duckdb",
                    "rows": result["rows"],
                    "rules": result["rules"],
                    "all_rules_ms": round(result["seconds"] * 1000, 1),
                    "ms_per_rule": round(result["seconds"] * 1000 / result["rules"], 2),
                }
            )
        )


if __name__ == "__main__":
    main()
