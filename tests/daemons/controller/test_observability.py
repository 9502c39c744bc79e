"""The controller's observability wiring: dynamic config, metrics store, samples, alerts.

Against the API emulator (`kube`), a fake AlertManager (an aiohttp app recording what
POST /api/v2/alerts receives; the real one is exercised in tests/e2e/test_alertmanager.py)
and, for GreptimeDB, the contract fake of tests/unit/metrics/test_greptime_store.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from daemons.cli import build_parser
from daemons.controller.cli import options_from
from daemons.controller.daemon import ControllerDaemon, Options
from daemons.controller.observability import (
    Observability,
    ObservabilityCollector,
    default_store_path,
    sample_points,
)
from tests.daemons.controller.helpers import FAST, Cluster, spec_cluster, wait_for
from tests.kubeapi.emulator import KubeEmulator
from tests.unit.metrics.test_greptime_store import FakeGreptime
from tfcore.model.errors import ValidationError
from tfcore.web.greptime import GreptimeStore, greptime_from_env

POOL = "tensor-fusion-cluster-shared"
POOL_RULE = """
alertRules:
  - name: PoolHasNodes
    query: |
      SELECT pool, max(node_count) AS nodes, max(total_tflops) AS tflops
      FROM tf_pool_metrics GROUP BY pool HAVING max(node_count) > {{ .Threshold }}
    threshold: 0
    evaluationInterval: 100ms
    consecutiveCount: 1
    severity: P2
    summary: "pool {{ .pool }} has {{ .nodes }} node(s), {{ .tflops }} TFLOPS"
    alertTargetInstance: "{{ .pool }}"
"""


@dataclass
class FakeAlertManager:
    received: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0

    async def alerts(self, request: web.Request) -> web.Response:
        self.received.extend(await request.json())
        return web.json_response({"status": "success"})

    def names(self) -> set[str]:
        return {a["labels"].get("alertname", "") for a in self.received}

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@contextlib.asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[int]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


@pytest.fixture
async def alertmanager() -> AsyncIterator[FakeAlertManager]:
    fake = FakeAlertManager()
    app = web.Application()
    app.router.add_post("/api/v2/alerts", fake.alerts)
    async with serving(app) as port:
        fake.port = port
        yield fake


def mounted_config(directory: Path, text: str, version: int) -> Path:
    """Write config.yaml as the kubelet does: a new ..<version> dir and an atomic ..data swap."""
    data = directory / f"..v{version}"
    data.mkdir()
    (data / "config.yaml").write_text(text, encoding="utf-8")
    link = directory / "..data_tmp"
    link.symlink_to(data.name)
    os.replace(link, directory / "..data")
    target = directory / "config.yaml"
    if not target.is_symlink():
        target.symlink_to("..data/config.yaml")
    return target


@contextlib.asynccontextmanager
async def running(kube: KubeEmulator, options: Options) -> AsyncIterator[ControllerDaemon]:
    kube.api_client()
    api = kube.new_api_client()
    daemon = ControllerDaemon(api, options, watch_timeout=30)
    task = asyncio.create_task(daemon.run())
    try:
        yield daemon
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await api.close()


def alerting(tmp_path: Path, am: FakeAlertManager, name: str, config: Path | None, **extra: Any) -> Options:
    return Options(
        enable_alert=True,
        alert_manager_addr=am.address,
        dynamic_config=str(config) if config else None,
        metrics_store=str(tmp_path / f"{name}.duckdb"),
        sample_interval=0.05,
        config_poll_interval=0.05,
        identity=name,
        **extra,
    )


async def converged_pool(api: Cluster) -> None:
    await api.node("node-a", {"gpu": "true"})
    await api.create("tensorfusionclusters", spec_cluster())
    await api.hypervisor_reports("node-a", 2)
    await wait_for(
        lambda: api.get("gpupools", POOL),
        lambda p: p is not None and (p.get("status") or {}).get("phase") == "Running",
        timeout=6.0,
    )


async def test_rule_on_controller_samples_fires_from_the_leader_only(
    kube: KubeEmulator, alertmanager: FakeAlertManager, tmp_path: Path
) -> None:
    config = mounted_config(tmp_path, POOL_RULE, 1)
    ha = {"leader_elect": True, "lease_namespace": "default", **FAST}
    api = Cluster(kube)
    async with (
        running(kube, alerting(tmp_path, alertmanager, "a", config, **ha)) as a,
        running(kube, alerting(tmp_path, alertmanager, "b", config, **ha)) as b,
    ):
        await wait_for(lambda: _async([a, b]), lambda pair: any(d.is_leader() for d in pair))
        leader, follower = (a, b) if a.is_leader() else (b, a)
        await converged_pool(api)
        await wait_for(lambda: _async(alertmanager), lambda am: {"PoolHasNodes", "WatchDog"} <= am.names())
        fired = next(x for x in alertmanager.received if x["labels"]["alertname"] == "PoolHasNodes")
        assert fired["labels"]["instance"] == POOL
        assert fired["annotations"]["summary"] == f"pool {POOL} has 1 node(s), 242 TFLOPS"
        assert follower.observability is not None
        assert follower.observability.delivery is not None
        assert follower.observability.delivery.stats.sent == 0
        assert follower.observability.samples == 0
        assert follower.observability.evaluator is not None
        assert all(s.evaluations == 0 for s in follower.observability.evaluator.stats.rules.values())
        assert leader.observability is not None
        assert leader.observability.samples > 0


async def test_bad_config_is_rejected_and_old_rules_keep_running(
    kube: KubeEmulator, alertmanager: FakeAlertManager, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    constant = "FROM (SELECT 'p' AS pool, 1 AS node_count, 1.0 AS total_tflops)"
    always = POOL_RULE.replace("PoolHasNodes", "Always").replace("FROM tf_pool_metrics", constant)
    config = mounted_config(tmp_path, always, 1)
    async with running(kube, alerting(tmp_path, alertmanager, "solo", config)) as daemon:
        obs = daemon.observability
        assert obs is not None
        assert obs.reloader is not None
        assert obs.evaluator is not None
        await wait_for(lambda: _async(alertmanager), lambda am: "Always" in am.names())
        mounted_config(tmp_path, "alertRules:\n  - name: Broken\n    threshold: 1\n", 2)
        await wait_for(lambda: _async(obs.reloader), lambda r: r.rejected == 1)
        assert "Broken" in caplog.text
        assert "keeping the previous version" in caplog.text
        assert {r.name for r in obs.evaluator.rules} == {"Always", "WatchDog"}
        before = obs.evaluator.stats.rules["Always"].evaluations
        await wait_for(lambda: _async(obs.evaluator), lambda e: e.stats.rules["Always"].evaluations > before + 2)
        rejected = {m.name: m.samples[0].value for m in ObservabilityCollector(obs).collect() if m.samples}
        assert rejected["tf_config_rejected"] == 1

        mounted_config(tmp_path, "metricsTTL: 7d\n", 3)  # a good one: built-in rules, new TTL
        await wait_for(lambda: _async(obs.evaluator), lambda e: "Always" not in {r.name for r in e.rules})
        assert obs.reloader.reloads == 2  # the first version at start, then this one
        assert "GPUAllocationFailed" in {r.name for r in obs.evaluator.rules}
        assert obs.config.metrics_ttl.days == 7


BAD_CAST_RULE = """
  - name: BadCast
    query: |
      SELECT pool, CAST(pool AS INTEGER) AS n FROM tf_pool_metrics GROUP BY pool HAVING count(*) > {{ .Threshold }}
    threshold: 0
    evaluationInterval: 100ms
    severity: P3
    summary: "never"
"""


async def test_failing_rule_is_reported_and_the_others_run(
    kube: KubeEmulator, alertmanager: FakeAlertManager, tmp_path: Path
) -> None:
    config = mounted_config(tmp_path, POOL_RULE + BAD_CAST_RULE, 1)  # valid SQL; fails on the data at run time
    async with running(kube, alerting(tmp_path, alertmanager, "solo", config)) as daemon:
        obs = daemon.observability
        assert obs is not None
        assert obs.evaluator is not None
        await converged_pool(Cluster(kube))
        await wait_for(lambda: _async(alertmanager), lambda am: {"PoolHasNodes", "WatchDog"} <= am.names())
        await wait_for(lambda: _async(obs.evaluator), lambda e: e.stats.rules["BadCast"].failures > 1)
        assert "BadCast" not in alertmanager.names()
        assert "Could not convert" in obs.evaluator.stats.rules["BadCast"].last_error
        assert obs.evaluator.stats.rules["PoolHasNodes"].failures == 0
        failures = next(m for m in ObservabilityCollector(obs).collect() if m.name == "tf_alert_rule_failures")
        assert {s.labels["rule"]: s.value for s in failures.samples}["BadCast"] > 1


def test_greptime_env_selects_greptime_with_the_charts_settings(caplog: pytest.LogCaptureFixture) -> None:
    env = {
        "TF_GREPTIME_HOST": "greptimedb-standalone.greptimedb.svc.cluster.local",
        "TF_GREPTIME_PORT": "4001",
        "TF_GREPTIME_DB": "tensor_fusion",
        "TF_GREPTIME_USER": "admin",
        "TF_GREPTIME_PASSWORD": "s3cret-pw",
        "TF_GREPTIME_IS_CLOUD": "true",
        "TF_DYNAMIC_CONFIG": "/etc/tensor-fusion/config.yaml",
    }
    args = build_parser().parse_args(["controller", "-enable-alert", "-alert-manager-addr", "am:9093"])
    options = options_from(args, env)
    assert options.dynamic_config == "/etc/tensor-fusion/config.yaml"
    g = options.greptime
    assert g is not None
    assert (g.host, g.port, g.db, g.user, g.password, g.is_cloud) == (
        env["TF_GREPTIME_HOST"],
        4001,
        "tensor_fusion",
        "admin",
        "s3cret-pw",
        True,
    )
    assert g.base_url == "https://greptimedb-standalone.greptimedb.svc.cluster.local:4001"
    with caplog.at_level(logging.DEBUG):
        obs = Observability(options.observability(metrics=True), {}, lambda: True)
    assert isinstance(obs.store, GreptimeStore)
    assert "s3cret-pw" not in caplog.text


@settings(max_examples=200, deadline=None)
@given(port=st.text(max_size=8), cloud=st.text(max_size=6))
def test_greptime_env_is_accepted_or_rejected_by_name(port: str, cloud: str) -> None:
    env = {"TF_GREPTIME_HOST": "g", "TF_GREPTIME_PORT": port, "TF_GREPTIME_IS_CLOUD": cloud}
    port_text = port.strip() or "4000"
    port_ok = port_text.isascii() and port_text.isdigit() and 0 < int(port_text) <= 65535
    cloud_text = cloud.strip().lower()
    if not port_ok:
        with pytest.raises(ValidationError, match="TF_GREPTIME_PORT"):
            greptime_from_env(env)
    elif cloud_text not in ("", "0", "f", "false", "no", "off", "1", "t", "true", "yes", "on"):
        with pytest.raises(ValidationError, match="TF_GREPTIME_IS_CLOUD"):
            greptime_from_env(env)
    else:
        found = greptime_from_env(env)
        assert found is not None
        assert found.port == int(port_text)
        assert found.is_cloud == (cloud_text in ("1", "t", "true", "yes", "on"))


def test_flags_env_and_defaults(tmp_path: Path) -> None:
    parser = build_parser()
    for form in (["-dynamic-config", "/c.yaml"], ["--dynamic-config=/c.yaml"], ["-dynamic-config=/c.yaml"]):
        options = options_from(parser.parse_args(["controller", *form]), {"TF_DYNAMIC_CONFIG": "/env.yaml"})
        assert options.dynamic_config == "/c.yaml"  # the flag wins over the environment
    options = options_from(parser.parse_args(["controller", "-metrics-store", str(tmp_path / "m.duckdb")]), {})
    assert options.greptime is None
    assert options.metrics_store == str(tmp_path / "m.duckdb")
    assert options.dynamic_config is None
    assert default_store_path({"TF_STATE_DIR": str(tmp_path / "state")}) == str(
        tmp_path / "state" / "controller-metrics.duckdb"
    )
    with pytest.raises(ValidationError, match="TF_GREPTIME_PORT"):
        options_from(parser.parse_args(["controller"]), {"TF_GREPTIME_HOST": "g", "TF_GREPTIME_PORT": "http"})
    with pytest.raises(ValidationError, match="-alert-manager-addr"):
        options_from(parser.parse_args(["controller", "-enable-alert"]), {})


async def test_greptime_store_receives_samples_and_serves_rules(
    kube: KubeEmulator, alertmanager: FakeAlertManager, tmp_path: Path
) -> None:
    server = FakeGreptime()
    async with serving(server.app()) as port:
        env = {"TF_GREPTIME_HOST": "127.0.0.1", "TF_GREPTIME_PORT": str(port), "TF_GREPTIME_DB": "tfdb"}
        env |= {"TF_GREPTIME_USER": "user", "TF_GREPTIME_PASSWORD": "secret"}
        env["TF_DYNAMIC_CONFIG"] = str(mounted_config(tmp_path, POOL_RULE, 1))
        args = build_parser().parse_args(["controller", "-enable-alert", "-alert-manager-addr", alertmanager.address])
        base = options_from(args, env)
        options = Options(**{**_fields(base), "sample_interval": 0.05})
        async with running(kube, options) as daemon:
            await converged_pool(Cluster(kube))
            await wait_for(lambda: _async(alertmanager), lambda am: {"PoolHasNodes", "WatchDog"} <= am.names())
            obs = daemon.observability
            assert obs is not None
            assert isinstance(obs.store, GreptimeStore)
            await wait_for(lambda: _async(obs.writer), lambda w: w.stats.written > 0, timeout=5.0)
            rows = server.db.execute("SELECT pool, node_count FROM tf_pool_metrics WHERE node_count > 0").fetchall()
            assert (POOL, 1.0) in rows


async def test_store_down_does_not_stop_reconciliation(
    kube: KubeEmulator, alertmanager: FakeAlertManager, tmp_path: Path
) -> None:
    server = FakeGreptime(down=True)  # answers 503 to everything
    async with serving(server.app()) as port:
        env = {"TF_GREPTIME_HOST": "127.0.0.1", "TF_GREPTIME_PORT": str(port), "TF_GREPTIME_DB": "tfdb"}
        args = build_parser().parse_args(["controller", "-enable-alert", "-alert-manager-addr", alertmanager.address])
        options = Options(**{**_fields(options_from(args, env)), "sample_interval": 0.05})
        async with running(kube, options) as daemon:
            await converged_pool(Cluster(kube))  # reconciliation goes on
            obs = daemon.observability
            assert obs is not None
            assert obs.evaluator is not None
            await wait_for(lambda: _async(obs.writer), lambda w: w.stats.failed_writes > 0)
            await wait_for(lambda: _async(obs.evaluator), lambda e: e.stats.rules["WatchDog"].failures > 0)
            assert not obs.writer.healthy


async def test_unwritable_embedded_store_does_not_stop_reconciliation(
    kube: KubeEmulator, alertmanager: FakeAlertManager, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("", encoding="utf-8")
    options = alerting(tmp_path, alertmanager, "solo", None)
    options = Options(**{**_fields(options), "metrics_store": str(blocker / "m.duckdb")})
    async with running(kube, options) as daemon:
        await converged_pool(Cluster(kube))
        assert daemon.observability is not None
        assert not daemon.observability.store_opened.is_set()


def test_samples_carry_allocation_percents() -> None:
    node_status = {
        "totalTFlops": "200",
        "availableTFlops": "150",
        "totalVRAM": "40Gi",
        "availableVRAM": "30Gi",
        "virtualTFlops": "400",
        "virtualAvailableTFlops": "300",
        "virtualVRAM": "80Gi",
        "virtualAvailableVRAM": "40Gi",
        "managedGPUs": 2,
    }
    label = {"tensor-fusion.ai/gpupool": "p"}
    cache: dict[str, dict[str, dict[str, Any]]] = {
        "GPUPool": {"p": {"metadata": {"name": "p"}}},
        "GPUNode": {
            "n1": {"metadata": {"name": "n1", "labels": label}, "status": node_status},
            "n2": {"metadata": {"name": "n2", "labels": label}, "status": node_status},
        },
        "Pod": {
            "ns/w": {
                "metadata": {"annotations": {"tensor-fusion.ai/gpupool": "p"}},
                "spec": {"nodeName": "n1"},
                "status": {"phase": "Running"},
            },
            "ns/done": {
                "metadata": {"annotations": {"tensor-fusion.ai/gpupool": "p"}},
                "spec": {"nodeName": "n1"},
                "status": {"phase": "Succeeded"},
            },
        },
    }
    points = {(p.measurement, p.tags.get("node", "")): p for p in sample_points(cache, 7)}
    node = points[("tf_node_metrics", "n1")]
    assert node.tags == {"node": "n1", "pool": "p"}
    assert node.time_ns == 7
    assert node.fields["allocated_tflops_percent"] == 25.0
    assert node.fields["allocated_vram_percent"] == 25.0
    assert node.fields["allocated_tflops_percent_virtual"] == 25.0
    assert node.fields["allocated_vram_percent_virtual"] == 50.0
    assert node.fields["worker_count"] == 1
    assert node.fields["gpu_count"] == 2
    pool = points[("tf_pool_metrics", "")]
    assert pool.fields["total_tflops"] == 400.0
    assert pool.fields["allocated_tflops"] == 100.0
    assert pool.fields["node_count"] == 2
    assert pool.fields["gpu_count"] == 4
    assert pool.fields["worker_count"] == 1
    assert points[("tf_system_metrics", "")].fields == {"worker_count": 1}


def _fields(options: Options) -> dict[str, Any]:
    return {name: getattr(options, name) for name in Options.__slots__}


async def _async(value: Any) -> Any:
    return value
