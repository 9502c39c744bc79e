"""Launch cost admitted over a past interval, from cumulative counters sampled at each tick.

NVML reports utilization for a period that ended some time ago (the last complete sample
period); the feed-forward gain must divide that utilization by the cost admitted over the
*same* period, not over the last tick, or lag shows up as a wrong gain.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque


class CostHistory:
    """(time, cumulative cost) points, oldest dropped beyond `keep` points."""

    def __init__(self, keep: int = 64) -> None:
        self._points: deque[tuple[float, int]] = deque(maxlen=keep)

    def add(self, t: float, cumulative: int) -> None:
        if self._points and t <= self._points[-1][0]:
            return
        self._points.append((t, cumulative))

    def _at(self, t: float) -> float | None:
        points = self._points
        if not points or t < points[0][0] or t > points[-1][0]:
            return None
        times = [p[0] for p in points]
        i = bisect_left(times, t)
        if times[i] == t:
            return float(points[i][1])
        (t0, c0), (t1, c1) = points[i - 1], points[i]
        return c0 + (c1 - c0) * (t - t0) / (t1 - t0)

    def rate(self, start: float, end: float) -> float | None:
        """Cost per second admitted in [start, end], interpolated; None if not covered."""
        if end <= start:
            return None
        a, b = self._at(start), self._at(end)
        if a is None or b is None:
            return None
        return (b - a) / (end - start)

    def latest_rate(self, span: float) -> float | None:
        if not self._points:
            return None
        end = self._points[-1][0]
        return self.rate(max(self._points[0][0], end - span), end)
