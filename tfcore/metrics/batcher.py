"""Batching writer: daemons hand points over without waiting; a background task writes them.

`submit` never blocks and never raises for a full buffer: the buffer is bounded and, when
the store is away long enough to fill it, the oldest points go first (counted in `dropped`)
so memory stays flat and the freshest data survives. A failing store is retried with capped,
jittered exponential backoff; the daemon keeps running either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from tfcore.metrics.lineproto import Point
from tfcore.metrics.store import StoreUnavailable, WriteResult

log = logging.getLogger(__name__)


class PointSink(Protocol):
    async def write(self, points: Sequence[Point]) -> WriteResult: ...


@dataclass(slots=True)
class WriterStats:
    submitted: int = 0
    written: int = 0
    dropped: int = 0  # evicted from a full buffer (oldest first)
    rejected: int = 0  # refused by the store for good (type conflicts)
    failed_writes: int = 0  # batches that hit an unavailable store (and were retried)


@dataclass(frozen=True, slots=True)
class Backoff:
    initial: float = 0.2
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.2  # +-20%

    def delay(self, attempt: int) -> float:
        base = min(self.maximum, self.initial * self.factor ** max(0, attempt - 1))
        return base * random.uniform(1 - self.jitter, 1 + self.jitter)


class BatchingWriter:
    def __init__(
        self,
        sink: PointSink,
        *,
        max_buffer: int = 200_000,
        batch_size: int = 5_000,
        flush_interval: float = 1.0,
        backoff: Backoff | None = None,
    ) -> None:
        if max_buffer < 1 or batch_size < 1 or flush_interval <= 0:
            raise ValueError("max_buffer and batch_size must be >= 1 and flush_interval > 0")
        self._sink = sink
        self._buffer: deque[Point] = deque()
        self._max_buffer = max_buffer
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._backoff = backoff or Backoff()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._failures = 0
        self.stats = WriterStats()

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    @property
    def healthy(self) -> bool:
        """False while the store is failing (and points are piling up)."""
        return self._failures == 0

    def submit(self, point: Point) -> None:
        self.submit_many((point,))

    def submit_many(self, points: Iterable[Point]) -> None:
        before = len(self._buffer)
        self._buffer.extend(points)
        self.stats.submitted += len(self._buffer) - before
        self._evict_overflow()
        if self._buffer:
            self._idle.clear()
        if len(self._buffer) >= self._batch_size:
            self._wake.set()

    def _evict_overflow(self) -> None:
        overflow = len(self._buffer) - self._max_buffer
        if overflow > 0:
            for _ in range(overflow):
                self._buffer.popleft()
            self.stats.dropped += overflow
            log.warning("metrics buffer full (%d points): dropped the %d oldest", self._max_buffer, overflow)

    async def run(self) -> None:
        """Write batches until cancelled."""
        while True:
            if not self._buffer:
                self._idle.set()
            with contextlib.suppress(TimeoutError):  # asyncio.timeout: a cancel is never swallowed
                async with asyncio.timeout(self._flush_interval):
                    await self._wake.wait()
            self._wake.clear()
            while self._buffer:
                if not await self._write_one_batch():
                    await asyncio.sleep(self._backoff.delay(self._failures))
                    break

    async def _write_one_batch(self) -> bool:
        batch = [self._buffer.popleft() for _ in range(min(self._batch_size, len(self._buffer)))]
        try:
            result = await self._sink.write(batch)
        except StoreUnavailable as exc:
            self._failures += 1
            self.stats.failed_writes += 1
            self._buffer.extendleft(reversed(batch))  # back in front, in order: they are the oldest
            self._evict_overflow()
            log.warning(
                "metrics store unavailable (attempt %d), %d points buffered: %s", self._failures, len(self._buffer), exc
            )
            return False
        except asyncio.CancelledError:
            self._buffer.extendleft(reversed(batch))
            raise
        if self._failures:
            log.info("metrics store is back after %d failed attempts", self._failures)
        self._failures = 0
        self.stats.written += result.written
        self.stats.rejected += len(result.rejected)
        for rejected in result.rejected[:5]:
            log.warning("metrics point rejected (%s): %s", rejected.reason, rejected.point.measurement)
        return True

    async def flush(self, timeout: float) -> bool:
        """Ask for an immediate write and wait up to `timeout` for an empty buffer."""
        if not self._buffer:
            return True
        self._idle.clear()
        self._wake.set()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True
