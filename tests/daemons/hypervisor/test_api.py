"""`tensor-fusion hypervisor` as a process on the simulated GPU: its HTTP API, authentication,
bad input, worker lifecycle, re-adoption after a restart, dead owners, bad flags."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.compute_node import CLI, LocalNode


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNode]:
    with LocalNode(tmp_path_factory.mktemp("hypervisor")) as running:
        yield running.start()


def _token(node: LocalNode) -> str:
    return (node.state_dir / "token").read_text().strip()


def _call(node: LocalNode, method: str, path: str, body: Any = None, token: str | None = "") -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(node.url + path, data=data, method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token or _token(node)}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_devices_show_the_simulated_gpu_and_its_rating(node: LocalNode) -> None:
    (device,) = node.get("/api/v1/devices")["devices"]
    assert device["simulated"] is True
    assert device["name"].endswith("(simulated)")
    assert device["rated_tflops"] == 989.4
    assert device["uuid"].startswith("GPU-")
    assert "SIMULATED" in node.log.read_text()


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_changing_state_needs_the_bearer_token(node: LocalNode, token: str | None) -> None:
    status, body = _call(node, "POST", "/api/v1/workers", {"name": "intruder", "vram": "1Gi"}, token=token)
    assert status == 401
    assert "Bearer" in body["error"]
    _call(node, "POST", "/api/v1/workers", {"name": "victim", "vram": "1Gi"})
    status, _ = _call(node, "DELETE", "/api/v1/workers/victim", token=token)
    assert status == 401
    assert [w["name"] for w in node.get("/api/v1/workers")["workers"]] == ["victim"]
    assert _call(node, "DELETE", "/api/v1/workers/victim")[0] == 204


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "a", "vram": "lots"}, "vram"),
        ({"name": "a", "vram": "1Gi", "tflops_request": "fast"}, "tflops_request"),
        ({"name": "Bad Name!", "vram": "1Gi"}, "name"),
        ({"name": "a", "vram": "1Gi", "tflops_request": "200", "tflops_limit": "100"}, "tflops_limit"),
        ({"name": "a", "vram": "1Gi", "surprise": 1}, "body"),
        ({"vram": "1Gi"}, "body"),
        ({"name": "a", "vram": "1Gi", "gpus": ["GPU-nope"]}, "gpus"),
        (b"{not json", "body"),
    ],
)
def test_bad_requests_are_400_naming_the_field(node: LocalNode, body: Any, field: str) -> None:
    status, answer = _call(node, "POST", "/api/v1/workers", body)
    assert status == 400, answer
    assert field in [p["field"] for p in answer["problems"]]
    assert node.get("/api/v1/workers")["workers"] == []


def test_a_share_that_does_not_fit_is_409_naming_what_is_short(node: LocalNode) -> None:
    status, answer = _call(node, "POST", "/api/v1/workers", {"name": "big", "vram": "1Gi", "tflops_request": 2000})
    assert status == 409
    assert "compute: asked 2000 TFLOPS per GPU" in answer["error"]


def test_worker_lifecycle_files_and_metrics(node: LocalNode) -> None:
    status, worker = _call(node, "POST", "/api/v1/workers", {"name": "w1", "vram": "2Gi", "tflops_request": "100"})
    assert status == 201
    region = Path(worker["region"])
    limits = region.with_name(region.name + ".limits")
    assert region.exists()
    assert limits.exists()
    assert oct(limits.stat().st_mode & 0o777) == "0o644"  # the tenant cannot write its limits
    assert worker["gpus"][0]["share"]["request"] == pytest.approx(100 / 989.4)
    assert node.get("/api/v1/workers/w1")["vram_limit_bytes"] == 2 * 1024**3
    assert node.get("/api/v1/devices")["devices"][0]["allocated"]["tflops_request_milli"] == 100_000
    assert _call(node, "POST", "/api/v1/workers", {"name": "w1", "vram": "1Gi"})[0] == 400  # exists
    with urllib.request.urlopen(node.url + "/metrics", timeout=10) as response:
        metrics = response.read().decode()
    assert "tf_hypervisor_workers 1.0" in metrics
    assert 'tf_worker_compute_rate{namespace="",pod="",uuid="GPU-' in metrics
    assert _call(node, "DELETE", "/api/v1/workers/w1")[0] == 204
    assert not region.exists()
    assert not limits.exists()
    assert _call(node, "DELETE", "/api/v1/workers/w1")[0] == 404
    assert _call(node, "GET", "/api/v1/workers/w1", token=None)[0] == 404


def test_a_worker_whose_owner_dies_is_released(node: LocalNode) -> None:
    owner = subprocess.Popen(["sleep", "60"])
    try:
        status, _ = _call(node, "POST", "/api/v1/workers", {"name": "owned", "vram": "1Gi", "owner_pid": owner.pid})
        assert status == 201
    finally:
        owner.kill()
        owner.wait()
    deadline = time.monotonic() + 5
    while node.get("/api/v1/workers")["workers"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_restart_re_adopts_workers_and_drops_leftovers(tmp_path: Path) -> None:
    with LocalNode(tmp_path) as first:
        first.start()
        assert _call(first, "POST", "/api/v1/workers", {"name": "kept", "vram": "1Gi", "tflops_request": 300})[0] == 201
        assert first.stop() == 0
        leftover = first.state_dir / "workers" / "stray.shm"
        leftover.write_bytes(b"garbage")
        first.start()
        assert [w["name"] for w in first.get("/api/v1/workers")["workers"]] == ["kept"]
        assert first.get("/api/v1/devices")["devices"][0]["allocated"]["tflops_request_milli"] == 300_000
        assert not leftover.exists()
        assert "stray" in first.log.read_text()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--gpu-tflops", "H100"], "--gpu-tflops"),
        (["--tick", "0"], "--tick"),
        (["--tflops-oversell", "0"], "--tflops-oversell"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(tmp_path: Path, flags: list[str], message: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "LD_"))}
    env.update(TF_STATE_DIR=str(tmp_path), TF_SIM_STATE=str(tmp_path / "sim.state"))
    result = subprocess.run(
        [*CLI, "hypervisor", "--simulate", "--port", "0", *flags],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert message in result.stderr


def test_run_without_a_node_says_how_to_start_one(tmp_path: Path) -> None:
    env = dict(os.environ, TF_STATE_DIR=str(tmp_path))
    result = subprocess.run(
        [*CLI, "run", "--tflops", "1", "--vram", "1Gi", "--", sys.executable, "-c", "print('ran')"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "tensor-fusion up" in result.stderr
    assert "ran" not in result.stdout


def test_usage_is_written_to_the_metrics_store(tmp_path: Path) -> None:
    import duckdb

    store = tmp_path / "metrics.duckdb"
    with LocalNode(tmp_path) as running:
        running.start("--metrics-store", str(store), "--metrics-interval", "0.2")
        assert _call(running, "POST", "/api/v1/workers", {"name": "m1", "vram": "1Gi", "tflops_request": 100})[0] == 201
        time.sleep(1.0)
        assert running.stop() == 0
    with duckdb.connect(str(store), read_only=True) as con:
        workers = con.execute("SELECT DISTINCT worker, uuid FROM tf_worker_usage").fetchall()
        gpus = con.execute("SELECT count(*), max(worker_count) FROM tf_gpu_usage").fetchall()
    assert [w for w, _ in workers] == ["m1"]
    assert workers[0][1].startswith("GPU-")
    assert gpus[0][0] >= 2
    assert gpus[0][1] == 1


@pytest.mark.parametrize(
    ("flags", "flag"),
    [
        (["--tflops", "fast", "--vram", "1Gi"], "--tflops"),
        (["--tflops", "1", "--tflops-limit", "x", "--vram", "1Gi"], "--tflops-limit"),
        (["--tflops", "-5", "--vram", "1Gi"], "--tflops"),
        (["--tflops", "1", "--vram", "0"], "--vram"),
        (["--tflops", "1", "--vram", "1Gi", "--gpu-count", "0"], "--gpu-count"),
    ],
)
def test_run_rejects_bad_amounts_naming_the_flag(tmp_path: Path, flags: list[str], flag: str) -> None:
    env = dict(os.environ, TF_STATE_DIR=str(tmp_path))
    result = subprocess.run(
        [*CLI, "run", *flags, "--", sys.executable, "-c", "print('ran')"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert f"error: {flag}" in result.stderr
    assert "ran" not in result.stdout
