"""CPU-heavy request work (parsing large bodies) off the event loop, within bounds.

A daemon's loop also serves latency-sensitive routes (the scheduler's extender shares its
loop with the admin API): parsing eight 1 MiB YAML bodies on it held extender calls up for
seconds. Large bodies go to one worker process (a thread would still hold the GIL), at most
`concurrency` at a time with `waiting` more queued; beyond that the route answers 429 with
Retry-After rather than queueing without bound. Small bodies are parsed inline: a process
round trip would cost more than the parse.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from typing import Any, Final, TypeVar

from tfcore.web.app import HTTPProblem

T = TypeVar("T")
INLINE_BELOW: Final = 64 * 1024


class Offload:
    """Runs `func(data, *args)` in a worker process when `data` is large (see module doc)."""

    def __init__(self, *, concurrency: int = 2, waiting: int = 8, inline_below: int = INLINE_BELOW) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self._limit = concurrency + waiting
        self._inline_below = inline_below
        self._admitted = 0
        self._pool: ProcessPoolExecutor | None = None
        self._workers = concurrency

    async def run(self, func: Callable[..., T], data: bytes, *args: Any, **kwargs: Any) -> T:
        if len(data) < self._inline_below:
            return func(data, *args, **kwargs)
        if self._admitted >= self._limit:
            message = f"{self._admitted} large requests are being parsed already; retry shortly"
            raise HTTPProblem(429, message, headers={"Retry-After": "1"})
        self._admitted += 1
        try:
            async with self._slots:
                return await asyncio.get_running_loop().run_in_executor(
                    self._executor(), partial(func, data, *args, **kwargs)
                )
        except BrokenProcessPool:  # the worker died (OOM-killed, say): start a new one next time
            self._pool = None
            raise HTTPProblem(503, "the body parser process died; retry") from None
        finally:
            self._admitted -= 1

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn, not fork: the daemon has threads (and uvloop) that a fork would copy mid-flight.
            self._pool = ProcessPoolExecutor(self._workers, mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
