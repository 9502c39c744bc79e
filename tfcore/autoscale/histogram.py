"""A decaying histogram with exponentially growing buckets (the VPA estimator's structure).

Bucket i covers [first * (g^i - 1) / (g - 1), first * (g^(i+1) - 1) / (g - 1)): with growth g = 1.05
every percentile is exact to within 5 % of its value whatever the scale. Each sample's weight
doubles every half-life of sample time, so older samples count half as much per half-life;
weights are kept relative to a reference instant that moves forward before they overflow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

GROWTH: Final = 1.05
_MAX_EXPONENT: Final = 100.0  # renormalise before weights reach 2**100
_EPSILON: Final = 1e-12


@dataclass(slots=True)
class DecayingHistogram:
    first_bucket: float  # width of the first bucket, in the sample's unit
    max_value: float
    half_life_s: float
    weights: list[float] = field(init=False)
    reference_s: float | None = field(default=None, init=False)
    count: int = field(default=0, init=False)  # samples ever added (the confidence rule counts these)
    _low: int = field(default=0, init=False)
    _high: int = field(default=-1, init=False)
    _total: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        if self.first_bucket <= 0 or self.max_value <= self.first_bucket or self.half_life_s <= 0:
            raise ValueError("first_bucket > 0, max_value > first_bucket and half_life_s > 0 are required")
        self.weights = [0.0] * (self._index(self.max_value) + 1)

    def _index(self, value: float) -> int:
        if value < self.first_bucket:
            return 0
        return int(math.log(value * (GROWTH - 1) / self.first_bucket + 1, GROWTH))

    def bucket(self, value: float) -> int:
        """The bucket a value falls in; values beyond max_value go to the last one."""
        return min(self._index(value), len(self.weights) - 1)

    def bucket_end(self, index: int) -> float:
        return self.first_bucket * (GROWTH ** (index + 1) - 1) / (GROWTH - 1)

    @property
    def empty(self) -> bool:
        return self._total <= _EPSILON

    def add(self, value: float, at_s: float, weight: float = 1.0) -> None:
        """Add a sample taken at `at_s` (seconds, any epoch). Negative values count as 0."""
        if not (weight > 0 and math.isfinite(value) and math.isfinite(at_s)):
            return
        if self.reference_s is None:
            self.reference_s = at_s
        exponent = (at_s - self.reference_s) / self.half_life_s
        if exponent > _MAX_EXPONENT:
            self._shift(at_s)
            exponent = 0.0
        scaled = weight * 2.0**exponent
        index = self.bucket(max(0.0, value))
        self.weights[index] += scaled
        self._total += scaled
        self.count += 1
        if self._high < self._low:
            self._low = self._high = index
        else:
            self._low = min(self._low, index)
            self._high = max(self._high, index)

    def _shift(self, new_reference_s: float) -> None:
        assert self.reference_s is not None
        factor = 2.0 ** ((self.reference_s - new_reference_s) / self.half_life_s)
        self.weights = [w * factor for w in self.weights]
        self._total *= factor
        self.reference_s = new_reference_s

    def percentile(self, p: float) -> float:
        """The smallest bucket end below which at least p of the weight lies; 0 when empty."""
        return self.percentiles((p,))[0]

    def percentiles(self, ps: Sequence[float]) -> list[float]:
        """percentile(p) for each p, in one pass over the buckets."""
        if self.empty:
            return [0.0] * len(ps)
        order = sorted(range(len(ps)), key=lambda i: ps[i])
        slack = _EPSILON * self._total
        results = [self.bucket_end(self._high)] * len(ps)
        running = 0.0
        weights = self.weights
        next_i = 0
        for index in range(self._low, self._high + 1):
            running += weights[index]
            while next_i < len(order) and running >= ps[order[next_i]] * self._total - slack:
                results[order[next_i]] = self.bucket_end(index)
                next_i += 1
            if next_i == len(order):
                break
        return results
