"""One workload's usage history: a compute histogram, a VRAM histogram of per-window peaks,
and the recent VRAM peak that the VRAM limit may never go below."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from tfcore.autoscale.histogram import DecayingHistogram
from tfcore.autoscale.settings import VRAM_PEAK_WINDOW, Settings

TFLOPS_FIRST_BUCKET: Final = 0.1
TFLOPS_MAX: Final = 1e4
VRAM_FIRST_BUCKET: Final = float(1024**2)
VRAM_MAX: Final = float(1024**4)


@dataclass(slots=True)
class WorkloadHistory:
    half_life_s: float
    history_s: float
    window_s: float = VRAM_PEAK_WINDOW.total_seconds()
    compute: DecayingHistogram = field(init=False)
    vram: DecayingHistogram = field(init=False)
    first_s: float | None = field(default=None, init=False)
    last_s: float | None = field(default=None, init=False)
    # worker -> (window index, peak bytes in it), flushed into `vram` when a later window starts
    _open: dict[str, tuple[int, float]] = field(default_factory=dict, init=False)
    # window index -> workload-wide peak, for closed windows within the history period
    _peaks: dict[int, float] = field(default_factory=dict, init=False)

    @classmethod
    def for_settings(cls, settings: Settings) -> WorkloadHistory:
        return cls(settings.half_life.total_seconds(), settings.history.total_seconds())

    def __post_init__(self) -> None:
        self.compute = DecayingHistogram(TFLOPS_FIRST_BUCKET, TFLOPS_MAX, self.half_life_s)
        self.vram = DecayingHistogram(VRAM_FIRST_BUCKET, VRAM_MAX, self.half_life_s)

    def add(self, worker: str, at_s: float, tflops: float, vram_bytes: float) -> None:
        """One sample of one worker (samples of a worker arrive in time order)."""
        self.first_s = at_s if self.first_s is None else min(self.first_s, at_s)
        self.last_s = at_s if self.last_s is None else max(self.last_s, at_s)
        self.compute.add(tflops, at_s)
        window = int(at_s // self.window_s)
        opened = self._open.get(worker)
        if opened is None or opened[0] == window:
            self._open[worker] = (window, max(vram_bytes, opened[1] if opened else 0.0))
            return
        self._close(*opened)
        self._open[worker] = (window, vram_bytes)

    def _close(self, window: int, peak: float) -> None:
        self.vram.add(peak, (window + 1) * self.window_s)
        self._peaks[window] = max(peak, self._peaks.get(window, 0.0))

    def flush(self, now_s: float) -> None:
        """Close the windows that ended before `now_s` (a worker that stopped reporting)."""
        current = int(now_s // self.window_s)
        for worker, (window, peak) in list(self._open.items()):
            if window < current:
                self._close(window, peak)
                del self._open[worker]
        oldest = int((now_s - self.history_s) // self.window_s)
        for stale in [w for w in self._peaks if w < oldest]:
            del self._peaks[stale]

    def vram_peak(self) -> float:
        """The highest VRAM use of the history period, open windows included."""
        closed = max(self._peaks.values(), default=0.0)
        return max(closed, max((p for _, p in self._open.values()), default=0.0))

    def span_s(self) -> float:
        return 0.0 if self.first_s is None or self.last_s is None else self.last_s - self.first_s
