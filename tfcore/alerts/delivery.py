"""Delivery loop: moves alerts from the outbox to a transport (AlertManager), retrying.

Pure asyncio: the transport is injected (tfcore.web.alertmanager is the real one). A failed
send puts the batch back and waits with capped exponential backoff; the first success after
a failure re-queues every active alert, because the receiver may have restarted empty.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from tfcore.alerts.outbox import Outbox
from tfcore.alerts.state import Alert
from tfcore.metrics.batcher import Backoff

log = logging.getLogger(__name__)


class DeliveryFailed(Exception):
    """The receiver did not take the alerts; they will be retried."""


class AlertTransport(Protocol):
    async def send(self, alerts: Sequence[Alert]) -> None:
        """Raise DeliveryFailed when the alerts were not accepted."""
        ...


@dataclass(slots=True)
class DeliveryStats:
    sent: int = 0
    failed_attempts: int = 0


class AlertDelivery:
    def __init__(
        self,
        transport: AlertTransport,
        *,
        outbox: Outbox | None = None,
        batch_size: int = 500,
        backoff: Backoff | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.outbox = outbox or Outbox()
        self.stats = DeliveryStats()
        self._transport = transport
        self._batch_size = batch_size
        self._backoff = backoff or Backoff(initial=0.5, maximum=30.0)
        self._clock = clock
        self._wake = asyncio.Event()
        self._failures = 0

    @property
    def healthy(self) -> bool:
        return self._failures == 0

    def publish(self, alerts: Sequence[Alert]) -> None:
        """Queue alerts for delivery; never blocks."""
        if alerts:
            self.outbox.put(alerts)
            self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.outbox.pending:
                now = self._clock()
                batch = self.outbox.take(self._batch_size)
                try:
                    await self._transport.send([a.as_sent_at(now) for a in batch])
                except DeliveryFailed as exc:
                    self.outbox.give_back(batch)
                    self._failures += 1
                    self.stats.failed_attempts += 1
                    delay = self._backoff.delay(self._failures)
                    log.warning("alert delivery failed (attempt %d), retrying in %.1fs: %s", self._failures, delay, exc)
                    await asyncio.sleep(delay)
                    continue
                except asyncio.CancelledError:
                    self.outbox.give_back(batch)
                    raise
                self.stats.sent += len(batch)
                if self._failures:
                    log.info(
                        "alert delivery recovered after %d failed attempts; re-sending active alerts", self._failures
                    )
                    self._failures = 0
                    self.outbox.resync()
