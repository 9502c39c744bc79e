"""Prometheus /metrics for every daemon, and collectors for the observability pipeline itself.

Each daemon owns a CollectorRegistry (no process-global state), registers what it wants, and
mounts `add_metrics_route(app, registry)`.
"""

from __future__ import annotations

from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tfcore.alerts.delivery import AlertDelivery
from tfcore.alerts.evaluator import AlertEvaluator
from tfcore.metrics.batcher import BatchingWriter

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REGISTRY_KEY: web.AppKey[CollectorRegistry] = web.AppKey("tf_metrics_registry", CollectorRegistry)


async def metrics_handler(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY_KEY]
    return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE})


def add_metrics_route(app: web.Application, registry: CollectorRegistry, path: str = "/metrics") -> None:
    app[REGISTRY_KEY] = registry
    app.router.add_get(path, metrics_handler)


class WriterCollector(Collector):
    """The batching writer's counters: what was written, dropped (buffer full) or rejected."""

    def __init__(self, writer: BatchingWriter) -> None:
        self._writer = writer

    def collect(self) -> Iterator[Metric]:
        stats = self._writer.stats
        for name, value, text in (
            ("tf_metrics_points_submitted", stats.submitted, "Points handed to the metrics writer."),
            ("tf_metrics_points_written", stats.written, "Points the metrics store accepted."),
            ("tf_metrics_points_dropped", stats.dropped, "Oldest points evicted from a full buffer."),
            ("tf_metrics_points_rejected", stats.rejected, "Points the store refused for good."),
            ("tf_metrics_write_failures", stats.failed_writes, "Batches that met an unavailable store."),
        ):
            yield CounterMetricFamily(name, text, value=value)
        yield GaugeMetricFamily(
            "tf_metrics_points_buffered", "Points waiting to be written.", value=self._writer.buffered
        )
        yield GaugeMetricFamily(
            "tf_metrics_store_up", "1 while the last write succeeded.", value=int(self._writer.healthy)
        )


class AlertingCollector(Collector):
    """Rule evaluations and failures per rule, and delivery to AlertManager."""

    def __init__(self, evaluator: AlertEvaluator, delivery: AlertDelivery) -> None:
        self._evaluator = evaluator
        self._delivery = delivery

    def collect(self) -> Iterator[Metric]:
        evaluations = CounterMetricFamily("tf_alert_rule_evaluations", "Rule evaluations.", labels=["rule"])
        failures = CounterMetricFamily("tf_alert_rule_failures", "Rule evaluations that failed.", labels=["rule"])
        for name, stats in self._evaluator.stats.rules.items():
            evaluations.add_metric([name], stats.evaluations)
            failures.add_metric([name], stats.failures)
        yield evaluations
        yield failures
        yield CounterMetricFamily("tf_alerts_sent", "Alerts accepted by AlertManager.", value=self._delivery.stats.sent)
        yield CounterMetricFamily(
            "tf_alert_delivery_failures", "Failed sends to AlertManager.", value=self._delivery.stats.failed_attempts
        )
        yield GaugeMetricFamily(
            "tf_alerts_pending", "Alerts waiting for delivery.", value=len(self._delivery.outbox.pending)
        )


def new_registry() -> CollectorRegistry:
    return CollectorRegistry(auto_describe=True)
