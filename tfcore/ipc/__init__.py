"""Shared-memory IPC between the hypervisor and the shim: the only user of the binding."""

from tfcore.ipc.errors import RegionError
from tfcore.ipc.region import DeviceSpec, DeviceState, Header, ProcessSlot, Region

__all__ = ["DeviceSpec", "DeviceState", "Header", "ProcessSlot", "Region", "RegionError"]
