"""Exact integer units of the allocator: milli-TFLOPS and bytes.

Why integers and not Quantity: every decision adds and compares amounts thousands of times per
second, and Python ints are exact *and* ~50x faster than Fraction arithmetic. Milli-TFLOPS is
the finest compute precision a user can write that Kubernetes keeps (``1500m`` is 1.5 TFLOPS);
finer requests are rounded *up* and capacities *down*, so rounding can never over-allocate.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Final

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
