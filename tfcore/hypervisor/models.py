"""Rated dense FP16/BF16 tensor TFLOPS of GPU models (no sparsity), by NVML device name.

The controller works in shares of a GPU; a TFLOPS request becomes a share of the GPU's rated
figure.  Dense (not 2:4 sparse) FP16/BF16 tensor throughput is what a training or inference
job can actually use, and what vendors' data sheets list for every generation, so requests
mean the same on every model.  Operators override or extend the table in config
(`--gpu-tflops "NAME=TFLOPS"`), e.g. for a new model or a power-capped part.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from tfcore.model.errors import Problem, ValidationError

SIMULATED_SUFFIX: Final = " (simulated)"


@dataclass(frozen=True, slots=True)
class GPUModel:
    """A name pattern (whole words, case-insensitive, matched inside the NVML name) and its rating."""

    pattern: str
    tflops: float


# Longest, most specific patterns win (see rated_tflops), so "H100 PCIe" beats "H100".
GPU_MODELS: Final[tuple[GPUModel, ...]] = (
    GPUModel("B200", 2250.0),
    GPUModel("GH200", 989.4),
    GPUModel("H200", 989.4),
    GPUModel("H100 NVL", 835.0),
    GPUModel("H100 PCIe", 756.0),
    GPUModel("H100", 989.4),  # SXM5 ("H100 80GB HBM3")
    GPUModel("H800", 989.4),
    GPUModel("H20", 148.0),
    GPUModel("A100", 312.0),
    GPUModel("A800", 312.0),
    GPUModel("A30", 165.0),
    GPUModel("A10", 125.0),
    GPUModel("L40S", 362.0),
    GPUModel("L40", 181.0),
    GPUModel("L4", 121.0),
    GPUModel("V100", 125.0),
    GPUModel("T4", 65.0),
    GPUModel("RTX 4090", 165.0),
)


def _words(text: str) -> str:
    return " " + " ".join(re.split(r"[\s\-_]+", text.strip().lower())) + " "


def rated_tflops(name: str, overrides: Iterable[GPUModel] = ()) -> float | None:
    """The rated TFLOPS of the GPU NVML calls `name`, or None for an unknown model.  Overrides
    are searched first; within each list the longest matching pattern wins."""
    words = _words(name.removesuffix(SIMULATED_SUFFIX))
    for table in (tuple(overrides), GPU_MODELS):
        found = [m for m in table if _words(m.pattern) in words]
        if found:
            return max(found, key=lambda m: len(m.pattern)).tflops
    return None


def parse_tflops_overrides(items: Iterable[str], field: str = "--gpu-tflops") -> tuple[GPUModel, ...]:
    """`NAME=TFLOPS` items (e.g. `H100 PCIe=700`) into table entries; every bad item is reported."""
    problems: list[Problem] = []
    models: list[GPUModel] = []
    for item in items:
        name, sep, value = item.rpartition("=")
        try:
            tflops = float(value)
        except ValueError:
            tflops = -1.0
        if not sep or not name.strip() or not (0 < tflops < 1e6):
            problems.append(
                Problem(field, f"bad GPU rating {item!r}", "NAME=TFLOPS with TFLOPS > 0, e.g. 'H100 PCIe=756'")
            )
            continue
        models.append(GPUModel(name.strip(), tflops))
    if problems:
        raise ValidationError(problems)
    return tuple(models)


def table(overrides: Iterable[GPUModel] = ()) -> Mapping[str, float]:
    """The effective table (overrides replace entries of the same pattern), for display."""
    merged = {m.pattern: m.tflops for m in GPU_MODELS}
    merged.update({m.pattern: m.tflops for m in overrides})
    return merged
