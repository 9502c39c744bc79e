"""Shared-memory IPC between the hypervisor and the shim: the only user of the binding."""

from tfcore.ipc.errors import RegionError
from tfcore.ipc.region import (
    ComputeStats,
    DeviceSpec,
    DeviceState,
    Header,
    ProcessSlot,
    Region,
    SharedAllocation,
    SweepResult,
    TierState,
    limits_path,
    repair_state,
)

__all__ = [
    "ComputeStats",
    "DeviceSpec",
    "DeviceState",
    "Header",
    "ProcessSlot",
    "Region",
    "RegionError",
    "SharedAllocation",
    "SweepResult",
    "TierState",
    "limits_path",
    "repair_state",
]
