"""Reading a workload's usage history out of the metrics store (the SQL is pure text; the
caller runs it on either store)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from tfcore.autoscale.history import WorkloadHistory
from tfcore.metrics.store import Dialect


def sql_string(value: str) -> str:
    """A SQL string literal (both stores double a quote inside one)."""
    return "'" + value.replace("'", "''") + "'"


def usage_query(dialect: Dialect, namespace: str, workload: str, start: datetime, end: datetime) -> str:
    """Every sample of the workload's workers in [start, end), oldest first. Each GPU of a
    worker is its own stream: requests and limits are per GPU."""
    return (
        "SELECT worker, uuid, ts, compute_tflops, memory_bytes FROM tf_worker_usage "
        f"WHERE namespace = {sql_string(namespace)} AND workload = {sql_string(workload)} "
        f"AND {dialect.time_filter(start, end)} ORDER BY ts"
    )


def resources_query(dialect: Dialect, namespace: str, workload: str, end: datetime) -> str:
    """The newest grant of any worker of the workload (the spec the controller last wrote)."""
    return (
        "SELECT tflops_request, tflops_limit, vram_request_bytes, vram_limit_bytes, qos FROM tf_worker_resources "
        f"WHERE namespace = {sql_string(namespace)} AND workload = {sql_string(workload)} "
        f"AND ts < {dialect.literal(end)} ORDER BY ts DESC LIMIT 1"
    )


def feed(history: WorkloadHistory, rows: Iterable[Sequence[Any]]) -> int:
    """Add rows of usage_query to `history`; rows with missing figures are skipped."""
    added = 0
    for worker, uuid, ts, tflops, memory in rows:
        if ts is None or (tflops is None and memory is None):
            continue
        history.add(f"{worker}/{uuid}", seconds(ts), float(tflops or 0.0), float(memory or 0))
        added += 1
    return added


def seconds(instant: datetime) -> float:
    """POSIX seconds of a store timestamp (naive ones hold UTC)."""
    return (instant if instant.tzinfo else instant.replace(tzinfo=UTC)).timestamp()
