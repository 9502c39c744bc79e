"""Every daemon's /metrics handler and the TF_LOG_LEVEL / TF_LOG_FORMAT setup."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import timedelta

import aiohttp
import pytest
from aiohttp import web

from tfcore.alerts.delivery import AlertDelivery
from tfcore.alerts.evaluator import AlertEvaluator
from tfcore.logs import TRACE, setup_logging
from tfcore.metrics.batcher import BatchingWriter
from tfcore.metrics.embedded import DuckDBStore
from tfcore.model.errors import ValidationError
from tfcore.web.metrics import AlertingCollector, WriterCollector, add_metrics_route, new_registry


class NullTransport:
    async def send(self, alerts: object) -> None:
        return None


async def test_metrics_endpoint_exposes_pipeline_counters() -> None:
    store = await DuckDBStore(":memory:").open()
    writer = BatchingWriter(store)
    delivery = AlertDelivery(NullTransport())
    evaluator = AlertEvaluator(store, delivery.publish, lambda: True, resend_interval=timedelta(seconds=1))
    registry = new_registry()
    registry.register(WriterCollector(writer))
    registry.register(AlertingCollector(evaluator, delivery))
    app = web.Application()
    add_metrics_route(app, registry)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/metrics"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = await response.text()
        assert "tf_metrics_points_dropped_total 0.0" in text
        assert "tf_metrics_store_up 1.0" in text
        assert "tf_alerts_pending 0.0" in text
    finally:
        await runner.cleanup()
        await store.close()


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_root_logger")
@pytest.mark.parametrize(
    ("value", "level"), [("trace", TRACE), ("debug", 10), ("INFO", 20), ("warn", 30), ("error", 40)]
)
def test_tf_log_level_sets_the_root_level(value: str, level: int) -> None:
    assert setup_logging({"TF_LOG_LEVEL": value}, stream=io.StringIO()) == level
    assert logging.getLogger("tfcore.any.component").getEffectiveLevel() == level


@pytest.mark.usefixtures("restore_root_logger")
def test_json_format_writes_one_object_per_line() -> None:
    out = io.StringIO()
    setup_logging({"TF_LOG_LEVEL": "info", "TF_LOG_FORMAT": "json"}, stream=out)
    logging.getLogger("tfcore.test").info("hello %s", "world", extra={"rule": "Hot"})
    entry = json.loads(out.getvalue().splitlines()[-1])
    assert (entry["level"], entry["logger"], entry["message"], entry["rule"]) == (
        "info",
        "tfcore.test",
        "hello world",
        "Hot",
    )


@pytest.mark.usefixtures("restore_root_logger")
def test_bad_values_name_the_variable() -> None:
    with pytest.raises(ValidationError, match="TF_LOG_LEVEL: unknown log level 'loud'"):
        setup_logging({"TF_LOG_LEVEL": "loud"})
    with pytest.raises(ValidationError, match="TF_LOG_FORMAT"):
        setup_logging({"TF_LOG_FORMAT": "xml"})
