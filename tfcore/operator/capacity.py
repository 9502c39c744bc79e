"""Physical, virtual and available capacity of GPU nodes and pools, in exact integer units.

Virtual capacity follows the pool's oversubscription (docs/scheduler.md, field-facts.md):
virtual TFLOPS = TFLOPS x tflopsOversellRatio / 100; a node's virtual VRAM = its GPUs' VRAM +
RAM x vramExpandToHostMem% + disk x vramExpandToHostDisk%. What is in use (capacity minus the
hypervisor's `available`) is taken off both the physical and the virtual amounts.
GPUs the NVIDIA device plugin holds are not ours to sell: they count in totalGPUs only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tfcore.model.node import GPU
from tfcore.model.quantity import Quantity
from tfcore.sched.state import PoolInfo
from tfcore.sched.units import bytes_text, capacity_bytes, capacity_milli_tflops, tflops_text

DEVICE_PLUGIN = "nvidia-device-plugin"


@dataclass(slots=True)
class Totals:
    """Sums in milli-TFLOPS and bytes."""

    tflops: int = 0
    vram: int = 0
    virtual_tflops: int = 0
    virtual_vram: int = 0
    available_tflops: int = 0
    available_vram: int = 0
    virtual_available_tflops: int = 0
    virtual_available_vram: int = 0

    def add(self, other: Totals) -> None:
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def add_status(self, status: Mapping[str, Any]) -> None:
        """Add a GPUNode's or GPUPool's status totals (quantities as the API server returns them)."""
        self.add(
            Totals(
                tflops=_milli(status.get("totalTFlops")),
                vram=_bytes(status.get("totalVRAM")),
                virtual_tflops=_milli(status.get("virtualTFlops")),
                virtual_vram=_bytes(status.get("virtualVRAM")),
                available_tflops=_milli(status.get("availableTFlops")),
                available_vram=_bytes(status.get("availableVRAM")),
                virtual_available_tflops=_milli(status.get("virtualAvailableTFlops")),
                virtual_available_vram=_bytes(status.get("virtualAvailableVRAM")),
            )
        )

    def cluster_fields(self) -> dict[str, str]:
        return {
            "totalTFlops": tflops_text(self.tflops),
            "totalVRAM": bytes_text(self.vram),
            "virtualTFlops": tflops_text(self.virtual_tflops),
            "virtualVRAM": bytes_text(self.virtual_vram),
            "availableTFlops": tflops_text(self.available_tflops),
            "availableVRAM": bytes_text(self.available_vram),
        }

    def fields(self) -> dict[str, str]:
        return {
            **self.cluster_fields(),
            "virtualAvailableTFlops": tflops_text(self.virtual_available_tflops),
            "virtualAvailableVRAM": bytes_text(self.virtual_available_vram),
        }


def sells(gpu: GPU) -> bool:
    """Whether the GPU's capacity is tensor-fusion's to sell."""
    return gpu.status is not None and gpu.status.used_by != DEVICE_PLUGIN


def node_totals(pool: PoolInfo, gpus: Iterable[GPU], *, ram_bytes: int, disk_bytes: int) -> Totals:
    """A node's capacity from the GPUs its hypervisor reported and the pool's oversubscription."""
    totals = Totals()
    for gpu in gpus:
        if not sells(gpu) or gpu.status is None or gpu.status.capacity is None:
            continue
        capacity, available = gpu.status.capacity, gpu.status.available
        tflops = capacity_milli_tflops(capacity.tflops) if capacity.tflops is not None else 0
        vram = capacity_bytes(capacity.vram) if capacity.vram is not None else 0
        free_tflops = capacity_milli_tflops(available.tflops) if available and available.tflops is not None else tflops
        free_vram = capacity_bytes(available.vram) if available and available.vram is not None else vram
        virtual = pool.virtual_tflops(tflops)
        totals.tflops += tflops
        totals.vram += vram
        totals.virtual_tflops += virtual
        totals.available_tflops += min(free_tflops, tflops)
        totals.available_vram += min(free_vram, vram)
        totals.virtual_available_tflops += max(0, virtual - (tflops - min(free_tflops, tflops)))
        totals.virtual_available_vram -= vram - min(free_vram, vram)  # used VRAM, taken off below
    if totals.vram:
        totals.virtual_vram = totals.vram + pool.host_vram_bytes(ram_bytes, disk_bytes)
        totals.virtual_available_vram = max(0, totals.virtual_vram + totals.virtual_available_vram)
    else:
        totals.virtual_available_vram = 0
    return totals


def _milli(value: object) -> int:
    return capacity_milli_tflops(Quantity(value)) if isinstance(value, (str, int)) and value != "" else 0


def _bytes(value: object) -> int:
    return capacity_bytes(Quantity(value)) if isinstance(value, (str, int)) and value != "" else 0
