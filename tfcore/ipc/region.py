"""Region: the Python face of one worker's shared-memory region.

Wraps the native binding (tfcore.ipc._shm) so callers get dataclasses and one error type,
RegionError, which names the file and what is wrong with it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from tfcore.ipc import _shm
from tfcore.ipc.errors import RegionError


@dataclass(frozen=True)
class DeviceSpec:
    """What the hypervisor grants a worker on one GPU."""

    uuid: str
    vram_limit_bytes: int
    tflops_request_milli: int = 0
    tflops_limit_milli: int = 0


@dataclass(frozen=True)
class Header:
    version_major: int
    version_minor: int
    total_size: int
    device_count: int
    generation: int


@dataclass(frozen=True)
class DeviceState:
    index: int
    uuid: str
    vram_limit_bytes: int
    vram_used_bytes: int
    tflops_request_milli: int
    tflops_limit_milli: int


@dataclass(frozen=True)
class ProcessSlot:
    slot: int
    pid: int
    heartbeat_ns: int
    used_bytes: tuple[int, ...]  # per device index


class Region:
    """An open region file.  Use create() or open(); close() (or `with`) unmaps it."""

    def __init__(self, path: Path, mapping: _shm.Mapping) -> None:
        self.path = path
        self._m = mapping

    @classmethod
    def create(cls, path: str | Path, devices: Sequence[DeviceSpec]) -> Region:
        """Creates a new region (the file must not exist) and maps it writable."""
        p = Path(path)
        specs = [(d.uuid.encode(), d.vram_limit_bytes, d.tflops_request_milli, d.tflops_limit_milli) for d in devices]
        with _errors(p):
            return cls(p, _shm.Mapping.create(str(p), specs))

    @classmethod
    def open(cls, path: str | Path, readonly: bool = True) -> Region:
        """Maps an existing region after checking magic, major version and size."""
        p = Path(path)
        with _errors(p):
            return cls(p, _shm.Mapping.open(str(p), not readonly))

    @property
    def readonly(self) -> bool:
        return not self._m.writable

    def header(self) -> Header:
        with _errors(self.path):
            _magic, major, minor, total, count, generation = self._m.header()
        return Header(major, minor, total, count, generation)

    def devices(self) -> list[DeviceState]:
        with _errors(self.path):
            count = self._m.header()[4]
            rows = [self._m.device(i) for i in range(count)]
        return [DeviceState(i, uuid.decode(errors="replace"), *rest) for i, (uuid, *rest) in enumerate(rows)]

    def processes(self) -> list[ProcessSlot]:
        """Occupied process slots."""
        with _errors(self.path):
            rows = [(i, *self._m.process(i)) for i in range(_shm.MAX_PROCS)]
        return [ProcessSlot(i, pid, beat, used) for i, pid, beat, used in rows if pid != 0]

    def add_vram_used(self, device: int, delta: int) -> int:
        """Adds delta bytes (negative frees; never below 0); returns the new total."""
        with _errors(self.path):
            return int(self._m.add_vram_used(device, delta))

    def set_limits(self, device: int, spec: DeviceSpec) -> None:
        """Changes a device's limits (hypervisor only); bumps the header generation."""
        with _errors(self.path):
            self._m.set_limits(device, spec.vram_limit_bytes, spec.tflops_request_milli, spec.tflops_limit_milli)

    def claim_slot(self, pid: int) -> int:
        """Claims a process slot for pid; RegionError when all are taken."""
        with _errors(self.path):
            slot = int(self._m.claim_slot(pid))
        if slot < 0:
            raise RegionError(self.path, f"all {_shm.MAX_PROCS} process slots are taken")
        return slot

    def release_slot(self, slot: int, pid: int) -> bool:
        with _errors(self.path):
            return bool(self._m.release_slot(slot, pid))

    def heartbeat(self, slot: int, now_ns: int | None = None) -> None:
        with _errors(self.path):
            self._m.heartbeat(slot, time.monotonic_ns() if now_ns is None else now_ns)

    def add_process_used(self, slot: int, device: int, delta: int) -> int:
        with _errors(self.path):
            return int(self._m.add_process_used(slot, device, delta))

    def close(self) -> None:
        self._m.close()

    def __enter__(self) -> Region:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@contextmanager
def _errors(path: Path) -> Iterator[None]:
    """Turns binding and OS errors into RegionError naming the file."""
    try:
        yield
    except RegionError:
        raise
    except OSError as exc:
        raise RegionError(path, exc.strerror or str(exc)) from exc
    except (ValueError, IndexError, OverflowError) as exc:
        raise RegionError(path, str(exc)) from exc
