"""The batching writer: batches, survives an unavailable store, bounded buffer drops oldest."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from tfcore.metrics.batcher import Backoff, BatchingWriter
from tfcore.metrics.lineproto import Point
from tfcore.metrics.store import StoreUnavailable, WriteResult


class FlakySink:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.batches: list[list[Point]] = []

    async def write(self, points: Sequence[Point]) -> WriteResult:
        if self.failures > 0:
            self.failures -= 1
            raise StoreUnavailable("down")
        self.batches.append(list(points))
        return WriteResult(len(points))


def pt(i: int) -> Point:
    return Point("m", {}, {"i": i}, i)


async def test_writes_in_batches_of_at_most_batch_size() -> None:
    sink = FlakySink(failures=0)
    writer = BatchingWriter(sink, batch_size=10, flush_interval=0.01)
    task = asyncio.create_task(writer.run())
    writer.submit_many(pt(i) for i in range(25))
    assert await writer.flush(timeout=2)
    task.cancel()
    assert [len(b) for b in sink.batches] == [10, 10, 5]
    assert [p.time_ns for b in sink.batches for p in b] == list(range(25))
    assert writer.stats.written == 25


async def test_unavailable_store_is_retried_and_nothing_is_lost_or_reordered() -> None:
    sink = FlakySink(failures=3)
    writer = BatchingWriter(sink, batch_size=100, flush_interval=0.01, backoff=Backoff(initial=0.001, maximum=0.01))
    task = asyncio.create_task(writer.run())
    writer.submit_many(pt(i) for i in range(50))
    assert await writer.flush(timeout=2)
    task.cancel()
    assert [p.time_ns for b in sink.batches for p in b] == list(range(50))
    assert writer.stats.failed_writes == 3
    assert writer.healthy


async def test_full_buffer_drops_the_oldest_and_counts_them() -> None:
    sink = FlakySink(failures=10**9)
    writer = BatchingWriter(sink, max_buffer=100, batch_size=30, flush_interval=0.01, backoff=Backoff(0.001, 0.005))
    task = asyncio.create_task(writer.run())
    for i in range(1000):
        writer.submit(pt(i))  # never blocks, never raises
        if i % 100 == 0:
            await asyncio.sleep(0.002)
    assert writer.buffered == 100
    assert writer.stats.dropped == 900
    assert not writer.healthy
    sink.failures = 0
    assert await writer.flush(timeout=2)
    task.cancel()
    assert [p.time_ns for b in sink.batches for p in b] == list(range(900, 1000))
