"""With the chart's TF_GREPTIME_* set, the hypervisor writes its usage samples to GreptimeDB,
where the controller's autoscaler reads them (its own DuckDB file is per node)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.daemons.hypervisor.process import PATIENCE, Hypervisor
from tests.kubeapi.emulator import KubeEmulator
from tests.unit.metrics.test_greptime_store import FakeGreptime


@pytest.fixture
async def greptime() -> AsyncIterator[tuple[FakeGreptime, int]]:
    server = FakeGreptime()
    runner = web.AppRunner(server.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield server, runner.addresses[0][1]
    await runner.cleanup()


async def test_usage_samples_go_to_greptime(
    kube: KubeEmulator, hypervisors: list[Hypervisor], tmp_path: Path, greptime: tuple[FakeGreptime, int]
) -> None:
    server, port = greptime
    env = {
        "TF_GREPTIME_HOST": "127.0.0.1",
        "TF_GREPTIME_PORT": str(port),
        "TF_GREPTIME_DB": "tfdb",
        "TF_GREPTIME_USER": "user",
        "TF_GREPTIME_PASSWORD": "secret",
    }
    hypervisor = Hypervisor(tmp_path, kube, "--metrics-interval", "0.2", env=env)
    hypervisors.append(hypervisor)
    await hypervisor.start()
    assert (await hypervisor.create_worker(name="job", vram="1Gi", tflops_request="10"))[0] == 201
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PATIENCE
    while not any("tf_worker_usage," in body for _, body in server.writes):
        assert loop.time() < deadline, f"no tf_worker_usage written; writes: {server.writes[:2]}"
        await asyncio.sleep(0.1)
    workers = {row[0] for row in server.db.execute("SELECT worker FROM tf_worker_usage").fetchall()}
    assert workers == {"job"}
