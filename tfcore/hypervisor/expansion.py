"""How far a node expands VRAM into host memory and disk: its `--vram-expand-to-host-*` flags
over its pool's `capacityConfig.oversubscription` over the defaults, one tier at a time (pure).

The two sources count differently, and each keeps its own basis: a flag is a percentage of each
GPU's memory (standalone's meaning); a pool's field is a percentage of the host's RAM (warm) or
of the disk the node reports (cold), shared by the node's GPUs, because that is what the
scheduler sells on the node (tfcore.sched.state.PoolInfo.host_vram_bytes). A pool that leaves a
field unset gets the CRD default (50 % / 70 %), as in the scheduler; a node in no pool (or in a
pool it cannot see) expands nothing unless its flags say so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from tfcore.hypervisor.tiering import OF_GPU, OF_HOST, TierSettings
from tfcore.model.annotations import GPU_POOL
from tfcore.model.codec import decode
from tfcore.model.pool import DEFAULT_VRAM_EXPAND_TO_HOST_DISK, DEFAULT_VRAM_EXPAND_TO_HOST_MEM, Oversubscription

FLAG_MEM: Final = "--vram-expand-to-host-mem"
FLAG_DISK: Final = "--vram-expand-to-host-disk"
DEFAULT: Final = "default"
NO_TIER_DIR: Final = "no --tier-dir"


@dataclass(frozen=True, slots=True)
class PoolExpansion:
    """A pool's expansion percentages (unset fields already at their defaults) and its name."""

    pool: str
    mem_percent: int
    disk_percent: int
    mem_source: str  # GPUPool/NAME or `default` (the field is unset)
    disk_source: str


@dataclass(frozen=True, slots=True)
class Expansion:
    """The percentages in force, their bases (OF_GPU, OF_HOST) and where each came from."""

    mem_percent: int = 0
    disk_percent: int = 0
    mem_of: str = OF_GPU
    disk_of: str = OF_GPU
    mem_source: str = DEFAULT
    disk_source: str = DEFAULT

    def applied_to(self, settings: TierSettings) -> TierSettings:
        return dataclasses.replace(
            settings,
            expand_to_host_mem_percent=self.mem_percent,
            expand_to_host_disk_percent=self.disk_percent,
            host_mem_of=self.mem_of,
            host_disk_of=self.disk_of,
        )

    def sources(self) -> dict[str, str]:
        return {"host_mem": self.mem_source, "host_disk": self.disk_source}


def pool_expansion(gpunode: Mapping[str, Any] | None, pools: Mapping[str, Mapping[str, Any]]) -> PoolExpansion | None:
    """This node's pool's oversubscription (its GPUNode's pool label); None without a pool.
    ValidationError names the field of a malformed one."""
    if gpunode is None:
        return None
    labels = (gpunode.get("metadata") or {}).get("labels") or {}
    name = str(labels.get(GPU_POOL) or "")
    pool = pools.get(name)
    if pool is None:
        return None
    raw = ((pool.get("spec") or {}).get("capacityConfig") or {}).get("oversubscription") or {}
    where = f"GPUPool/{name}"
    over = decode(raw, Oversubscription, where=f"{where}.spec.capacityConfig.oversubscription")
    mem, disk = over.vram_expand_to_host_mem, over.vram_expand_to_host_disk
    return PoolExpansion(
        name,
        DEFAULT_VRAM_EXPAND_TO_HOST_MEM if mem is None else mem,
        DEFAULT_VRAM_EXPAND_TO_HOST_DISK if disk is None else disk,
        where if mem is not None else f"{DEFAULT} ({where})",
        where if disk is not None else f"{DEFAULT} ({where})",
    )


def resolve_expansion(
    flag_mem: int | None, flag_disk: int | None, pool: PoolExpansion | None, *, tier_dir: str
) -> Expansion:
    """Flags > pool > defaults (0 without a pool), per tier. A disk percentage needs a tier
    directory: without one the pool's is not applied (a flag's was refused at start)."""
    mem, mem_of, mem_source = 0, OF_GPU, DEFAULT
    disk, disk_of, disk_source = 0, OF_GPU, DEFAULT
    if pool is not None:
        mem, mem_of, mem_source = pool.mem_percent, OF_HOST, pool.mem_source
        disk, disk_of, disk_source = pool.disk_percent, OF_HOST, pool.disk_source
        if disk and not tier_dir:
            disk, disk_source = 0, f"{pool.disk_source}; {NO_TIER_DIR}"
    if flag_mem is not None:
        mem, mem_of, mem_source = flag_mem, OF_GPU, FLAG_MEM
    if flag_disk is not None:
        disk, disk_of, disk_source = flag_disk, OF_GPU, FLAG_DISK
    return Expansion(mem, disk, mem_of, disk_of, mem_source, disk_source)
