"""The admin API beside the extender: loopback by default, a bearer token when exposed, large
bodies parsed in a worker process with a bound (bench/bench_admin_isolation.py measures the
extender's latency under admin load; here only what holds regardless of timing)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from daemons.cli import main
from daemons.scheduler.daemon import Options, build
from daemons.scheduler.http import admin_app
from tests.daemons.scheduler.cluster import SPEC_POD_YAML
from tests.daemons.scheduler.conftest import Setup
from tfcore.model.errors import ValidationError
from tfcore.web.app import HTTPProblem
from tfcore.web.offload import Offload

YAML = {"Content-Type": "application/yaml"}


def test_the_admin_api_binds_to_loopback_by_default() -> None:
    assert Options().host == "127.0.0.1"
    with pytest.raises(ValidationError, match="--admin-token-file"):
        Options(host="0.0.0.0").check()
    Options(host="0.0.0.0", admin_token_file=Path("token")).check()


def test_cli_refuses_a_public_admin_address_without_a_token(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scheduler", "--host", "0.0.0.0", "--cluster-state", "x.yaml"]) == 2
    assert "--admin-token-file" in capsys.readouterr().err


async def test_an_exposed_admin_api_needs_the_bearer_token() -> None:
    async with TestClient(TestServer(admin_app(Setup().service, token="s3cret"))) as client:
        assert (await client.post("/api/simulate-schedule", data=SPEC_POD_YAML.encode(), headers=YAML)).status == 401
        assert (await client.get("/api/allocation", headers={"Authorization": "Bearer wrong"})).status == 401
        authorized = {**YAML, "Authorization": "Bearer s3cret"}
        reply = await client.post("/api/simulate-schedule", data=SPEC_POD_YAML.encode(), headers=authorized)
        assert reply.status == 200
        assert (await client.get("/healthz")).status == 200  # probes stay open


async def test_the_token_comes_from_a_file_and_probes_have_their_own_listener(tmp_path: Path) -> None:
    state = tmp_path / "state.yaml"
    state.write_text("apiVersion: v1\nkind: List\nitems: []\n")
    token = tmp_path / "token"
    token.write_text("from-a-secret\n")
    options = Options(cluster_state=state, port=0, extender_port=0, admin_token_file=token, health_port=0)
    daemon = await build(options)
    hosts = [listener.host for _, listener in daemon.listeners()]
    assert hosts == ["127.0.0.1", "127.0.0.1", "0.0.0.0"]
    async with TestClient(TestServer(daemon.admin)) as admin:
        assert (await admin.get("/api/allocation")).status == 401
        assert (await admin.get("/api/allocation", headers={"Authorization": "Bearer from-a-secret"})).status == 200
    async with TestClient(TestServer(daemon.health)) as health:
        assert (await health.get("/readyz")).status == 200
        assert (await health.get("/metrics")).status == 200
        assert (await health.post("/api/simulate-schedule", data=b"{}")).status in (404, 405)
    await daemon.close()


def _pid(data: bytes) -> int:
    return os.getpid()


def _slow(data: bytes) -> int:
    time.sleep(0.5)
    return len(data)


async def test_large_bodies_are_parsed_in_another_process_small_ones_inline() -> None:
    offload = Offload(inline_below=1024)
    try:
        assert await offload.run(_pid, b"x" * 10) == os.getpid()
        assert await offload.run(_pid, b"x" * 4096) != os.getpid()
    finally:
        offload.close()


async def test_beyond_the_bound_large_bodies_are_429_with_retry_after() -> None:
    offload = Offload(concurrency=1, waiting=1, inline_below=1)
    try:
        running = [asyncio.ensure_future(offload.run(_slow, b"ab")) for _ in range(2)]
        await asyncio.sleep(0)  # both admitted: one running, one waiting
        with pytest.raises(HTTPProblem) as refused:
            await offload.run(_slow, b"ab")
        assert refused.value.status == 429
        assert refused.value.headers == {"Retry-After": "1"}
        assert await asyncio.gather(*running) == [2, 2]
    finally:
        offload.close()


async def test_a_large_yaml_pod_is_simulated_like_a_small_one(admin: Any) -> None:
    padding = "".join(f"    note-{i:05d}: {'x' * 60}\n" for i in range(1500))  # ~100 KiB: offloaded
    big = SPEC_POD_YAML.replace("  annotations:\n", "  annotations:\n" + padding, 1)
    assert "note-00000" in big
    small_reply = await admin.post("/api/simulate-schedule", data=SPEC_POD_YAML.encode(), headers=YAML)
    big_reply = await admin.post("/api/simulate-schedule", data=big.encode(), headers=YAML)
    assert big_reply.status == small_reply.status == 200
    assert (await big_reply.json())["node"] == (await small_reply.json())["node"]
