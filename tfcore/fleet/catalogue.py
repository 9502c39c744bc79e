"""Built-in catalogue of cloud GPU instance types: GPUs, VRAM, rated TFLOPS and hourly price.

Prices are AWS us-east-1 Linux on-demand list prices (USD/hour). A type whose price is not
known here is listed with price None and is never chosen: the reference operator turned an
unknown price into $0 and so picked the most expensive machines first. TFLOPS are the dense
FP16 ratings of tfcore.hypervisor.models (the unit pools' capacity is counted in).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class InstanceType:
    name: str
    gpu_model: str
    gpus: int
    vram_gib_per_gpu: int
    tflops_per_gpu: float
    vcpus: int
    memory_gib: int
    price: float | None  # on-demand USD per hour; None = unknown, never chosen

    @property
    def milli_tflops(self) -> int:
        return round(self.gpus * self.tflops_per_gpu * 1000)

    @property
    def vram_bytes(self) -> int:
        return self.gpus * self.vram_gib_per_gpu * 2**30


def _family(
    model: str, vram: int, tflops: float, rows: tuple[tuple[str, int, int, int, float | None], ...]
) -> tuple[InstanceType, ...]:
    return tuple(InstanceType(name, model, gpus, vram, tflops, cpu, mem, price) for name, gpus, cpu, mem, price in rows)


AWS: Final[tuple[InstanceType, ...]] = (
    *_family(
        "T4",
        16,
        65.0,
        (
            ("g4dn.xlarge", 1, 4, 16, 0.526),
            ("g4dn.2xlarge", 1, 8, 32, 0.752),
            ("g4dn.4xlarge", 1, 16, 64, 1.204),
            ("g4dn.8xlarge", 1, 32, 128, 2.176),
            ("g4dn.12xlarge", 4, 48, 192, 3.912),
            ("g4dn.16xlarge", 1, 64, 256, 4.352),
            ("g4dn.metal", 8, 96, 384, 7.824),
        ),
    ),
    *_family(
        "A10G",
        24,
        70.0,
        (
            ("g5.xlarge", 1, 4, 16, 1.006),
            ("g5.2xlarge", 1, 8, 32, 1.212),
            ("g5.4xlarge", 1, 16, 64, 1.624),
            ("g5.8xlarge", 1, 32, 128, 2.448),
            ("g5.12xlarge", 4, 48, 192, 5.672),
            ("g5.16xlarge", 1, 64, 256, 4.096),
            ("g5.24xlarge", 4, 96, 384, 8.144),
            ("g5.48xlarge", 8, 192, 768, 16.288),
        ),
    ),
    *_family(
        "L4",
        24,
        121.0,
        (
            ("g6.xlarge", 1, 4, 16, 0.8048),
            ("g6.2xlarge", 1, 8, 32, 0.9776),
            ("g6.4xlarge", 1, 16, 64, 1.3232),
            ("g6.8xlarge", 1, 32, 128, 2.0144),
            ("g6.12xlarge", 4, 48, 192, 4.6016),
            ("g6.16xlarge", 1, 64, 256, 3.3968),
            ("g6.24xlarge", 4, 96, 384, 6.6758),
            ("g6.48xlarge", 8, 192, 768, 13.3504),
        ),
    ),
    *_family(
        "L40S",
        48,
        362.0,
        (
            ("g6e.xlarge", 1, 4, 32, 1.861),
            ("g6e.2xlarge", 1, 8, 64, 2.24208),
            ("g6e.12xlarge", 4, 48, 384, 10.49264),
            ("g6e.48xlarge", 8, 192, 1536, 30.13118),
        ),
    ),
    *_family(
        "V100",
        16,
        125.0,
        (
            ("p3.2xlarge", 1, 8, 61, 3.06),
            ("p3.8xlarge", 4, 32, 244, 12.24),
            ("p3.16xlarge", 8, 64, 488, 24.48),
        ),
    ),
    *_family("A100", 40, 312.0, (("p4d.24xlarge", 8, 96, 1152, 32.7726),)),
    # Listed so requirements naming them resolve, but unpriced here (prices moved in 2025):
    *_family("H100", 80, 989.4, (("p5.48xlarge", 8, 192, 2048, None),)),
    *_family("H200", 141, 989.4, (("p5e.48xlarge", 8, 192, 2048, None),)),
)

CATALOGUES: Final[dict[str, tuple[InstanceType, ...]]] = {"aws": AWS}


def lookup(vendor: str, name: str) -> InstanceType | None:
    return next((t for t in CATALOGUES.get(vendor, ()) if t.name == name), None)
