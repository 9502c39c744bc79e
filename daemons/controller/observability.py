"""The controller's observability: dynamic config, metrics store, allocation samples, alerts.

Wiring only (the pieces live in tfcore): the dynamic config (TF_DYNAMIC_CONFIG) is reloaded
live and a bad version keeps the old one; the store is GreptimeDB when TF_GREPTIME_HOST is
set, else the embedded DuckDB file; metricsTTL is applied by run_retention; while leader, the
controller samples what it reconciles into tf_node_metrics / tf_pool_metrics /
tf_system_metrics and (with -enable-alert) evaluates the rules and delivers to AlertManager.
A store that is down is retried in the background: it never stops reconciliation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from tfcore.alerts.delivery import AlertDelivery
from tfcore.alerts.evaluator import AlertEvaluator
from tfcore.config import env as environment
from tfcore.config.dynamic import DynamicConfig, parse_dynamic_config
from tfcore.config.reload import ConfigReloader
from tfcore.k8s import Obj
from tfcore.metrics.batcher import Backoff, BatchingWriter
from tfcore.metrics.embedded import DuckDBStore
from tfcore.metrics.lineproto import Point
from tfcore.metrics.retention import run_retention
from tfcore.metrics.store import MetricsStore, QueryFailed, StoreUnavailable
from tfcore.model.annotations import GPU_POOL  # pod annotation and GPUNode label naming the pool
from tfcore.operator.capacity import Totals
from tfcore.web.alertmanager import AlertManagerClient
from tfcore.web.greptime import GreptimeSettings, GreptimeStore
from tfcore.web.metrics import AlertingCollector, WriterCollector

log = logging.getLogger(__name__)

ENV_DYNAMIC_CONFIG = environment.DYNAMIC_CONFIG.name
ENV_STATE_DIR = environment.STATE_DIR.name
DEFAULT_STATE_DIR = Path("/var/lib/tensor-fusion")
STORE_FILE = "controller-metrics.duckdb"


def default_store_path(env: Mapping[str, str]) -> str:
    """$TF_STATE_DIR, else /var/lib/tensor-fusion when writable, else a temp dir (with a warning)."""
    for base in (env.get(ENV_STATE_DIR), str(DEFAULT_STATE_DIR)):
        if not base:
            continue
        with contextlib.suppress(OSError):
            Path(base).mkdir(parents=True, exist_ok=True)
            if os.access(base, os.W_OK):
                return str(Path(base) / STORE_FILE)
    fallback = Path(tempfile.gettempdir()) / "tensor-fusion" / STORE_FILE
    log.warning("no writable state dir (set %s): metrics go to %s, lost on restart", ENV_STATE_DIR, fallback)
    return str(fallback)


@dataclass(frozen=True, slots=True)
class ObservabilitySettings:
    dynamic_config: str | None = None  # path of config.yaml; None: built-in rules
    metrics: bool = False  # keep metrics at all (the CLI always does; tests of other features do not)
    metrics_store: str | None = None  # DuckDB file (ignored when greptime is set); None: default_store_path
    greptime: GreptimeSettings | None = None
    enable_alert: bool = False
    alert_manager_addr: str = ""
    sample_interval: float = 15.0
    config_poll_interval: float = 2.0
    retention_interval: float = 300.0

    @property
    def enabled(self) -> bool:
        return bool(self.metrics or self.enable_alert or self.metrics_store or self.greptime)


def allocation_fields(totals: Totals) -> dict[str, float | int]:
    """The tf_*_metrics allocation fields from capacity totals (milli-TFLOPS and bytes)."""
    used_tflops = max(0, totals.tflops - totals.available_tflops)
    used_vram = max(0, totals.vram - totals.available_vram)
    used_virtual_tflops = max(0, totals.virtual_tflops - totals.virtual_available_tflops)
    used_virtual_vram = max(0, totals.virtual_vram - totals.virtual_available_vram)
    return {
        "total_tflops": totals.tflops / 1000,
        "total_vram_bytes": totals.vram,
        "virtual_tflops": totals.virtual_tflops / 1000,
        "virtual_vram_bytes": totals.virtual_vram,
        "allocated_tflops": used_tflops / 1000,
        "allocated_vram_bytes": used_vram,
        "allocated_tflops_percent": _percent(used_tflops, totals.tflops),
        "allocated_vram_percent": _percent(used_vram, totals.vram),
        "allocated_tflops_percent_virtual": _percent(used_virtual_tflops, totals.virtual_tflops),
        "allocated_vram_percent_virtual": _percent(used_virtual_vram, totals.virtual_vram),
    }


def _percent(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 3) if whole > 0 else 0.0


def sample_points(cache: Mapping[str, Mapping[str, Mapping[str, Any]]], time_ns: int) -> list[Point]:
    """One sample of the controller's view: a point per GPUNode, per GPUPool and per pool's workers."""
    pools = set(cache.get("GPUPool", {}))
    workers_by_node: Counter[str] = Counter()
    workers_by_pool: Counter[str] = Counter()
    for raw in cache.get("Pod", {}).values():
        pod = Obj(raw)
        if pod.meta.deleting or pod.status.get("phase") in ("Succeeded", "Failed"):
            continue
        pool = str(pod.meta.annotations.get(GPU_POOL) or "")
        if pool:
            workers_by_pool[pool] += 1
        node = str(pod.spec.get("nodeName") or "")
        if node:
            workers_by_node[node] += 1
    pool_totals: dict[str, Totals] = {name: Totals() for name in pools}
    pool_nodes: Counter[str] = Counter()
    pool_gpus: Counter[str] = Counter()
    points: list[Point] = []
    for name, raw_gpunode in sorted(cache.get("GPUNode", {}).items()):
        gpunode = Obj(raw_gpunode)
        status = gpunode.status
        pool = str(gpunode.meta.labels.get(GPU_POOL) or "")
        totals = Totals()
        totals.add_status(status)
        gpus = int(status.get("managedGPUs") or 0)
        fields = {**allocation_fields(totals), "gpu_count": gpus, "worker_count": workers_by_node[name]}
        points.append(Point("tf_node_metrics", {"node": name, "pool": pool}, fields, time_ns))
        if pool in pool_totals:
            pool_totals[pool].add(totals)
            pool_nodes[pool] += 1
            pool_gpus[pool] += gpus
    for pool, totals in sorted(pool_totals.items()):
        fields = {
            **allocation_fields(totals),
            "gpu_count": pool_gpus[pool],
            "worker_count": workers_by_pool[pool],
            "node_count": pool_nodes[pool],
        }
        points.append(Point("tf_pool_metrics", {"pool": pool}, fields, time_ns))
        points.append(Point("tf_system_metrics", {"pool": pool}, {"worker_count": workers_by_pool[pool]}, time_ns))
    return points


class Observability:
    """Everything observability runs in the controller, as one background task."""

    def __init__(
        self,
        settings: ObservabilitySettings,
        cache: Mapping[str, Mapping[str, Mapping[str, Any]]],
        is_leader: Callable[[], bool],
        *,
        store: MetricsStore | None = None,
    ) -> None:
        self.settings = settings
        self._cache = cache
        self._is_leader = is_leader
        self.config: DynamicConfig = parse_dynamic_config("", where="built-in")
        self.store: MetricsStore = store or self._make_store()
        self.store_opened = asyncio.Event()  # set once the store is usable (the autoscaler waits on it)
        self.writer = BatchingWriter(self.store, max_buffer=50_000, batch_size=2_000)
        self.reloader: ConfigReloader[DynamicConfig] | None = None
        if settings.dynamic_config:
            self.reloader = ConfigReloader(
                settings.dynamic_config,
                lambda text: parse_dynamic_config(text, where=settings.dynamic_config or "config.yaml"),
                self._apply,
                poll_interval=settings.config_poll_interval,
                name="dynamic config",
            )
        self.client: AlertManagerClient | None = None
        self.delivery: AlertDelivery | None = None
        self.evaluator: AlertEvaluator | None = None
        if settings.enable_alert:
            self.client = AlertManagerClient(settings.alert_manager_addr)
            self.delivery = AlertDelivery(self.client)
            self.evaluator = AlertEvaluator(self.store, self.delivery.publish, is_leader)
        self.rules_rejected = 0
        self.samples = 0

    def _make_store(self) -> MetricsStore:
        if self.settings.greptime is not None:
            g = self.settings.greptime
            log.info("metrics store: GreptimeDB %s db=%s user=%s", g.base_url, g.db, g.user or "(none)")
            return GreptimeStore(g, ttl=self.config.metrics_ttl)
        path = self.settings.metrics_store or default_store_path(os.environ)
        log.info("metrics store: embedded DuckDB %s", path)
        return DuckDBStore(path)

    async def _apply(self, config: DynamicConfig) -> None:
        self.config = config
        if self.evaluator is not None:
            problems = await self.evaluator.set_rules(config.alert_rules)
            self.rules_rejected += len(problems)

    async def run(self) -> None:
        """Until cancelled; on the way out, flush what is buffered and close the store."""
        try:
            await self._open_store()
            if self.reloader is not None:
                await self.reloader.check()  # a missing or bad file is logged: built-in rules stay
            if self.evaluator is not None and not self.evaluator.rules:
                await self._apply(self.config)
            async with asyncio.TaskGroup() as group:
                group.create_task(self.writer.run())
                group.create_task(self._sample_loop())
                group.create_task(run_retention(self.store, lambda: self.config.metrics_ttl))
                if self.reloader is not None:
                    group.create_task(self.reloader.run())
                if self.evaluator is not None and self.delivery is not None:
                    group.create_task(self.evaluator.run())
                    group.create_task(self.delivery.run())
        finally:
            await self._close()

    async def _open_store(self) -> None:
        """The embedded store opens its file; retried with backoff so a bad volume never stops the controller."""
        if isinstance(self.store, GreptimeStore):
            # Tables first, so that rules are checked against them; a server that is down is
            # not waited for (its writer retries, and rules are then installed unchecked).
            with contextlib.suppress(StoreUnavailable, QueryFailed):
                await self.store.ensure_tables()
            self.store_opened.set()
            return
        if not isinstance(self.store, DuckDBStore):
            self.store_opened.set()
            return
        backoff = Backoff(initial=1.0, maximum=60.0)
        attempt = 0
        while True:
            try:
                await self.store.open()
                self.store_opened.set()
                return
            except (StoreUnavailable, OSError) as exc:
                attempt += 1
                delay = backoff.delay(attempt)
                log.error("metrics store unavailable (attempt %d), retrying in %.0fs: %s", attempt, delay, exc)
                await asyncio.sleep(delay)

    async def _sample_loop(self) -> None:
        while True:
            if self._is_leader():
                self.writer.submit_many(sample_points(self._cache, time.time_ns()))
                self.samples += 1
            await asyncio.sleep(self.settings.sample_interval)

    async def _drain(self, *, timeout: float) -> None:
        """Write what is buffered (bounded: a store that is down must not hold up the exit)."""
        writer = asyncio.create_task(self.writer.run())
        try:
            if not await self.writer.flush(timeout):
                log.warning("shutdown: %d metrics points not written", self.writer.buffered)
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    async def _close(self) -> None:
        if self.store_opened.is_set() and self.writer.buffered:
            await self._drain(timeout=2.0)
        if self.client is not None:
            await self.client.close()
        with contextlib.suppress(Exception):
            await self.store.close()


class ObservabilityCollector(Collector):
    """Config reloads and rule rejections; the store and alerting through tfcore.web.metrics' collectors."""

    def __init__(self, obs: Observability) -> None:
        self.obs = obs
        self._parts: list[Collector] = [WriterCollector(obs.writer)]
        if obs.evaluator is not None and obs.delivery is not None:
            self._parts.append(AlertingCollector(obs.evaluator, obs.delivery))

    def collect(self) -> Iterator[Metric]:
        reloader = self.obs.reloader
        reloads = reloader.reloads if reloader else 0
        rejected = reloader.rejected if reloader else 0
        yield CounterMetricFamily("tf_config_reloads", "Dynamic config versions applied.", value=reloads)
        yield CounterMetricFamily(
            "tf_config_rejected", "Dynamic config versions rejected (the previous one stayed).", value=rejected
        )
        yield CounterMetricFamily(
            "tf_alert_rules_rejected", "Alert rules rejected against the store's schema.", value=self.obs.rules_rejected
        )
        yield CounterMetricFamily("tf_controller_metric_samples", "Allocation samples taken.", value=self.obs.samples)
        for part in self._parts:
            yield from part.collect()
