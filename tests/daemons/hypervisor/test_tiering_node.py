"""A standalone node that expands VRAM: freeze/resume from the CLI, tiers in the node API,
idle workers frozen by their QoS's TTLs, the opt-out, and bad tiering flags."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemons.hypervisor.tierwork import TierworkProcess, build_tierwork
from tests.e2e.compute_node import CLI, LocalNode

from .test_api import _call

ROOT = Path(__file__).resolve().parents[3]
MIB = 1 << 20


@pytest.fixture(scope="module")
def tierwork(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tierwork(tmp_path_factory.mktemp("bin"))


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNode]:
    root = tmp_path_factory.mktemp("tiering")
    tier_dir = root / "tier"
    tier_dir.mkdir()
    with LocalNode(root) as running:
        running.env["TF_SIM_GPU_VRAM"] = str(512 * MIB)
        yield running.start(
            "--vram-expand-to-host-mem",
            "50",
            "--vram-expand-to-host-disk",
            "50",
            "--tier-dir",
            str(tier_dir),
            "--freeze-ttl",
            "low=1s/3s",
            "--tier-min-free-disk",
            "0",
        )


def start_workload(node: LocalNode, tierwork: Path, view: dict[str, Any]) -> TierworkProcess:
    """tierwork under the shim as a worker of the standalone node."""
    return TierworkProcess(tierwork, node.env, TF_SHM_PATH=view["region"], TF_TIER_DIR=view["tier_dir"])


def cli(node: LocalNode, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=node.env, capture_output=True, text=True, timeout=60, check=False)


def view(node: LocalNode, name: str) -> dict[str, Any]:
    status, body = _call(node, "GET", f"/api/v1/workers/{name}")
    assert status == 200, body
    return dict(body)


def wait_for(node: LocalNode, name: str, key: str, want: Any, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        got = view(node, name)
        value = got["tiers"][key] > 0 if key in ("host", "disk") else got[key]
        if (value == want and not got["tier_pending"]) or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def test_the_node_sells_the_expanded_vram(node: LocalNode) -> None:
    devices = node.get("/api/v1/devices")["devices"]
    assert devices[0]["free"]["vram_bytes"] == 1024 * MIB  # 512 MiB + 50 % host + 50 % disk


def test_below_the_free_disk_guidance_no_disk_tier_is_sold(tmp_path: Path) -> None:
    tier_dir = tmp_path / "tier"
    tier_dir.mkdir()
    with LocalNode(tmp_path) as small:
        small.env["TF_SIM_GPU_VRAM"] = str(512 * MIB)
        small.start(
            "--vram-expand-to-host-mem",
            "50",
            "--vram-expand-to-host-disk",
            "50",
            "--tier-dir",
            str(tier_dir),
            "--tier-min-free-disk",
            "1P",
        )  # more than any test machine has free
        device = small.get("/api/v1/devices")["devices"][0]
        assert device["free"]["vram_bytes"] == 768 * MIB  # the GPU and the host tier only
        assert device["tiers"]["disk_ok"] is False
        assert "no disk tier is sold" in device["tiers"]["message"]
        assert small.stop() == 0
    assert "no disk tier is sold" in small.log.read_text()


def test_freeze_and_resume_from_the_cli(node: LocalNode, tierwork: Path) -> None:
    status, worker = _call(node, "POST", "/api/v1/workers", {"name": "cli", "vram": "256Mi", "qos": "high"})
    assert status == 201, worker
    assert (worker["vram_tiering"], worker["frozen"]) == (True, False)
    work = start_workload(node, tierwork, worker)
    first = work.ask("alloc 4 32", 3)
    assert first["alloc"] == "0"
    assert view(node, "cli")["tiers"] == {"device": 128 * MIB, "host": 0, "disk": 0}
    done = cli(node, "freeze", "cli")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "name": "cli",
        "frozen": True,
        "tiers": {"device": 0, "host": 128 * MIB, "disk": 0},
    }
    done = cli(node, "freeze", "cli", "--to", "disk")
    assert json.loads(done.stdout)["tiers"] == {"device": 0, "host": 0, "disk": 128 * MIB}
    done = cli(node, "resume", "cli")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["frozen"] is False
    assert work.ask("check", 3) == {"check": "0", "same": "1", "ptrs": first["ptrs"]}
    got = view(node, "cli")
    assert (got["vram_freezed_cnt"], got["vram_resumed_cnt"]) == (2, 1)
    assert work.finish() == 0
    assert _call(node, "DELETE", "/api/v1/workers/cli")[0] == 204


def test_idle_workers_are_frozen_by_their_qos_ttls(node: LocalNode, tierwork: Path) -> None:
    status, worker = _call(node, "POST", "/api/v1/workers", {"name": "idle", "vram": "128Mi", "qos": "low"})
    assert status == 201, worker
    work = start_workload(node, tierwork, worker)
    first = work.ask("alloc 2 32", 3)
    assert work.ask("check", 3)["same"] == "1"  # one launch: active now
    assert wait_for(node, "idle", "host", want=True)["tiers"]["host"] == 64 * MIB  # low: 1 s idle
    assert wait_for(node, "idle", "disk", want=True)["tiers"]["disk"] == 64 * MIB  # low: 3 s idle
    assert work.ask("check", 3) == {"check": "0", "same": "1", "ptrs": first["ptrs"]}  # back on its next call
    got = view(node, "idle")
    assert got["tiers"] == {"device": 64 * MIB, "host": 0, "disk": 0}
    assert got["vram_resumed_cnt"] >= 1
    assert work.finish() == 0
    assert _call(node, "DELETE", "/api/v1/workers/idle")[0] == 204


def test_an_opted_out_worker_cannot_be_frozen(node: LocalNode) -> None:
    status, worker = _call(node, "POST", "/api/v1/workers", {"name": "plain", "vram": "64Mi", "vram_tiering": False})
    assert status == 201, worker
    assert worker["vram_tiering"] is False
    done = cli(node, "freeze", "plain")
    assert done.returncode == 1
    assert "opted out" in done.stderr
    assert _call(node, "DELETE", "/api/v1/workers/plain")[0] == 204


def test_bad_qos_is_400_naming_the_field(node: LocalNode) -> None:
    status, body = _call(node, "POST", "/api/v1/workers", {"name": "q", "vram": "64Mi", "qos": "urgent"})
    assert status == 400
    assert body["problems"][0]["field"] == "qos"


@pytest.mark.parametrize(
    ("flags", "flag"),
    [
        (["--vram-expand-to-host-disk", "20"], "--tier-dir"),
        (["--vram-expand-to-host-mem", "-5"], "--vram-expand-to-host-mem"),
        (["--freeze-ttl", "low=1h/1m"], "--freeze-ttl"),
        (["--tier-dir", "/nonexistent/tiers"], "--tier-dir"),
    ],
)
def test_bad_tiering_flags_exit_2_naming_the_flag(tmp_path: Path, flags: list[str], flag: str) -> None:
    env = {"TF_STATE_DIR": str(tmp_path), "TF_SIM_STATE": str(tmp_path / "sim.state"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [*CLI, "hypervisor", "--simulate", "--port", "0", *flags],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert flag in done.stderr


def test_freezes_resumes_and_tier_bytes_reach_tf_worker_usage(tmp_path: Path, tierwork: Path) -> None:
    import duckdb

    store = tmp_path / "metrics.duckdb"
    with LocalNode(tmp_path) as running:
        running.env["TF_SIM_GPU_VRAM"] = str(512 * MIB)
        running.start("--vram-expand-to-host-mem", "50", "--metrics-store", str(store), "--metrics-interval", "0.2")
        status, worker = _call(running, "POST", "/api/v1/workers", {"name": "m", "vram": "128Mi", "qos": "high"})
        assert status == 201, worker
        work = start_workload(running, tierwork, worker)
        assert work.ask("alloc 2 16", 3)["alloc"] == "0"
        for _ in range(2):
            assert cli(running, "freeze", "m").returncode == 0
            time.sleep(0.5)  # a sample while frozen
            assert cli(running, "resume", "m").returncode == 0
        time.sleep(0.5)
        assert work.finish() == 0
        assert running.stop() == 0
    with duckdb.connect(str(store), read_only=True) as con:
        row = con.execute(
            "SELECT sum(vram_freezed_cnt), sum(vram_resumed_cnt), max(vram_host_bytes) FROM tf_worker_usage"
        ).fetchone()
    assert row == (2, 2, 32 * MIB)  # per-sample counts add up to the totals
