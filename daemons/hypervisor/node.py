"""The node: GPUs, workers and one compute controller per GPU, stepped at a fixed tick.

Every tick, per GPU: NVML's newest per-process samples are summed per worker (over the pids in
its region's live process slots), paired with the launch cost the worker was admitted over the
same sample period, handed to the controller, and the refill rates it returns are written to
the regions.  Dead processes are swept and VRAM is compared with NVML's per-process figures.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from daemons.hypervisor import tierdirs
from daemons.hypervisor.gpus import GPUInfo, GPUProbe
from daemons.hypervisor.workers import WorkerDirectory, WorkerRecord, check_name, new_record, owner_alive
from tfcore.config.env import BREACH_ACTIONS
from tfcore.hypervisor import (
    ControllerSettings,
    CostHistory,
    GPUController,
    TenantCommand,
    TenantSample,
    TenantShare,
    share_of,
)
from tfcore.hypervisor.expansion import Expansion
from tfcore.hypervisor.placement import DoesNotFit, LocalGPU, local_allocator, place
from tfcore.hypervisor.podworkers import check_pod_worker_name, split_pod_worker_name
from tfcore.hypervisor.tiering import OF_GPU, TierCandidate, TierCapacity, TierSettings, plan_tiers, tier_capacity
from tfcore.hypervisor.workerspec import WorkerSpec
from tfcore.ipc import DeviceSpec, Region, RegionError
from tfcore.model.errors import ValidationError
from tfcore.sched import PodRequest

log = logging.getLogger(__name__)
VRAM_SLACK = 64 * 1024**2  # NVML rounds to its granularity; only report beyond this
ADOPT_TICKS = 20  # an adopted worker keeps its old rate at most this many ticks while gains are learned
TIER_CAPACITY_PERIOD = 10.0  # seconds between looks at free RAM and the tier directory's free space


def _meminfo() -> tuple[int, int]:
    """(MemAvailable, MemTotal) in bytes; (0, 0) when /proc/meminfo cannot be read."""
    fields: dict[str, int] = {}
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                name, _, rest = line.partition(":")
                fields[name] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return 0, 0
    return fields.get("MemAvailable", 0), fields.get("MemTotal", 0)


def _disk_free(directory: str) -> int:
    if not directory:
        return 0
    try:
        st = os.statvfs(directory)
    except OSError:
        return 0
    return st.f_bavail * st.f_frsize


class TieringOff(ValueError):
    """A freeze or resume asked of a worker that cannot move (tiering off, or it opted out)."""


@dataclass
class TierBooks:
    """A worker's tiering as the node sees it: the last state read and its own counters
    (monotonic: the processes' counts vanish with them)."""

    where: str = "device"
    host_bytes: int = 0
    disk_bytes: int = 0
    pinned_bytes: int = 0
    acked: bool = True
    freezes: int = 0  # vram_freezed_cnt
    resumes: int = 0  # vram_resumed_cnt
    seen_freezes: int = 0
    seen_resumes: int = 0
    sampled_freezes: int = 0  # as of the last metrics sample (usage.py writes deltas)
    sampled_resumes: int = 0
    last_active: float = 0.0  # time.monotonic() of the last launch seen
    last_launches: int = -1


class GPUUnavailable(DoesNotFit):
    """A GPU not offered to TensorFusion (the NVIDIA device plugin holds it, or may: see kube.py)."""


@dataclass
class DeviceUsage:
    """One worker's figures on one GPU, as of the last tick."""

    utilization: float = 0.0
    target: float = 0.0
    command: float = 0.0
    rate: int = 0
    burst: int = 0
    busy: bool = False
    launches: int = 0
    throttled: int = 0
    cost: int = 0
    nvml_vram_bytes: int = 0
    history: CostHistory = field(default_factory=CostHistory)
    last_throttled: int = 0
    last_launches: int = 0
    last_cost: int = 0


@dataclass(frozen=True)
class Breach:
    """Something a worker's tenant did past the shim's isolation, for the reporter to act on
    (an Event on the pod; with the evict action, its eviction)."""

    worker: str
    pod: tuple[str, str, str] | None  # (namespace, name, uid); None for an API worker
    reason: str  # an Event reason: StateFileDamaged, ComputeTampered, VRAMOverLimit
    message: str
    evict: bool


@dataclass
class Worker:
    record: WorkerRecord
    region: Region
    usage: dict[str, DeviceUsage] = field(default_factory=dict)  # by GPU UUID
    # Re-adopted after a restart: its bucket keeps the rate the last run set until the new
    # controller has learned its gain, so a restart does not disturb it.
    adopted: bool = False
    adopted_ticks: int = 0
    overcommitted: str = ""  # placed beyond this node's capacity (a pod the scheduler bound): why
    breaches: int = 0  # tampering or NVML overuse found so far (a metric)
    tiers: TierBooks = field(default_factory=TierBooks)
    tiered: bool = False  # its limits enable tiering (the node's pool expands VRAM, no opt-out)

    @property
    def pod(self) -> tuple[str, str] | None:
        """(namespace, name) of the pod that owns it; None for an API worker."""
        return split_pod_worker_name(self.record.name) if self.record.pod_uid else None

    def pids(self) -> set[int]:
        return {p.pid for p in self.region.processes() if p.alive}


class Node:
    def __init__(
        self,
        gpus: list[GPUInfo],
        rated: dict[str, float],
        directory: WorkerDirectory,
        *,
        tick: float = 0.1,
        settings: ControllerSettings | None = None,
        oversell_percent: int = 100,
        breach_action: str = "warn",
        tiering: TierSettings | None = None,
    ) -> None:
        if breach_action not in BREACH_ACTIONS:
            raise ValidationError.single("--on-isolation-breach", repr(breach_action), " or ".join(BREACH_ACTIONS))
        self.breach_action = breach_action
        self.tiering = tiering or TierSettings()
        # Where each QoS level's freeze TTLs came from (set_freeze_ttls; GET /api/v1/tiering).
        self.freeze_ttl_sources: dict[str, str] = dict.fromkeys(self.tiering.freeze_ttls, "node settings")
        # Where the expansion percentages came from (set_expansion; GET /api/v1/tiering).
        self.expansion_sources: dict[str, str] = {"host_mem": "node settings", "host_disk": "node settings"}
        self.tier_capacity: dict[str, TierCapacity] = {}
        self._tier_measured = float("-inf")
        self.breaches: list[Breach] = []  # not yet acted on: the Kubernetes reporter drains them
        self.gpus = {g.uuid: g for g in gpus}
        self.rated = rated  # uuid -> rated TFLOPS
        self.directory = directory
        self.tick = tick
        self.probes = {g.uuid: GPUProbe(g) for g in gpus}
        self.controllers = {g.uuid: GPUController(settings or ControllerSettings()) for g in gpus}
        self.device_utilization: dict[str, int] = {}
        self.workers: dict[str, Worker] = {}
        self.allocator = local_allocator(
            [LocalGPU(g.uuid, g.index, g.name, round(rated[g.uuid] * 1000), g.vram_bytes) for g in gpus],
            tflops_oversell_percent=oversell_percent,
        )
        self.compute_limiting = True
        self._warned: set[str] = set()
        # Set by the Kubernetes reporter (kube.py) from the kubelet's latest listing.
        self.device_plugin_holders: dict[str, tuple[str, ...]] = {}
        self.unavailable: dict[str, str] = {}  # uuid -> why TensorFusion may not place work on it
        self._listeners: list[Callable[[], None]] = []
        if self.tiering.enabled:
            self.measure_tiers(time.monotonic())

    def set_expansion(self, expansion: Expansion) -> None:
        """New expansion percentages (the pool's changed): the capacity is measured again at
        once, new workers are tiered by the new switch; running workers keep theirs (each of
        their processes read it once, when it loaded)."""
        wanted = expansion.applied_to(self.tiering)
        sources = expansion.sources()
        if wanted == self.tiering and sources == self.expansion_sources:
            return
        if wanted != self.tiering:
            log.info(
                "VRAM expansion now host memory %d%% of %s (%s), disk %d%% of %s (%s)",
                expansion.mem_percent,
                "each GPU" if expansion.mem_of == OF_GPU else "host RAM",
                expansion.mem_source,
                expansion.disk_percent,
                "each GPU" if expansion.disk_of == OF_GPU else "the tier directory's free space",
                expansion.disk_source,
            )
        self.tiering = wanted
        self.expansion_sources = sources
        self.measure_tiers(time.monotonic())

    def measure_tiers(self, now: float) -> None:
        """What the node can really back beyond its GPUs (free RAM, the tier directory's free
        space): the local allocator sells each GPU plus that, and a disk tier below the free-space
        guidance is not sold (a warning when that changes). With tiering off: each GPU alone."""
        self._tier_measured = now
        if not self.tiering.enabled:
            for uuid, gpu in self.gpus.items():
                if self.tier_capacity.pop(uuid, None) is not None:
                    spec = self.allocator.gpus[uuid].spec
                    self.allocator.set_gpu(dataclasses.replace(spec, vram_bytes=gpu.vram_bytes))
            return
        available, total = _meminfo()
        free = _disk_free(self.tiering.tier_dir)
        for uuid, gpu in self.gpus.items():
            cap = tier_capacity(
                self.tiering, gpu.vram_bytes, len(self.gpus), ram_available=available, ram_total=total, disk_free=free
            )
            old = self.tier_capacity.get(uuid)
            if old == cap:
                continue
            if not cap.disk_ok and (old is None or old.disk_ok):
                log.warning("%s", cap.message)
            self.tier_capacity[uuid] = cap
            spec = self.allocator.gpus[uuid].spec
            self.allocator.set_gpu(
                dataclasses.replace(spec, vram_bytes=gpu.vram_bytes + cap.host_bytes + cap.disk_bytes)
            )

    # ---- who may use the GPUs ------------------------------------------------------------

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call `listener` after a worker is created or removed (the reporter reports promptly)."""
        self._listeners.append(listener)

    def _changed(self) -> None:
        for listener in self._listeners:
            listener()

    def set_availability(self, holders: Mapping[str, tuple[str, ...]], unavailable: Mapping[str, str]) -> None:
        """The device plugin's holders per GPU and the GPUs not offered to TensorFusion (uuid -> why).

        Unavailable GPUs become unschedulable in the local allocator, so placement skips them;
        workers already on them keep running (the reporter flags the conflict)."""
        self.device_plugin_holders = {u: tuple(h) for u, h in holders.items() if u in self.gpus and h}
        changed = {u for u in self.gpus if (u in unavailable) != (u in self.unavailable)}
        self.unavailable = {u: why for u, why in unavailable.items() if u in self.gpus}
        for uuid in changed:
            spec = self.allocator.gpus[uuid].spec
            self.allocator.set_gpu(dataclasses.replace(spec, schedulable=uuid not in self.unavailable))

    def _unavailable_text(self, uuids: Iterable[str]) -> str:
        return "; ".join(f"GPU {self.gpus[u].index} ({u}): {self.unavailable[u]}" for u in uuids)

    # ---- workers ------------------------------------------------------------------------

    def adopt(self) -> int:
        for record, region in self.directory.adopt():
            unknown = [u for u in record.gpus if u not in self.gpus]
            if unknown:
                log.error("worker %s names GPUs this node does not have (%s); removing it", record.name, unknown)
                region.close()
                self.directory.remove(record.name, record.made_dirs)
                continue
            self._restore_limits(record, region)
            self._record_adopted(record)
            worker = Worker(record, region, {u: DeviceUsage() for u in record.gpus}, adopted=True)
            worker.tiered = region.tier_enabled()
            self.workers[record.name] = worker
            log.info("re-adopted worker %s on %s", record.name, ", ".join(record.gpus))
        return len(self.workers)

    @staticmethod
    def _restore_limits(record: WorkerRecord, region: Region) -> None:
        """The record is the truth; a limits file that says otherwise was written behind our back."""
        for device, (uuid, state) in enumerate(zip(record.gpus, region.devices(), strict=False)):
            granted = DeviceSpec(
                state.uuid, state.vram_limit_bytes, state.tflops_request_milli, state.tflops_limit_milli
            )
            wanted = record.device_spec(uuid)
            if granted != wanted:
                log.warning("worker %s: limits of device %d were changed (%s); restored", record.name, device, granted)
                region.set_limits(device, wanted)

    def pod_workers(self) -> dict[str, str]:
        """Pod worker name -> the uid of the pod its region was made for."""
        return {name: w.record.pod_uid for name, w in self.workers.items() if w.record.pod_uid}

    def _record_adopted(self, record: WorkerRecord) -> None:
        try:
            place(self.allocator, self._request(record.spec), record.gpus)
        except DoesNotFit as exc:
            # It runs already: record it beyond capacity rather than lose it.
            log.warning("re-adopted worker %s is over this node's capacity: %s", record.name, exc)
            self.allocator.allocate(self._request(record.spec), list(record.gpus), force=True)

    @staticmethod
    def _request(spec: WorkerSpec) -> PodRequest:
        """What the node's allocator books for a worker."""
        return PodRequest(
            key=spec.name,
            name=spec.name,
            tflops=spec.tflops_request_milli,
            tflops_limit=spec.tflops_limit_milli or spec.tflops_request_milli,
            vram=spec.booked_vram_bytes,
            vram_limit=spec.vram_limit_bytes,
            gpu_count=spec.gpu_count or 1,
        )

    def create_worker(self, spec: WorkerSpec, *, overcommit: bool = False) -> Worker:
        """A worker and its region. A pod worker (pod_uid set, named NAMESPACE/POD) lives in the
        pod's directory; with overcommit (the scheduler already bound the pod) a GPU that is
        full locally takes it anyway, beyond capacity, and Worker.overcommitted says why."""
        name, gpus, gpu_count = spec.name, spec.gpus, spec.gpu_count
        if spec.pod_uid:
            check_pod_worker_name(name)
        else:
            check_name(name)
        if name in self.workers:
            raise ValidationError.single("name", f"worker {name!r} exists", "a new name")
        if spec.tflops_limit_milli and spec.tflops_request_milli > spec.tflops_limit_milli:
            raise ValidationError.single("tflops_limit", "below the request", "tflops_limit >= tflops_request")
        if spec.vram_limit_bytes <= 0:
            raise ValidationError.single("vram", "must be positive", "a quantity such as 4Gi")
        if not 0 <= spec.vram_request_bytes <= spec.vram_limit_bytes:
            raise ValidationError.single("vram_request", "above the limit", "0 <= vram request <= vram limit")
        if not 1 <= gpu_count <= max(1, len(self.gpus)):
            raise DoesNotFit(f"asked for {gpu_count} GPU(s); this node has {len(self.gpus)}")
        unknown = [u for u in gpus if u not in self.gpus]
        if unknown:
            raise ValidationError.single("gpus", f"unknown GPU {', '.join(unknown)}", "UUIDs from /api/v1/devices")
        refused = [u for u in gpus if u in self.unavailable]
        if refused:
            raise GPUUnavailable(f"not available to TensorFusion: {self._unavailable_text(refused)}")
        draft = new_record(spec)
        overcommitted = ""
        try:
            allocation = place(self.allocator, self._request(spec), gpus)
            chosen = allocation.gpu_ids
        except DoesNotFit as exc:
            if overcommit and gpus:
                overcommitted = str(exc)
                log.warning("worker %s placed beyond this node's capacity: %s", name, exc)
                self.allocator.allocate(self._request(spec), list(gpus), force=True)
                chosen = gpus
            elif gpus or not self.unavailable:
                raise
            else:
                raise GPUUnavailable(f"{exc}; not offered: {self._unavailable_text(sorted(self.unavailable))}") from exc
        record = dataclasses.replace(draft, spec=dataclasses.replace(spec, gpus=chosen, gpu_count=len(chosen)))
        try:
            record, region = self.directory.create(record)
        except Exception:
            self.allocator.release(name)
            raise
        worker = Worker(record, region, {u: DeviceUsage() for u in record.gpus}, overcommitted=overcommitted)
        self._enable_tiering(worker)
        self.workers[name] = worker
        self._apply_initial_rates(worker)
        log.info("worker %s created on %s", name, ", ".join(record.gpus))
        self._changed()
        return worker

    def _enable_tiering(self, worker: Worker) -> None:
        """Before the workload starts (its processes read the bit once): movable memory when
        this node expands VRAM and the workload did not opt out."""
        if self.tiering.enabled and worker.record.spec.vram_tiering:
            worker.region.set_tier_enabled(True)
            worker.tiered = True
            if worker.record.pod_uid and self.tiering.tier_dir:
                tierdirs.make(self.tiering.tier_dir, worker.record.name, worker.record.spec.tenant_uid)
        worker.tiers.last_active = time.monotonic()

    def _apply_initial_rates(self, worker: Worker) -> None:
        """Before the first tick: the request's worth at the controller's current gain."""
        for device, uuid in enumerate(worker.record.gpus):
            share = self._share(worker.record.spec, uuid)
            controller = self.controllers[uuid]
            gain = controller.settings.initial_gain
            gains = list(controller.tenants.values())
            if gains:
                gain = sum(gains) / len(gains)
            self._set_rate(worker, device, max(1, round(max(share.request, 0.01) * gain)), max(1, round(gain * 0.005)))

    def _share(self, spec: WorkerSpec, uuid: str) -> TenantShare:
        return share_of(spec.tflops_request_milli, spec.tflops_limit_milli, self.rated[uuid])

    def resize_worker(self, wanted: WorkerSpec) -> Worker:
        """New limits for a running worker, in place (its name, GPUs and owner stay). A VRAM
        limit below what it holds stops its new allocations and frees nothing; the compute rate
        follows at once. The GPUs were bound by the scheduler: the local books take the new
        amounts even beyond capacity."""
        worker = self.workers.get(wanted.name)
        if worker is None:
            raise ValidationError.single("name", f"no worker {wanted.name!r}", "an existing worker")
        if wanted.tflops_limit_milli and wanted.tflops_request_milli > wanted.tflops_limit_milli:
            raise ValidationError.single("tflops_limit", "below the request", "tflops_limit >= tflops_request")
        if wanted.vram_limit_bytes <= 0 or not 0 <= wanted.vram_request_bytes <= wanted.vram_limit_bytes:
            raise ValidationError.single("vram", "must be positive and >= the request", "0 <= request <= limit")
        spec = dataclasses.replace(
            worker.record.spec,
            tflops_request_milli=wanted.tflops_request_milli,
            tflops_limit_milli=wanted.tflops_limit_milli,
            vram_limit_bytes=wanted.vram_limit_bytes,
            vram_request_bytes=wanted.vram_request_bytes,
        )
        record = dataclasses.replace(worker.record, spec=spec)
        self.directory.update(record)  # first: a restart must never see the region ahead of the record
        for device, uuid in enumerate(record.gpus):
            worker.region.set_limits(device, record.device_spec(uuid))
            used = worker.region.devices()[device].vram_used_bytes
            if used > spec.vram_limit_bytes:
                log.info(
                    "worker %s: VRAM limit %d is below its use %d on GPU %d; new allocations fail until it frees some",
                    spec.name,
                    spec.vram_limit_bytes,
                    used,
                    device,
                )
        self.allocator.release(spec.name)
        try:
            place(self.allocator, self._request(spec), record.gpus)
        except DoesNotFit:
            self.allocator.allocate(self._request(spec), list(record.gpus), force=True)
        worker.record = record
        self._apply_initial_rates(worker)
        log.info(
            "worker %s resized: %d/%d mTFLOPS, VRAM %d/%d",
            spec.name,
            spec.tflops_request_milli,
            spec.tflops_limit_milli,
            spec.vram_request_bytes,
            spec.vram_limit_bytes,
        )
        self._changed()
        return worker

    def remove_worker(self, name: str) -> bool:
        worker = self.workers.pop(name, None)
        if worker is None:
            return False
        self.allocator.release(name)
        worker.region.close()
        self.directory.remove(name, worker.record.made_dirs)
        if worker.record.pod_uid and self.tiering.tier_dir:
            tierdirs.remove(self.tiering.tier_dir, name)
        log.info("worker %s released", name)
        self._changed()
        return True

    def close(self) -> None:
        for worker in self.workers.values():
            worker.region.close()
        self.workers.clear()

    # ---- the loop -----------------------------------------------------------------------

    async def run(self) -> None:
        next_tick = time.monotonic()
        last = time.monotonic()
        while True:
            now = time.monotonic()
            self.step(now - last)
            last = now
            next_tick += self.tick
            await asyncio.sleep(max(0.0, next_tick - time.monotonic()))

    def step(self, dt: float) -> None:
        self._release_dead_owners()
        for uuid in self.gpus:
            self._step_gpu(uuid, dt)
        if self.tiering.enabled:
            now = time.monotonic()
            if now - self._tier_measured >= TIER_CAPACITY_PERIOD:
                self.measure_tiers(now)
            self._step_tiers(now)

    # ---- VRAM tiering -------------------------------------------------------------------

    def request_tier(self, worker: Worker, to: str) -> None:
        """Asks the worker's processes to move (host, disk) or come back (resume)."""
        if not worker.tiered:
            why = "this node does not expand VRAM" if not self.tiering.enabled else "the workload opted out"
            raise TieringOff(f"worker {worker.record.name!r} cannot be frozen: {why}")
        if to == "disk" and not self.tiering.tier_dir:
            raise TieringOff("this node has no disk tier (--tier-dir)")
        worker.region.request_tier(to)
        worker.tiers.acked = False
        log.info("worker %s: %s requested", worker.record.name, "resume" if to == "resume" else f"freeze to {to}")

    def _read_tiers(self, worker: Worker) -> None:
        books, state = worker.tiers, worker.region.tier_state()
        books.where, books.host_bytes, books.disk_bytes = state.where, state.host_bytes, state.disk_bytes
        books.pinned_bytes, books.acked = state.pinned_bytes, state.acked
        # Count what the live processes did since the last look (a dead one's counts vanish).
        books.freezes += max(0, state.freezes - books.seen_freezes)
        books.resumes += max(0, state.resumes - books.seen_resumes)
        books.seen_freezes, books.seen_resumes = state.freezes, state.resumes
        if state.acked and state.failures:
            log.debug("worker %s: last move failed (%s); data stayed put", worker.record.name, state.failures)

    @staticmethod
    def _note_activity(worker: Worker, now: float) -> None:
        books = worker.tiers
        launches = sum(u.launches for u in worker.usage.values())
        if launches != books.last_launches or any(u.utilization > 0 for u in worker.usage.values()):
            books.last_active = now
        books.last_launches = launches

    def _step_tiers(self, now: float) -> None:
        tiered = [w for w in self.workers.values() if w.tiered]
        for worker in tiered:
            self._read_tiers(worker)
            self._note_activity(worker, now)
        for uuid, gpu in self.gpus.items():
            candidates = []
            for w in tiered:
                if uuid not in w.usage:
                    continue
                used = w.region.devices()[w.record.gpus.index(uuid)].vram_used_bytes
                idle = now - w.tiers.last_active
                resident = max(0, used - w.tiers.host_bytes - w.tiers.disk_bytes)
                candidates.append(
                    TierCandidate(
                        w.record.name,
                        w.record.spec.qos,
                        idle,
                        idle < 2 * self.tick,  # launched within the last ticks
                        w.tiers.where,
                        resident,
                        w.record.spec.booked_vram_bytes,
                        pending=not w.tiers.acked,
                        moved_bytes=w.tiers.host_bytes + w.tiers.disk_bytes,
                    )
                )
            for action in plan_tiers(gpu.vram_bytes, candidates, self.tiering):
                worker = self.workers[action.name]
                log.info("worker %s: %s (%s)", action.name, f"to {action.to}", action.reason)
                self.request_tier(worker, action.to)

    def _release_dead_owners(self) -> None:
        for name, worker in list(self.workers.items()):
            if not owner_alive(worker.record):
                log.info("worker %s: its owner process %d is gone", name, worker.record.owner_pid)
                self.remove_worker(name)
                continue
            self._check_integrity(worker)
            swept = worker.region.sweep()
            if swept.reclaimed_slots:
                log.info("worker %s: reclaimed %d dead process(es)", name, swept.reclaimed_slots)

    def _check_integrity(self, worker: Worker) -> None:
        """What the tenant can write (its state file) is checked every tick: a damaged header
        is rebuilt in place, each token bucket is policed from the limits file."""
        problem = worker.region.state_problem()
        if problem:
            worker.region.rebuild_state_header()
            self.breach(worker, "StateFileDamaged", f"state file damaged ({problem}); rebuilt from the record")
        for device in range(len(worker.record.gpus)):
            for found in worker.region.police_compute(device):
                self.breach(worker, "ComputeTampered", f"device {device}: {found}; clamped")

    def breach(self, worker: Worker, reason: str, message: str) -> None:
        """Reports a worker found past its isolation: one log line naming it, a metric, and
        (pod workers) an Event, plus an eviction when the node's action is evict."""
        worker.breaches += 1
        evict = self.breach_action == "evict" and worker.pod is not None
        log.warning("worker %s: isolation breach: %s%s", worker.record.name, message, "; evicting" if evict else "")
        pod = worker.pod
        self.breaches.append(
            Breach(
                worker.record.name,
                (pod[0], pod[1], worker.record.pod_uid) if pod else None,
                reason,
                message,
                evict,
            )
        )
        del self.breaches[:-100]  # nobody draining (no Kubernetes): keep the newest only

    def _step_gpu(self, uuid: str, dt: float) -> None:
        probe = self.probes[uuid]
        self.device_utilization[uuid] = probe.utilization()
        samples = probe.process_samples()
        end_us = max((s.end_us for s in samples), default=0)
        period_end = end_us / 1e6
        period = 0.1
        by_pid = {s.pid: s.sm_percent for s in samples if s.end_us == end_us}
        memory = probe.process_memory()
        now = time.time()
        tenants: list[TenantSample] = []
        members: list[tuple[Worker, int]] = []
        for worker in self.workers.values():
            if uuid not in worker.usage:
                continue
            device = worker.record.gpus.index(uuid)
            usage = worker.usage[uuid]
            pids = worker.pids()
            stats = self._stats(worker, device)
            if stats is not None:
                usage.launches, usage.throttled, usage.cost = stats
                usage.history.add(now, usage.cost)
            throttled = usage.throttled > usage.last_throttled
            launches = usage.launches - usage.last_launches
            launch_cost = (usage.cost - usage.last_cost) / launches if launches > 0 else 0.0
            usage.last_throttled, usage.last_launches, usage.last_cost = usage.throttled, usage.launches, usage.cost
            utilization = cost_rate = None
            if samples:
                utilization = sum(by_pid.get(pid, 0) for pid in pids) / 100.0
                usage.utilization = utilization
                cost_rate = usage.history.rate(period_end - period, period_end)
            usage.nvml_vram_bytes = sum(memory.get(pid, 0) for pid in pids)
            self._check_vram(worker, device, usage)
            share = self._share(worker.record.spec, uuid)
            tenants.append(TenantSample(worker.record.name, share, utilization, cost_rate, throttled, launch_cost))
            members.append((worker, device))
        busy = self.device_utilization[uuid] / 100.0 if samples else None
        controller = self.controllers[uuid]
        commands = controller.step(tenants, dt, busy)
        if log.isEnabledFor(logging.DEBUG):
            for sample, command in zip(tenants, commands, strict=True):
                log.debug("tick %s: %s -> %s", uuid[-4:], sample, command)
        for (worker, device), command in zip(members, commands, strict=True):
            if worker.adopted and not controller.measured(worker.record.name) and worker.adopted_ticks < ADOPT_TICKS:
                worker.adopted_ticks += 1
                worker.usage[uuid].target, worker.usage[uuid].busy = command.target, command.busy
                continue
            self._apply(worker, device, worker.usage[uuid], command)

    def _stats(self, worker: Worker, device: int) -> tuple[int, int, int] | None:
        compute_stats = getattr(worker.region, "compute_stats", None)
        if compute_stats is None:
            return None
        stats = compute_stats(device)
        return int(stats.launches), int(stats.throttled), int(stats.cost_admitted)

    def _apply(self, worker: Worker, device: int, usage: DeviceUsage, command: TenantCommand) -> None:
        usage.target, usage.command, usage.busy = command.target, command.command, command.busy
        if (command.rate, command.burst) != (usage.rate, usage.burst):
            self._set_rate(worker, device, command.rate, command.burst)
            usage.rate, usage.burst = command.rate, command.burst

    def _set_rate(self, worker: Worker, device: int, rate: int, burst: int) -> None:
        setter = getattr(worker.region, "set_compute_rate", None)
        if setter is None:
            if self.compute_limiting:
                log.error("this build's regions have no compute rate (native half missing): monitoring only")
                self.compute_limiting = False
            return
        try:
            setter(device, rate, burst)
        except RegionError as exc:
            log.error("worker %s: cannot set its compute rate: %s", worker.record.name, exc)

    def _check_vram(self, worker: Worker, device: int, usage: DeviceUsage) -> None:
        limit = worker.record.spec.vram_limit_bytes
        recorded = worker.region.devices()[device].vram_used_bytes
        key = f"{worker.record.name}/{device}"
        if usage.nvml_vram_bytes > limit + VRAM_SLACK or usage.nvml_vram_bytes > recorded + VRAM_SLACK:
            if key not in self._warned:
                # Memory the shim never saw (LD_PRELOAD dropped, raw ioctls): NVML is the backstop.
                self.breach(
                    worker,
                    "VRAMOverLimit",
                    f"NVML charges its processes {usage.nvml_vram_bytes} bytes on GPU {device} "
                    f"(recorded {recorded}, limit {limit})",
                )
                self._warned.add(key)
        else:
            self._warned.discard(key)

    def set_freeze_ttls(self, ttls: dict[str, tuple[float | None, float | None]], sources: dict[str, str]) -> None:
        """New idle TTLs per QoS (the pool's template changed): the next tick plans with them."""
        if ttls == self.tiering.freeze_ttls and sources == self.freeze_ttl_sources:
            return
        if ttls != self.tiering.freeze_ttls:
            described = (f"{q}={_ttl(m)}/{_ttl(d)} ({sources.get(q, '')})" for q, (m, d) in ttls.items())
            log.info("freeze TTLs now %s", ", ".join(described))
        self.tiering = dataclasses.replace(self.tiering, freeze_ttls=dict(ttls))
        self.freeze_ttl_sources = dict(sources)

    def tiering_view(self) -> dict[str, Any]:
        """The tiering settings in force, each QoS level's TTLs with where they came from."""
        t = self.tiering
        return {
            "enabled": t.enabled,
            "expand_to_host_mem_percent": t.expand_to_host_mem_percent,
            "expand_to_host_disk_percent": t.expand_to_host_disk_percent,
            # What each percentage is of, and where it came from (flag, GPUPool/NAME, default).
            "expansion": {
                "host_mem": {
                    "percent": t.expand_to_host_mem_percent,
                    "of": "gpu_memory" if t.host_mem_of == OF_GPU else "host_ram",
                    "source": self.expansion_sources.get("host_mem", ""),
                },
                "host_disk": {
                    "percent": t.expand_to_host_disk_percent,
                    "of": "gpu_memory" if t.host_disk_of == OF_GPU else "tier_dir_free",
                    "source": self.expansion_sources.get("host_disk", ""),
                },
            },
            "tier_dir": t.tier_dir,
            "freeze_ttls": {
                qos: {"to_host_after_s": mem, "to_disk_after_s": disk, "source": self.freeze_ttl_sources.get(qos, "")}
                for qos, (mem, disk) in t.freeze_ttls.items()
            },
        }

    # ---- views --------------------------------------------------------------------------

    def device_view(self) -> list[dict[str, Any]]:
        out = []
        for g in self.gpus.values():
            state = self.allocator.gpus[g.uuid]
            out.append(
                {
                    "index": g.index,
                    "uuid": g.uuid,
                    "name": g.name,
                    "simulated": g.simulated,
                    "rated_tflops": self.rated[g.uuid],
                    "vram_bytes": g.vram_bytes,
                    "utilization_percent": self.device_utilization.get(g.uuid, 0),
                    "allocated": {"tflops_request_milli": state.used_tflops, "vram_bytes": state.used_vram},
                    "free": {"tflops_milli": state.free_tflops, "vram_bytes": state.free_vram},
                    "workers": sorted(state.workers),
                    "offered": g.uuid not in self.unavailable,
                    "unavailable_reason": self.unavailable.get(g.uuid, ""),
                    "device_plugin_holders": list(self.device_plugin_holders.get(g.uuid, ())),
                    "tiers": self._capacity_view(g.uuid),
                }
            )
        return out

    def _capacity_view(self, uuid: str) -> dict[str, Any] | None:
        cap = self.tier_capacity.get(uuid)
        if cap is None:
            return None
        return {
            "host_bytes": cap.host_bytes,
            "disk_bytes": cap.disk_bytes,
            "disk_ok": cap.disk_ok,
            "message": cap.message,
        }

    def worker_view(self, worker: Worker) -> dict[str, Any]:
        r = worker.record.spec
        devices = worker.region.devices()
        pod = worker.pod
        return {
            "name": r.name,
            "pod": {"namespace": pod[0], "name": pod[1], "uid": r.pod_uid} if pod else None,
            "region": str(worker.region.path),
            "owner_pid": r.owner_pid,
            "tflops_request_milli": r.tflops_request_milli,
            "tflops_limit_milli": r.tflops_limit_milli,
            "vram_limit_bytes": r.vram_limit_bytes,
            "processes": [{"pid": p.pid, "alive": p.alive} for p in worker.region.processes()],
            "gpus": [
                {
                    "uuid": uuid,
                    "index": self.gpus[uuid].index,
                    "share": {
                        "request": self._share(r, uuid).request,
                        "limit": self._share(r, uuid).limit,
                        "target": u.target,
                        "measured": u.utilization,
                    },
                    "rate_cost_per_s": u.rate,
                    "burst_cost": u.burst,
                    "busy": u.busy,
                    "launches": u.launches,
                    "throttled_launches": u.throttled,
                    "vram_used_bytes": devices[i].vram_used_bytes,
                    "nvml_vram_bytes": u.nvml_vram_bytes,
                }
                for i, (uuid, u) in enumerate(worker.usage.items())
            ],
            "qos": r.qos,
            "vram_tiering": worker.tiered,
            "tier_dir": self.tiering.tier_dir if worker.tiered else "",
            "tiers": self._tiers_view(worker, devices),  # first: it reads the region's tier state
            "frozen": worker.tiered and worker.tiers.where != "device",
            "tier_pending": not worker.tiers.acked,  # a freeze or resume not yet done by every process
            "pinned_bytes": worker.tiers.pinned_bytes,
            "vram_freezed_cnt": worker.tiers.freezes,
            "vram_resumed_cnt": worker.tiers.resumes,
        }

    def _tiers_view(self, worker: Worker, devices: list[Any]) -> dict[str, int]:
        if worker.tiered:
            self._read_tiers(worker)
        used = sum(d.vram_used_bytes for d in devices)
        host, disk = worker.tiers.host_bytes, worker.tiers.disk_bytes
        return {"device": max(0, used - host - disk), "host": host, "disk": disk}


def _ttl(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:g}s"
