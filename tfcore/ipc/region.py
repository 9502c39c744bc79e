"""Region: the Python face of one worker's shared-memory region.

A region is two files (see ext/include/tf/shm_layout.h): PATH.limits, what the worker is
granted, writable only by its creator; and PATH, the state (usage and process slots) that
the worker's processes update.  Wraps the native binding (tfcore.ipc._shm) so callers get
dataclasses and one error type, RegionError, which names the file and what is wrong.
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
    alive: bool  # its owner still holds the slot (a dead one awaits the sweep)


@dataclass(frozen=True)
class SharedAllocation:
    """Memory one process of the worker exported and others of it may import: charged to the
    worker once (in vram_used_bytes) while any holder holds it."""

    entry: int
    device: int
    bytes: int
    holders: tuple[int, ...]  # process slots holding it (the exporter until its free, importers)


@dataclass(frozen=True)
class ComputeStats:
    """Cumulative counters of a worker's token bucket on one device (all its processes).
    Launches under rate 0 (unlimited) skip the bucket and are not counted."""

    launches: int  # launches admitted
    throttled: int  # launches that had to wait for tokens
    cost_admitted: int  # sum of launch costs (threads launched) taken from the bucket
    waited_ns: int  # total time launches spent waiting


TIER_REQUESTS = {"resume": 1, "host": 2, "disk": 3}
WATCHING = 0x100  # tier_where: the process answers requests (TF_TIER_WATCHING)
TIER_PLACES = ("device", "host", "disk")
TIER_RESULTS = ("ok", "busy", "host memory exhausted", "tier directory refused", "no device memory")


@dataclass(frozen=True)
class TierState:
    """Where a worker's movable memory is (all its live processes together)."""

    host_bytes: int
    disk_bytes: int
    pinned_bytes: int
    freezes: int
    resumes: int
    acked: bool  # every live process has handled the latest request
    where: str  # the coldest place any process is at: device, host or disk
    failures: tuple[str, ...]  # why processes' last requests failed (empty when none did)


@dataclass(frozen=True)
class SweepResult:
    reclaimed_slots: int
    reclaimed_bytes: tuple[int, ...]  # per device index


def repair_state(path: str | Path, device_count: int) -> str:
    """Makes a damaged state file valid again in place (size and header; usage and process
    slots kept, so live processes keep their mappings and slot locks).  Returns why it was
    unusable, '' when it was fine and nothing was written.  Never follows a symlink."""
    p = Path(path)
    with _errors(p):
        return str(_shm.repair_state(str(p), device_count))


def limits_path(path: str | Path) -> Path:
    """Where the limits file of the region at path lives."""
    p = Path(path)
    return p.with_name(p.name + _shm.LIMITS_SUFFIX)


class Region:
    """An open region.  Use create() or open(); close() (or `with`) unmaps it."""

    def __init__(self, path: Path, limits: _shm.LimitsFile, state: _shm.StateFile) -> None:
        self.path = path
        self._limits = limits
        self._state = state

    @classmethod
    def create(cls, path: str | Path, devices: Sequence[DeviceSpec], tenant_uid: int | None = None) -> Region:
        """Creates a new region (neither file may exist) and maps it writable.  The state file
        is mode 0666, or 0600 owned by tenant_uid; the limits file is 0644 and the creator's."""
        p = Path(path)
        specs = [(d.uuid.encode(), d.vram_limit_bytes, d.tflops_request_milli, d.tflops_limit_milli) for d in devices]
        with _errors(p):
            _shm.create(str(p), specs, -1 if tenant_uid is None else tenant_uid)
        return cls.open(p, readonly=False)

    @classmethod
    def open(cls, path: str | Path, readonly: bool = True) -> Region:
        """Maps an existing region after checking magic, major version, kind and size of both
        files.  readonly=False maps both writable (the hypervisor's view)."""
        p = Path(path)
        with _errors(limits_path(p)):
            limits = _shm.LimitsFile.open(str(limits_path(p)), not readonly)
        try:
            with _errors(p):
                state = _shm.StateFile.open(str(p), not readonly)
        except RegionError:
            limits.close()
            raise
        if limits.header()[4] != state.header()[4]:
            limits.close()
            state.close()
            raise RegionError(p, "limits and state files disagree on the device count")
        return cls(p, limits, state)

    @property
    def readonly(self) -> bool:
        return not self._state.writable

    def header(self) -> Header:
        with _errors(self.path):
            _magic, major, minor, total, count, generation = self._limits.header()
        return Header(major, minor, total, count, generation)

    def devices(self) -> list[DeviceState]:
        with _errors(self.path):
            count = self._limits.header()[4]
            rows = [(*self._limits.device(i), self._state.used(i)) for i in range(count)]
        return [
            DeviceState(i, uuid.decode(errors="replace"), limit, used, request, tflops_limit)
            for i, (uuid, limit, request, tflops_limit, used) in enumerate(rows)
        ]

    def processes(self) -> list[ProcessSlot]:
        """Occupied process slots."""
        with _errors(self.path):
            rows = [(i, *self._state.process(i)) for i in range(_shm.MAX_PROCS)]
        return [ProcessSlot(i, pid, beat, used, alive) for i, pid, beat, used, alive in rows if pid != 0]

    def shared(self) -> list[SharedAllocation]:
        """Shared allocations someone holds (each counted once in the device's usage)."""
        with _errors(self.path):
            rows = self._state.shared()
        return [SharedAllocation(entry, device, size, tuple(slots)) for entry, device, size, slots in rows]

    def tier_enabled(self) -> bool:
        with _errors(limits_path(self.path)):
            return bool(self._limits.tier()[0] & 1)

    def set_tier_enabled(self, enabled: bool) -> None:
        """Whether this worker's cuMemAlloc memory may move (hypervisor only; processes read
        it when they load the region, so set it before the workload starts)."""
        with _errors(limits_path(self.path)):
            self._limits.set_tier_flags(1 if enabled else 0)

    def request_tier(self, request: str) -> int:
        """Asks every process of the worker to move: resume, host or disk (hypervisor only);
        returns the request's sequence number."""
        if request not in TIER_REQUESTS:
            raise ValueError(f"tier request: expected one of {', '.join(TIER_REQUESTS)}, got {request!r}")
        with _errors(limits_path(self.path)):
            return int(self._limits.request_tier(TIER_REQUESTS[request]))

    def tier_state(self) -> TierState:
        """Tier books of the live processes, and whether they all handled the last request."""
        with _errors(self.path):
            seq = int(self._limits.tier()[2]) & 0xFFFFFFFF
            rows = [(self._state.process(i), self._state.process_tier(i)) for i in range(_shm.MAX_PROCS)]
        # Only processes that answer requests count (a watcher: they made movable memory); a
        # forked data-loader child that never touches CUDA holds a slot but no tiers.
        live = [tier for (pid, _b, _u, alive), tier in rows if pid != 0 and alive and int(tier[6]) & WATCHING]
        worst = max((int(t[6]) & 0xFF for t in live), default=0)
        return TierState(
            host_bytes=sum(int(t[0]) for t in live),
            disk_bytes=sum(int(t[1]) for t in live),
            pinned_bytes=sum(int(t[2]) for t in live),
            freezes=sum(int(t[3]) for t in live),
            resumes=sum(int(t[4]) for t in live),
            acked=all(int(t[5]) == seq for t in live),
            where=TIER_PLACES[min(worst, 2)],
            failures=tuple(TIER_RESULTS[min(int(t[7]), 4)] for t in live if int(t[7]) != 0),
        )

    def add_vram_used(self, device: int, delta: int) -> int:
        """Counts delta bytes held outside any process slot (negative frees; never below 0);
        returns the new device total."""
        with _errors(self.path):
            return int(self._state.add_vram_used(device, delta))

    def state_problem(self) -> str:
        """Why the state file as mapped now is not a valid region ('' when it is): a tenant
        can rewrite it after it was opened."""
        with _errors(self.path):
            return str(self._state.problem())

    def rebuild_state_header(self) -> None:
        """Writes a valid header over a damaged state file in place (hypervisor only)."""
        with _errors(self.path):
            self._state.rebuild_header(self._limits.header()[4])

    def set_limits(self, device: int, spec: DeviceSpec) -> None:
        """Changes a device's limits (hypervisor only); bumps the header generation."""
        with _errors(limits_path(self.path)):
            self._limits.set_limits(device, spec.vram_limit_bytes, spec.tflops_request_milli, spec.tflops_limit_milli)

    def set_compute_rate(self, device: int, cost_per_s: int, burst_cost: int) -> None:
        """Sets the refill rate (launch-cost units per second; 0 = unlimited) and depth (cost
        units; 0 = rate x 10 ms) of the worker's token bucket on device (hypervisor only:
        RegionError on a read-only handle).  Tokens earned at the old rate are credited
        first; bumps the header generation and wakes every launch waiting on that device."""
        if cost_per_s < 0 or burst_cost < 0:
            raise RegionError(limits_path(self.path), "cost_per_s and burst_cost must be >= 0")
        with _errors(limits_path(self.path)):
            _shm.set_compute_rate(self._limits, self._state, device, cost_per_s, burst_cost)

    def police_compute(self, device: int) -> tuple[str, ...]:
        """Hypervisor tick for device's token bucket: keeps the state file's granted counter
        within what the rate allows (the account lives in the limits file, out of the
        tenant's reach) and returns what tampering it found, e.g. ("granted raised",)."""
        with _errors(limits_path(self.path)):
            found = int(_shm.police_compute(self._limits, self._state, device))
        return tuple(
            text
            for bit, text in (
                (_shm.COMPUTE_GRANTED_RAISED, "granted-tokens counter raised beyond what the rate allows"),
                (_shm.COMPUTE_CONSUMED_REWOUND, "consumed-tokens counter wound back"),
            )
            if found & bit
        )

    def compute_rate(self, device: int) -> tuple[int, int]:
        """(cost_per_s, burst_cost) of device's token bucket; (0, _) = unlimited."""
        with _errors(limits_path(self.path)):
            return self._limits.compute_rate(device)

    def compute_stats(self, device: int) -> ComputeStats:
        """The bucket's cumulative counters on device (see ComputeStats)."""
        with _errors(self.path):
            launches, throttled, cost, waited = self._state.compute_stats(device)
        return ComputeStats(int(launches), int(throttled), int(cost), int(waited))

    def claim_slot(self, pid: int) -> int:
        """Claims a process slot for pid, held while this Region is open; RegionError when
        all are taken by live processes."""
        with _errors(self.path):
            slot = int(self._state.claim_slot(pid))
        if slot < 0:
            raise RegionError(self.path, f"all {_shm.MAX_PROCS} process slots are taken")
        return slot

    def release_slot(self, slot: int, pid: int) -> bool:
        """Frees a slot this Region claimed for pid, returning its usage to the worker."""
        with _errors(self.path):
            return bool(self._state.release_slot(slot, pid))

    def heartbeat(self, slot: int, now_ns: int | None = None) -> None:
        with _errors(self.path):
            self._state.heartbeat(slot, time.monotonic_ns() if now_ns is None else now_ns)

    def add_process_used(self, slot: int, device: int, delta: int) -> int:
        with _errors(self.path):
            return int(self._state.add_process_used(slot, device, delta))

    def sweep(self) -> SweepResult:
        """Reclaims the slots of dead processes: their usage leaves the worker's totals.
        Liveness is the kernel's (a dead owner's slot lock is gone), never a pid probe."""
        with _errors(self.path):
            count, reclaimed = self._state.sweep()
        return SweepResult(int(count), tuple(int(b) for b in reclaimed))

    def close(self) -> None:
        self._limits.close()
        self._state.close()

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
