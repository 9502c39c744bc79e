"""Worker regions in a directory the hypervisor controls, and their records.

Per worker NAME: the region (NAME.shm and NAME.shm.limits, see docs/native.md) and a record
NAME.json (what was asked, which GPUs, who owns it).  Both outlive the daemon, so a restart
re-adopts every worker by reading the directory; nothing running is touched.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from tfcore.ipc import DeviceSpec, Region, RegionError, limits_path
from tfcore.model.errors import ValidationError

log = logging.getLogger(__name__)
NAME_RE: Final = re.compile(r"[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?")


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    name: str
    gpus: tuple[str, ...]  # UUIDs, in region device order
    tflops_request_milli: int
    tflops_limit_milli: int
    vram_bytes: int
    owner_pid: int = 0  # 0: no owner process (released by the API only)
    owner_start: int = 0  # the owner's start time (clock ticks since boot), guards pid reuse
    created: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "gpus": list(self.gpus)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WorkerRecord:
        return cls(**{**data, "gpus": tuple(data["gpus"])})


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise ValidationError.single(
            "name", f"bad worker name {name!r}", "1-63 of a-z 0-9 . _ -, alphanumeric at both ends"
        )
    return name


def process_start(pid: int) -> int | None:
    """The start time of pid from /proc (None when it does not exist)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def owner_alive(record: WorkerRecord) -> bool:
    if record.owner_pid <= 0:
        return True
    return process_start(record.owner_pid) == record.owner_start


class WorkerDirectory:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True, mode=0o755)

    def region_path(self, name: str) -> Path:
        return self.root / f"{name}.shm"

    def record_path(self, name: str) -> Path:
        return self.root / f"{name}.json"

    def create(self, record: WorkerRecord, tenant_uid: int | None = None) -> Region:
        specs = [
            DeviceSpec(uuid, record.vram_bytes, record.tflops_request_milli, record.tflops_limit_milli)
            for uuid in record.gpus
        ]
        region = Region.create(self.region_path(record.name), specs, tenant_uid=tenant_uid)
        temporary = self.record_path(record.name).with_suffix(".json.tmp")
        temporary.write_text(json.dumps(record.to_json()))
        os.replace(temporary, self.record_path(record.name))
        return region

    def remove(self, name: str) -> None:
        for path in (self.record_path(name), limits_path(self.region_path(name)), self.region_path(name)):
            path.unlink(missing_ok=True)

    def adopt(self) -> list[tuple[WorkerRecord, Region]]:
        """Every worker found in the directory, opened; unusable leftovers are reported and removed."""
        found = []
        for record_file in sorted(self.root.glob("*.json")):
            name = record_file.stem
            try:
                record = WorkerRecord.from_json(json.loads(record_file.read_text()))
                region = Region.open(self.region_path(name), readonly=False)
            except (OSError, ValueError, TypeError, KeyError, RegionError) as exc:
                log.error("worker %s: cannot re-adopt (%s); removing its files", name, exc)
                self.remove(name)
                continue
            found.append((record, region))
        for orphan in self.root.glob("*.shm"):
            if not self.record_path(orphan.stem).exists():
                log.warning("region %s has no worker record; removing it", orphan)
                self.remove(orphan.stem)
        return found


def new_record(
    name: str, gpus: tuple[str, ...], request: int, limit: int, vram: int, *, owner_pid: int = 0
) -> WorkerRecord:
    start = 0
    if owner_pid:
        found = process_start(owner_pid)
        if found is None:
            raise ValidationError.single("owner_pid", f"no process {owner_pid}", "the pid of a running process")
        start = found
    return WorkerRecord(name, gpus, request, limit, vram, owner_pid, start, time.time())
