"""`tensor-fusion autoscale recommend` over a real DuckDB store."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemons.autoscale import parse_at, parse_workload
from daemons.cli import main
from tfcore.metrics.embedded import DuckDBStore
from tfcore.metrics.lineproto import Point
from tfcore.model.errors import ValidationError
from tfcore.model.quantity import Quantity

GIB = 1024**3
AT = datetime(2026, 12, 6, 18, 0, tzinfo=UTC)


def _write(path: Path, minutes: int, *, resources: bool = True) -> list[float]:
    rng = random.Random(3)
    points: list[Point] = []
    tflops: list[float] = []
    start = AT - timedelta(minutes=minutes)
    for step in range(minutes * 6):  # a sample every 10 s
        at = start + timedelta(seconds=10 * step)
        for worker in ("w-0", "w-1"):
            value = rng.uniform(2.0, 8.0)
            tflops.append(value)
            tags = {"workload": "llm", "worker": worker, "namespace": "team", "pool": "p", "node": "n", "uuid": "g"}
            fields = {"compute_tflops": value, "memory_bytes": int(3 * GIB + rng.uniform(0, GIB))}
            points.append(Point("tf_worker_usage", tags, fields, int(at.timestamp() * 1e9)))
    if resources:
        fields = {
            "tflops_request": 20.0,
            "tflops_limit": 40.0,
            "vram_request_bytes": 8 * GIB,
            "vram_limit_bytes": 8 * GIB,
        }
        tags = {"workload": "llm", "worker": "w-0", "namespace": "team", "pool": "p", "node": "n", "qos": "high"}
        points.append(Point("tf_worker_resources", tags, fields, int((start.timestamp()) * 1e9)))

    async def write() -> None:
        store = await DuckDBStore(path).open()
        try:
            result = await store.write(points)
            assert not result.rejected
        finally:
            await store.close()

    asyncio.run(write())
    return tflops


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, object] | str]:
    code = main(["autoscale", "recommend", *args])
    out, err = capsys.readouterr()
    return code, json.loads(out) if code == 0 else err


def test_recommends_from_two_hours_of_samples(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "metrics.duckdb"
    samples = _write(store, 120)
    code, result = _run(capsys, "--store", str(store), "--workload", "team/llm", "--at", "2026-12-06T18:00:00Z")
    assert code == 0
    assert isinstance(result, dict)
    assert result["confident"] is True
    recommendation = result["recommendation"]
    assert isinstance(recommendation, dict)
    p95 = sorted(samples)[int(0.95 * len(samples))]
    request = float(Quantity(recommendation["requests"]["tflops"]))
    assert request == pytest.approx(p95 * 1.15, rel=0.1)  # QoS high: target (p95) x (1 + margin)
    assert recommendation["limits"]["tflops"] == "40"  # the compute limit keeps the original
    vram_limit = recommendation["limits"]["vram"]
    assert vram_limit.endswith("Mi") or vram_limit.endswith("Gi")
    assert result["apply"] is not None  # 20 -> ~9 TFLOPS: beyond the threshold
    assert result["samples"] == {"compute": len(samples), "vram": 2 * 120}  # a peak per worker-minute


def test_not_confident_on_a_short_history(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "metrics.duckdb"
    _write(store, 10)
    code, result = _run(capsys, "--store", str(store), "--workload", "team/llm", "--at", "2026-12-06T18:00:00Z")
    assert code == 0
    assert isinstance(result, dict)
    assert result["confident"] is False
    assert result["recommendation"] is None
    assert "collecting samples" in str(result["reason"])


def test_config_file_gives_spec_and_targets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "metrics.duckdb"
    _write(store, 120, resources=False)
    config = tmp_path / "profile.yaml"
    config.write_text(
        """apiVersion: tensor-fusion.ai/v1
kind: WorkloadProfile
metadata: {name: llm, namespace: team}
spec:
  qos: critical
  resources:
    requests: {tflops: "10", vram: 4Gi}
    limits: {tflops: "20", vram: 8Gi}
  autoScalingConfig:
    autoSetResources: {enable: true, targetResource: vram}
""",
        encoding="utf-8",
    )
    args = ("--store", str(store), "--workload", "team/llm", "--config", str(config), "--at", "2026-12-06T18:00:00Z")
    code, result = _run(capsys, *args)
    assert code == 0
    assert isinstance(result, dict)
    assert result["targets"] == ["vram"]
    applied = result["apply"]
    assert isinstance(applied, dict)
    assert applied["requests"]["tflops"] == "10"  # compute is not a target: unchanged


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--workload", "llm"), "--workload"),
        (("--workload", "team/llm", "--at", "yesterday"), "--at"),
        (("--workload", "team/llm", "--at", "2026-12-06T18:00:00"), "--at"),  # no zone
    ],
)
def test_bad_arguments_name_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    code, err = _run(capsys, "--store", str(tmp_path / "x.duckdb"), *args)
    assert code == 1
    assert message in str(err)


def test_missing_store_and_missing_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(capsys, "--store", str(tmp_path / "none.duckdb"), "--workload", "team/llm")
    assert code == 1
    assert "no such file" in str(err)
    store = tmp_path / "metrics.duckdb"
    _write(store, 5, resources=False)
    code, err = _run(capsys, "--store", str(store), "--workload", "team/llm", "--at", "2026-12-06T18:00:00Z")
    assert code == 1
    assert "--config" in str(err)


@given(st.text(max_size=40))
def test_workload_and_instant_parsers_fuzz(text: str) -> None:
    for parser, flag in ((parse_workload, "--workload"), (parse_at, "--at")):
        try:
            parser(text)
        except ValidationError as exc:
            field = exc.problems[0].field
        else:
            continue
        assert field == flag
