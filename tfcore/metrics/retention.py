"""metricsTTL: periodically make each store forget rows older than the configured TTL."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from tfcore.metrics.store import MetricsStore, QueryFailed, StoreUnavailable

log = logging.getLogger(__name__)


async def run_retention(
    store: MetricsStore,
    ttl: Callable[[], timedelta],
    *,
    interval: float = 300.0,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> None:
    """Apply the current TTL every `interval` seconds until cancelled; a failing store is logged and retried."""
    while True:
        try:
            await store.apply_ttl(ttl(), clock())
        except (StoreUnavailable, QueryFailed) as exc:
            log.warning("applying metricsTTL failed, will retry in %.0fs: %s", interval, exc)
        await asyncio.sleep(interval)
