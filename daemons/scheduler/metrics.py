"""The scheduler's Prometheus metrics: extender and admin decisions, their latency, filter
rejections by reason, and what is allocated per pool (read from the allocator at scrape time).

Label values are bounded: verbs, results, and rejection reasons as plugin/stage (never a node
or pod name).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tfcore.sched.allocator import Allocator
from tfcore.web.metrics import new_registry

VERBS: Final = ("filter", "prioritize", "bind", "simulate")
RESULTS: Final = ("ok", "error")
# Sub-millisecond resolution: a cached extender call takes well under a millisecond.
LATENCY_BUCKETS: Final = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class SchedulerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else new_registry()
        self.decisions = Counter(
            "tf_scheduler_decisions",
            "Scheduler calls by verb (filter, prioritize, bind, simulate) and result (ok, or error: "
            "refused, bad pod, API failure).",
            ["verb", "result"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tf_scheduler_decision_seconds",
            "Time to answer a scheduler call, by verb (body decoding to reply encoding; bind includes the API writes).",
            ["verb"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.rejections = Counter(
            "tf_scheduler_filter_rejections",
            "Nodes the extender filter rejected, by reason (plugin/stage).",
            ["reason"],
            registry=self.registry,
        )
        # Bound children: .labels() is a dict lookup plus locking we do not need per call.
        self._decided = {(v, r): self.decisions.labels(v, r) for v in VERBS for r in RESULTS}
        self._timed = {v: self.latency.labels(v) for v in VERBS}

    def observe(self, verb: str, seconds: float, ok: bool) -> None:
        self._decided[verb, "ok" if ok else "error"].inc()
        self._timed[verb].observe(seconds)

    def rejected(self, reasons: Mapping[str, int]) -> None:
        for reason, count in reasons.items():
            self.rejections.labels(reason).inc(count)

    def watch_allocator(self, allocator: Allocator) -> None:
        self.registry.register(PoolCollector(allocator))


class PoolCollector(Collector):
    """Per pool: GPUs, virtual capacity, allocated requests and limits, workers."""

    def __init__(self, allocator: Allocator) -> None:
        self._allocator = allocator

    def collect(self) -> Iterator[Metric]:
        families = {
            key: GaugeMetricFamily(f"tf_scheduler_pool_{key}", text, labels=["pool"])
            for key, text in (
                ("gpus", "GPUs the scheduler knows in the pool."),
                ("tflops_capacity", "Virtual TFLOPS of the pool (after tflopsOversellRatio)."),
                ("vram_capacity_bytes", "Virtual VRAM of the pool in bytes (with host memory/disk expansion)."),
                ("tflops_allocated", "TFLOPS requested by the pods placed in the pool."),
                ("vram_allocated_bytes", "VRAM requested by the pods placed in the pool, in bytes."),
                ("tflops_limit_allocated", "TFLOPS limits of the pods placed in the pool."),
                ("vram_limit_allocated_bytes", "VRAM limits of the pods placed in the pool, in bytes."),
                ("workers", "Pods holding GPUs of the pool."),
            )
        }
        totals: dict[str, list[float]] = {}
        workers: dict[str, set[str]] = {}
        for gpu in self._allocator.gpus.values():
            pool = gpu.pool.name
            row = totals.setdefault(pool, [0.0] * 7)
            row[0] += 1
            row[1] += gpu.virtual_tflops / 1000
            row[2] += gpu.virtual_vram
            row[3] += gpu.used_tflops / 1000
            row[4] += gpu.used_vram
            row[5] += gpu.limit_tflops / 1000
            row[6] += gpu.limit_vram
            workers.setdefault(pool, set()).update(gpu.workers)
        keys = list(families)
        for pool, row in sorted(totals.items()):
            for key, value in zip(keys, row, strict=False):
                families[key].add_metric([pool], value)
            families["workers"].add_metric([pool], len(workers[pool]))
        yield from families.values()
