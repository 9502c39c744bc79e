"""VRAM tiering policy: which workers to freeze to host memory or disk, per GPU (pure logic).

The node (daemons/hypervisor) feeds one `TierCandidate` per worker on a GPU each tick and
writes the returned requests to the workers' regions; the shim does the moves.  Two rules:

- idle time: a worker idle for its QoS's freeze-to-memory TTL goes to host memory, and for its
  freeze-to-disk TTL to disk (defaults below; `critical` never);
- pressure: the device must hold every active worker's request (or what it holds, when more)
  plus what idle workers keep on it; when that exceeds the GPU, idle workers move to host
  memory, lowest QoS first, then longest idle, until it fits.  An active worker is never moved;
- room: an active worker left partly on the warm tier is brought back once it fits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from tfcore.model.errors import Problem, ValidationError
from tfcore.model.hypervisor import TTL_FORM, parse_ttl

QOS_LEVELS: Final = ("low", "medium", "high", "critical")
# The seed's guidance: "reserve at least 100GB of free disk per GPU node"; below it the node
# sells no disk tier (and says so).
MIN_FREE_DISK_BYTES: Final = 100 * 10**9
NEVER: Final = None
# What an expansion percentage is a percentage of: each GPU's memory (the node's own
# --vram-expand-* flags, as in standalone), or the host's RAM / the tier directory's free space
# shared by the node's GPUs (a pool's capacityConfig.oversubscription, as the scheduler sells it).
OF_GPU: Final = "gpu"
OF_HOST: Final = "host"

# (freeze to host memory after, freeze to disk after) in seconds of idleness; None = never.
DEFAULT_FREEZE_TTLS: Final[dict[str, tuple[float | None, float | None]]] = {
    "low": (60.0, 3600.0),
    "medium": (120.0, 7200.0),
    "high": (86400.0, 604800.0),
    "critical": (None, None),
}


def parse_duration(text: str, *, field: str) -> float | None:
    """A freeze TTL in seconds (the template's grammar: `30s`, `2m`, `1h30m`, `1d`, `1w`) or
    `never` (None)."""
    if text == "never":
        return None
    try:
        return parse_ttl(text)
    except ValueError:
        raise ValidationError.single(field, repr(text), f"{TTL_FORM}, or never") from None


def parse_freeze_ttl(text: str, *, field: str = "--freeze-ttl") -> tuple[str, float | None, float | None]:
    """`QOS=MEM/DISK`, e.g. `low=1m/1h` or `high=1d/never`: the TTLs of one QoS level."""
    qos, eq, rest = text.partition("=")
    mem, slash, disk = rest.partition("/")
    problems: list[Problem] = []
    if not eq or not slash:
        raise ValidationError.single(field, repr(text), "QOS=MEM/DISK, e.g. low=1m/1h")
    if qos not in QOS_LEVELS:
        problems.append(Problem(field, f"QoS {qos!r}", " or ".join(QOS_LEVELS)))
    values: list[float | None] = []
    for part in (mem, disk):
        try:
            values.append(parse_duration(part, field=field))
        except ValidationError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ValidationError(problems)
    mem_ttl, disk_ttl = values
    if mem_ttl is not None and disk_ttl is not None and disk_ttl < mem_ttl:
        raise ValidationError.single(field, f"{text!r}: disk before memory", "MEM <= DISK")
    return qos, mem_ttl, disk_ttl


@dataclass(frozen=True)
class TierSettings:
    """A node's tiering: how far VRAM is sold beyond the GPU, where the cold tier lives, TTLs."""

    expand_to_host_mem_percent: int = 0
    expand_to_host_disk_percent: int = 0
    tier_dir: str = ""
    freeze_ttls: dict[str, tuple[float | None, float | None]] = field(default_factory=lambda: dict(DEFAULT_FREEZE_TTLS))
    min_free_disk_bytes: int = MIN_FREE_DISK_BYTES
    host_mem_of: str = OF_GPU  # OF_GPU or OF_HOST: what expand_to_host_mem_percent is of
    host_disk_of: str = OF_GPU  # likewise for expand_to_host_disk_percent

    def __post_init__(self) -> None:
        problems = [
            Problem(flag, str(value), "a percentage from 0 to 1000")
            for flag, value in (
                ("--vram-expand-to-host-mem", self.expand_to_host_mem_percent),
                ("--vram-expand-to-host-disk", self.expand_to_host_disk_percent),
            )
            if not 0 <= value <= 1000
        ]
        if self.expand_to_host_disk_percent and not self.tier_dir:
            problems.append(
                Problem("--tier-dir", "unset", "a directory for the disk tier (with --vram-expand-to-host-disk)")
            )
        problems += [
            Problem(name, repr(value), f"{OF_GPU} or {OF_HOST}")
            for name, value in (("host_mem_of", self.host_mem_of), ("host_disk_of", self.host_disk_of))
            if value not in (OF_GPU, OF_HOST)
        ]
        if problems:
            raise ValidationError(problems)

    @property
    def enabled(self) -> bool:
        return self.expand_to_host_mem_percent > 0 or self.expand_to_host_disk_percent > 0

    def virtual_vram(self, physical: int) -> int:
        """What the node would sell on a GPU of `physical` bytes with room for both tiers."""
        pct = self.expand_to_host_mem_percent + (self.expand_to_host_disk_percent if self.tier_dir else 0)
        return physical + physical * pct // 100

    def ttls(self, qos: str) -> tuple[float | None, float | None]:
        return self.freeze_ttls.get(qos, DEFAULT_FREEZE_TTLS["medium"])


@dataclass(frozen=True)
class TierCapacity:
    """What a node can really back beyond its GPUs, per GPU, as of one look at the machine."""

    host_bytes: int  # per GPU, in host memory
    disk_bytes: int  # per GPU, in the tier directory
    disk_ok: bool  # the tier directory has the guidance's free space (or there is no disk tier)
    message: str  # why the disk tier is not sold ('' when it is, or none is configured)


def tier_capacity(
    settings: TierSettings, physical: int, gpus: int, *, ram_available: int, ram_total: int, disk_free: int
) -> TierCapacity:
    """The sellable tiers per GPU: the configured percentages, capped by what is really there.

    A percentage is of each GPU's memory, or (a pool's, OF_HOST) of the machine's RAM or the tier
    directory's free space shared by the GPUs, as the scheduler counts it.  Host memory: what is
    available less a tenth of the machine's RAM kept for the node itself, shared by the GPUs.
    Disk: the tier directory's free space shared by the GPUs, and none at all below
    `min_free_disk_bytes`."""
    gpus = max(1, gpus)
    room = max(0, ram_available - ram_total // 10) // gpus
    mem_base = ram_total // gpus if settings.host_mem_of == OF_HOST else physical
    host = min(mem_base * settings.expand_to_host_mem_percent // 100, room)
    if not settings.tier_dir or settings.expand_to_host_disk_percent == 0:
        return TierCapacity(host, 0, True, "")
    if disk_free < settings.min_free_disk_bytes:
        message = (
            f"tier directory {settings.tier_dir} has {disk_free // 10**9} GB free, below the "
            f"{settings.min_free_disk_bytes // 10**9} GB a node with a disk tier must keep: no disk tier is sold"
        )
        return TierCapacity(host, 0, False, message)
    disk_base = disk_free // gpus if settings.host_disk_of == OF_HOST else physical
    disk = min(disk_base * settings.expand_to_host_disk_percent // 100, disk_free // gpus)
    return TierCapacity(host, disk, True, "")


@dataclass(frozen=True)
class TierCandidate:
    """One tiering-enabled worker on one GPU, as of this tick."""

    name: str
    qos: str
    idle_s: float  # since its last launch (0 while active)
    active: bool
    where: str  # device, host or disk (the coldest place any of its processes is at)
    resident_bytes: int  # on this GPU now
    request_bytes: int  # what it is promised on the device while active
    pending: bool = False  # a request is not yet acknowledged: leave it alone this tick
    moved_bytes: int = 0  # in host memory or on disk now


@dataclass(frozen=True)
class TierAction:
    name: str
    to: str  # host, disk, or resume
    reason: str  # ttl, pressure, or room


def plan_tiers(physical_bytes: int, candidates: list[TierCandidate], settings: TierSettings) -> list[TierAction]:
    """The moves for one GPU this tick (at most one per worker)."""
    actions: dict[str, TierAction] = {}
    for c in candidates:
        if c.active or c.pending:
            continue
        mem_ttl, disk_ttl = settings.ttls(c.qos)
        if settings.tier_dir and disk_ttl is not None and c.idle_s >= disk_ttl and c.where != "disk":
            actions[c.name] = TierAction(c.name, "disk", "ttl")
        elif mem_ttl is not None and c.idle_s >= mem_ttl and c.where == "device":
            actions[c.name] = TierAction(c.name, "host", "ttl")
    need = sum(
        max(c.resident_bytes, c.request_bytes) if c.active else c.resident_bytes
        for c in candidates
        if c.name not in actions
    )
    rank = {q: i for i, q in enumerate(QOS_LEVELS)}
    idle = sorted(
        (c for c in candidates if not c.active and not c.pending and c.name not in actions and c.resident_bytes > 0),
        key=lambda c: (rank.get(c.qos, 1), -c.idle_s),
    )
    for c in idle:
        if need <= physical_bytes:
            break
        if c.qos == "critical":
            continue  # never frozen, not even under pressure
        actions[c.name] = TierAction(c.name, "host", "pressure")
        need -= c.resident_bytes
    _bring_back_active(physical_bytes, candidates, actions)
    return list(actions.values())


def _bring_back_active(physical_bytes: int, candidates: list[TierCandidate], actions: dict[str, TierAction]) -> None:
    """An active worker that resumed only partly (no device memory then) runs on the warm tier;
    once what stays resident leaves room for the rest of it, it is asked back onto the device."""
    resident = sum(c.resident_bytes for c in candidates if c.name not in actions)
    for c in candidates:
        if c.active and not c.pending and c.moved_bytes > 0 and resident + c.moved_bytes <= physical_bytes:
            actions[c.name] = TierAction(c.name, "resume", "room")
            resident += c.moved_bytes
