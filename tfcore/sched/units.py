"""Exact integer units of the allocator: milli-TFLOPS and bytes.

Why integers and not Quantity: every decision adds and compares amounts thousands of times per
second, and Python ints are exact *and* ~50x faster than Fraction arithmetic. Milli-TFLOPS is
the finest compute precision a user can write that Kubernetes keeps (``1500m`` is 1.5 TFLOPS);
finer requests are rounded *up* and capacities *down*, so rounding can never over-allocate.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Final, Protocol

from tfcore.model.annotations import WorkloadRequest
from tfcore.model.quantity import Quantity

MILLI: Final = 1000
PPM: Final = 1_000_000  # compute-percent requests are held in parts per million of a GPU


def _ceil(value: Fraction) -> int:
    return -((-value.numerator) // value.denominator)


def _floor(value: Fraction) -> int:
    return value.numerator // value.denominator


def request_milli_tflops(quantity: Quantity) -> int:
    """A TFLOPS request or limit in milli-TFLOPS, rounded up."""
    return _ceil(quantity.value * MILLI)


def capacity_milli_tflops(quantity: Quantity) -> int:
    """A TFLOPS capacity in milli-TFLOPS, rounded down."""
    return max(0, _floor(quantity.value * MILLI))


def request_bytes(quantity: Quantity) -> int:
    return _ceil(quantity.value)


def capacity_bytes(quantity: Quantity) -> int:
    return max(0, _floor(quantity.value))


def percent_ppm(quantity: Quantity) -> int:
    """A compute percentage (0 < p <= 100) as parts per million of one GPU, rounded up."""
    return _ceil(quantity.value * (PPM // 100))


class Ask(Protocol):
    """What a request states about amounts, in exact units (PodRequest and AskedAmounts have these)."""

    @property
    def tflops(self) -> int: ...  # milli-TFLOPS
    @property
    def tflops_limit(self) -> int: ...
    @property
    def percent_ppm(self) -> int: ...  # parts per million of a GPU's rated TFLOPS
    @property
    def percent_limit_ppm(self) -> int: ...
    @property
    def vram(self) -> int: ...  # bytes
    @property
    def vram_limit(self) -> int: ...
    @property
    def dedicated(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class AskedAmounts:
    """The amounts of a WorkloadRequest in exact units (0: not stated)."""

    tflops: int = 0
    tflops_limit: int = 0
    percent_ppm: int = 0
    percent_limit_ppm: int = 0
    vram: int = 0
    vram_limit: int = 0
    dedicated: bool = False


def asked_amounts(w: WorkloadRequest) -> AskedAmounts:
    """The one conversion of annotation quantities into exact units (scheduler and hypervisor alike)."""
    return AskedAmounts(
        tflops=request_milli_tflops(w.tflops_request) if w.tflops_request is not None else 0,
        tflops_limit=request_milli_tflops(w.tflops_limit) if w.tflops_limit is not None else 0,
        percent_ppm=percent_ppm(w.compute_percent_request) if w.compute_percent_request is not None else 0,
        percent_limit_ppm=percent_ppm(w.compute_percent_limit) if w.compute_percent_limit is not None else 0,
        vram=request_bytes(w.vram_request) if w.vram_request is not None else 0,
        vram_limit=request_bytes(w.vram_limit) if w.vram_limit is not None else 0,
        dedicated=w.dedicated_gpu,
    )


def gpu_amounts(
    ask: Ask, rated_tflops_milli: int, whole_tflops_milli: int, whole_vram_bytes: int
) -> tuple[int, int, int, int]:
    """(request TFLOPS, request VRAM, limit TFLOPS, limit VRAM) that `ask` takes on one GPU.

    The one rule for what the scheduler books and what the hypervisor enforces: a dedicated
    request takes the whole GPU (`whole_*`: what the caller counts as all of it); a compute
    percentage is parts per million of the GPU's rated TFLOPS, rounded up; TFLOPS are as asked.
    """
    if ask.dedicated:
        return whole_tflops_milli, whole_vram_bytes, whole_tflops_milli, whole_vram_bytes
    if ask.percent_ppm:
        request = -((-rated_tflops_milli * ask.percent_ppm) // PPM)
        limit = -((-rated_tflops_milli * ask.percent_limit_ppm) // PPM)
        return request, ask.vram, limit, ask.vram_limit
    return ask.tflops, ask.vram, ask.tflops_limit, ask.vram_limit


def tflops_text(milli: int) -> str:
    """Milli-TFLOPS written back as a Kubernetes quantity ("1500m", "100")."""
    return str(milli // MILLI) if milli % MILLI == 0 else f"{milli}m"


_BINARY_UNITS: Final = (
    ("Ei", 1 << 60),
    ("Pi", 1 << 50),
    ("Ti", 1 << 40),
    ("Gi", 1 << 30),
    ("Mi", 1 << 20),
    ("Ki", 1 << 10),
)


def bytes_text(count: int) -> str:
    """Bytes as a Kubernetes quantity with the largest exact binary suffix ("16Gi", "1536Mi", "100")."""
    if count:
        for suffix, unit in _BINARY_UNITS:
            if count % unit == 0:
                return f"{count // unit}{suffix}"
    return str(count)
