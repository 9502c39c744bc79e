"""End to end with a real AlertManager (Debian package prometheus-alertmanager).

Our evaluator and delivery run against a DuckDB store; AlertManager routes to a webhook
receiver served inside the test. Checked: a rule fires, is delivered and resolves; the
WatchDog arrives; AlertManager stopped and restarted loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tfcore.alerts.builtin import with_watchdog
from tfcore.alerts.delivery import AlertDelivery
from tfcore.alerts.evaluator import AlertEvaluator
from tfcore.alerts.rules import compile_rules
from tfcore.metrics.batcher import Backoff
from tfcore.metrics.embedded import DuckDBStore
from tfcore.metrics.lineproto import Point
from tfcore.web.alertmanager import AlertManagerClient

BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
pytestmark = pytest.mark.skipif(
    BINARY is None,
    reason="AlertManager not installed: apt-get update && apt-get install -y --no-install-recommends "
    "prometheus-alertmanager (make test does this when run as root)",
)

HOT_RULE = {
    "name": "GPUHot",
    "query": "SELECT node, uuid, max(temperature) AS temperature FROM tf_gpu_usage WHERE {{ .Conditions }} "
    "GROUP BY node, uuid HAVING max(temperature) > {{ .Threshold }}",
    "threshold": 90,
    "evaluationInterval": "300ms",
    "consecutiveCount": 2,
    "severity": "P1",
    "summary": "GPU {{ .uuid }} is hot",
    "description": "GPU {{ .uuid }} on {{ .node }} reached {{ .temperature }} C",
    "alertTargetInstance": "{{ .node }}-{{ .uuid }}",
    "runbookURL": "https://runbooks.example/gpu-hot",
}


@dataclass
class Receiver:
    """The webhook AlertManager notifies: records (alertname, instance, status, alert) tuples."""

    seen: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        for alert in body["alerts"]:
            labels = alert["labels"]
            self.seen.append((labels["alertname"], labels.get("instance", ""), alert["status"], alert))
        self.changed.set()
        return web.Response(text="ok")

    async def wait_for(self, alertname: str, instance: str, status: str, timeout: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for name, inst, stat, alert in self.seen:
                if (name, inst, stat) == (alertname, instance, status):
                    return alert
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                got = sorted({(n, i, s) for n, i, s, _ in self.seen})
                pytest.fail(f"no {status} {alertname}/{instance} notification within {timeout}s; received: {got}")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)


class AlertManagerProcess:
    def __init__(self, workdir: Path, receiver_url: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.storage = workdir / "data"
        self.config = workdir / "alertmanager.yml"
        self.config.write_text(
            "route:\n  receiver: hook\n  group_by: [alertname, instance]\n"
            "  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\n"
            "receivers:\n  - name: hook\n    webhook_configs:\n"
            f"      - url: {receiver_url}\n        send_resolved: true\n"
        )
        self.log = workdir / "alertmanager.log"
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        assert BINARY is not None
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    BINARY,
                    f"--config.file={self.config}",
                    f"--storage.path={self.storage}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--cluster.listen-address=",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 10
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    pytest.fail(f"alertmanager exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"{self.url}/-/ready") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.05)
        pytest.fail(f"alertmanager not ready within 10s: {self.log.read_text()[-2000:]}")

    async def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()  # SIGTERM: AlertManager snapshots its notification log on the way out
        try:
            await asyncio.to_thread(self.proc.wait, 10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            await asyncio.to_thread(self.proc.wait)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Pipeline:
    store: DuckDBStore
    receiver: Receiver
    alertmanager: AlertManagerProcess
    delivery: AlertDelivery
    hot_nodes: set[str]


@pytest.fixture
async def pipeline(tmp_path: Path) -> AsyncIterator[Pipeline]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    alertmanager = AlertManagerProcess(tmp_path, f"http://127.0.0.1:{port}/hook")
    await alertmanager.start()

    store = await DuckDBStore(tmp_path / "metrics.duckdb").open()
    client = AlertManagerClient(f"127.0.0.1:{alertmanager.port}", timeout=1.0)
    delivery = AlertDelivery(client, backoff=Backoff(initial=0.05, maximum=0.3))
    evaluator = AlertEvaluator(store, delivery.publish, lambda: True, resend_interval=timedelta(seconds=30))
    problems = await evaluator.set_rules(with_watchdog(compile_rules([HOT_RULE])))
    assert problems == []
    hot_nodes: set[str] = set()

    async def feed() -> None:  # what a hypervisor would write: one sample per GPU every 100 ms
        while True:
            points = [
                Point(
                    "tf_gpu_usage",
                    {"node": node, "uuid": "GPU-0"},
                    {"temperature": 95.0 if node in hot_nodes else 60.0},
                )
                for node in ("n1", "n2")
            ]
            await store.write(points)
            await asyncio.sleep(0.1)

    tasks = [asyncio.create_task(c) for c in (feed(), evaluator.run(), delivery.run())]
    try:
        yield Pipeline(store, receiver, alertmanager, delivery, hot_nodes)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.close()
        await store.close()
        await alertmanager.stop()
        await runner.cleanup()


async def test_watchdog_arrives(pipeline: Pipeline) -> None:
    alert = await pipeline.receiver.wait_for("WatchDog", "tensor-fusion", "firing")
    assert alert["labels"] == {
        "alertname": "WatchDog",
        "severity": "none",
        "instance": "tensor-fusion",
        "job": "tensor-fusion",
    }
    assert "Always firing" in alert["annotations"]["description"]


async def test_rule_fires_is_delivered_and_resolves(pipeline: Pipeline) -> None:
    pipeline.hot_nodes.add("n1")
    alert = await pipeline.receiver.wait_for("GPUHot", "n1-GPU-0", "firing")
    assert alert["labels"] == {"alertname": "GPUHot", "severity": "P1", "instance": "n1-GPU-0", "job": "tensor-fusion"}
    assert alert["annotations"] == {
        "summary": "GPU GPU-0 is hot",
        "description": "GPU GPU-0 on n1 reached 95 C",
        "runbook_url": "https://runbooks.example/gpu-hot",
    }
    assert not any(i == "n2-GPU-0" for _, i, _, _ in pipeline.receiver.seen), "a cool GPU must not alert"

    pipeline.hot_nodes.clear()
    resolved = await pipeline.receiver.wait_for("GPUHot", "n1-GPU-0", "resolved")
    assert resolved["endsAt"] > resolved["startsAt"]


async def test_alertmanager_down_and_back_loses_nothing(pipeline: Pipeline) -> None:
    await pipeline.receiver.wait_for("WatchDog", "tensor-fusion", "firing")
    pipeline.hot_nodes.add("n1")
    await pipeline.receiver.wait_for("GPUHot", "n1-GPU-0", "firing")
    # AlertManager sends a resolution only for a firing notification it has logged, and it logs
    # it after our receiver has answered: stopping it at once can lose that entry (seen once in
    # CI-like runs), and then no resolution would ever be due. Give it a moment to log it.
    await asyncio.sleep(1.0)

    await pipeline.alertmanager.stop()
    # While it is down: n1 cools down (resolution pending) and n2 heats up (new alert pending).
    pipeline.hot_nodes.clear()
    pipeline.hot_nodes.add("n2")
    await _until(lambda: pipeline.delivery.stats.failed_attempts >= 3, "delivery to notice AlertManager is down")
    await asyncio.sleep(1.0)  # n2 is past consecutiveCount by now

    await pipeline.alertmanager.start()
    await pipeline.receiver.wait_for("GPUHot", "n2-GPU-0", "firing")
    await pipeline.receiver.wait_for("GPUHot", "n1-GPU-0", "resolved")
    # AlertManager restarted empty; the WatchDog (still firing) is re-sent at once on recovery,
    # not one resend interval (30 s here) later.
    # The re-sent alerts may arrive in more than one POST: wait until AlertManager holds both.
    wanted = {("WatchDog", "tensor-fusion"), ("GPUHot", "n2-GPU-0")}
    deadline = time.monotonic() + 10.0
    active = await _active_alerts(pipeline.alertmanager.url)
    while not wanted <= active and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        active = await _active_alerts(pipeline.alertmanager.url)
    assert wanted <= active, active
    assert pipeline.delivery.healthy


async def _active_alerts(url: str) -> set[tuple[str, str]]:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/api/v2/alerts?active=true") as response:
        body = await response.json()
    return {(a["labels"]["alertname"], a["labels"]["instance"]) for a in body if a["status"]["state"] == "active"}


async def _until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)
