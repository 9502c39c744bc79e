"""NVML at the edge: which GPUs this node has, and what they and their processes are using.

pynvml loads `libnvidia-ml.so.1` by name.  On a machine without an NVIDIA driver the
simulated library (tfcore.native) is loaded first, said loudly, and handed to pynvml, so
everything above this module runs the same code path as on real GPUs.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import time
from dataclasses import dataclass

import pynvml

from tfcore.native import NativeLibraryMissing, library_paths

log = logging.getLogger(__name__)
MIB = 1024**2


class NoGPU(RuntimeError):
    """NVML is not available, real or simulated."""


@dataclass(frozen=True, slots=True)
class GPUInfo:
    index: int
    uuid: str
    name: str
    vram_bytes: int
    simulated: bool


@dataclass(frozen=True, slots=True)
class ProcessSample:
    pid: int
    sm_percent: int
    end_us: int  # end of the sample period, wall clock (NVML's timestamps)


def init_nvml(*, simulate: bool | None = None) -> bool:
    """Initialises NVML; returns True when the GPUs are simulated.  simulate=None tries the
    real driver first; True forces the simulator (tests, demo)."""
    if not simulate:
        try:
            pynvml.nvmlInit()
            return False
        except pynvml.NVMLError as exc:
            if simulate is False:
                raise NoGPU(f"NVML: {exc}") from exc
    try:
        path = library_paths()["simnvml"]
    except NativeLibraryMissing as exc:
        raise NoGPU(str(exc)) from exc
    library = ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
    # The simulated library may lack a soname, so a by-name dlopen would not find it: hand
    # pynvml the loaded handle (its loader keeps a library it already has).
    if getattr(pynvml, "nvmlLib", None) is None:
        pynvml.nvmlLib = library
    pynvml.nvmlInit()
    log.warning("no NVIDIA driver found: using the SIMULATED GPU (%s); nothing here runs on real hardware", path)
    return True


def shutdown() -> None:
    with contextlib.suppress(pynvml.NVMLError):
        pynvml.nvmlShutdown()


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def discover(simulated: bool) -> list[GPUInfo]:
    found = []
    for index in range(pynvml.nvmlDeviceGetCount()):
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
        name = _text(pynvml.nvmlDeviceGetName(handle))
        found.append(GPUInfo(index, _text(pynvml.nvmlDeviceGetUUID(handle)), name, int(memory.total), simulated))
    return found


class GPUProbe:
    """Reads one GPU's figures; remembers the last sample it saw so each is used once."""

    def __init__(self, info: GPUInfo) -> None:
        self.info = info
        self._handle = pynvml.nvmlDeviceGetHandleByUUID(info.uuid)
        self._last_seen_us = int(time.time() * 1e6) - 1_000_000

    def utilization(self) -> int:
        return int(pynvml.nvmlDeviceGetUtilizationRates(self._handle).gpu)

    def process_samples(self) -> list[ProcessSample]:
        """Per-process SM utilization samples newer than the last call's (empty if none)."""
        try:
            samples = pynvml.nvmlDeviceGetProcessUtilization(self._handle, self._last_seen_us)
        except pynvml.NVMLError_NotFound:
            return []
        out = [ProcessSample(int(s.pid), int(s.smUtil), int(s.timeStamp)) for s in samples]
        if out:
            self._last_seen_us = max(s.end_us for s in out)
        return out

    def process_memory(self) -> dict[int, int]:
        """pid -> bytes of device memory NVML charges to it."""
        try:
            procs = pynvml.nvmlDeviceGetComputeRunningProcesses(self._handle)
        except pynvml.NVMLError:
            return {}
        return {int(p.pid): int(p.usedGpuMemory or 0) for p in procs}
