"""Worker regions in a directory the hypervisor controls, and their records.

Two layouts under the root (STATE_DIR/workers):

- API workers, NAME: the region NAME.shm + NAME.shm.limits (see docs/native.md) and a record
  NAME.json (what was asked, which GPUs, who owns it);
- pod workers, NAMESPACE/POD: the directory NAMESPACE/POD/ (which the pod mounts) holding the
  region shm + shm.limits and record.json.

Both outlive the daemon, so a restart re-adopts every worker by reading the directory; nothing
running is touched.  Pod directories are reachable from inside pods, so nothing there is
followed through a symlink, and only directories the hypervisor made are ever removed (with
rmdir: never recursively).
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from tfcore.hypervisor.podworkers import pod_worker_name, split_pod_worker_name
from tfcore.hypervisor.workerspec import WorkerSpec
from tfcore.ipc import DeviceSpec, Region, RegionError, limits_path, repair_state
from tfcore.model.errors import ValidationError

log = logging.getLogger(__name__)
NAME_RE: Final = re.compile(r"[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?")


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    """A worker as made: its spec (gpus: the ones chosen) and what guards and cleans up after it."""

    spec: WorkerSpec
    owner_start: int = 0  # the owner's start time (clock ticks since boot), guards pid reuse
    created: float = 0.0
    made_dirs: tuple[str, ...] = ()  # directories under the root the hypervisor made for it

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def gpus(self) -> tuple[str, ...]:
        return self.spec.gpus

    @property
    def pod_uid(self) -> str:
        return self.spec.pod_uid

    @property
    def owner_pid(self) -> int:
        return self.spec.owner_pid

    def device_spec(self, uuid: str) -> DeviceSpec:
        s = self.spec
        return DeviceSpec(uuid, s.vram_limit_bytes, s.tflops_request_milli, s.tflops_limit_milli)

    def to_json(self) -> dict[str, Any]:
        """The record file (its keys predate WorkerSpec: `vram_bytes` is the VRAM limit)."""
        s = self.spec
        return {
            "name": s.name,
            "gpus": list(s.gpus),
            "tflops_request_milli": s.tflops_request_milli,
            "tflops_limit_milli": s.tflops_limit_milli,
            "vram_bytes": s.vram_limit_bytes,
            "owner_pid": s.owner_pid,
            "owner_start": self.owner_start,
            "created": self.created,
            "pod_uid": s.pod_uid,
            "vram_request_bytes": s.vram_request_bytes,
            "workload": s.workload,
            "qos": s.qos,
            "vram_tiering": s.vram_tiering,
            "made_dirs": list(self.made_dirs),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WorkerRecord:
        gpus = tuple(data["gpus"])
        spec = WorkerSpec(
            data["name"],
            vram_limit_bytes=data["vram_bytes"],
            tflops_request_milli=data["tflops_request_milli"],
            tflops_limit_milli=data["tflops_limit_milli"],
            vram_request_bytes=data.get("vram_request_bytes", 0),
            gpu_count=len(gpus) or 1,
            gpus=gpus,
            owner_pid=data.get("owner_pid", 0),
            pod_uid=data.get("pod_uid", ""),
            workload=data.get("workload", ""),
            qos=data.get("qos", "medium"),
            vram_tiering=bool(data.get("vram_tiering", True)),
        )
        return cls(spec, data.get("owner_start", 0), data.get("created", 0.0), tuple(data.get("made_dirs") or ()))


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


POD_REGION: Final = "shm"
POD_RECORD: Final = "record.json"


class UnsafePath(RegionError):
    """A path under the root is a symlink or not what it should be: it is left alone."""


def _plain(path: Path, kind: int) -> bool:
    """Whether path exists as a plain file (S_IFREG) or directory (S_IFDIR), not a symlink."""
    try:
        return stat.S_IFMT(os.lstat(path).st_mode) == kind
    except OSError:
        return False


def _read_record(path: Path) -> WorkerRecord:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd) as file:
        return WorkerRecord.from_json(json.loads(file.read()))


class WorkerDirectory:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True, mode=0o755)

    def _pod(self, name: str) -> Path | None:
        """The directory of a pod worker (None for an API worker's name)."""
        found = split_pod_worker_name(name)
        return self.root.joinpath(*found) if found else None

    def region_path(self, name: str) -> Path:
        pod = self._pod(name)
        return pod / POD_REGION if pod else self.root / f"{name}.shm"

    def record_path(self, name: str) -> Path:
        pod = self._pod(name)
        return pod / POD_RECORD if pod else self.root / f"{name}.json"

    def create(self, record: WorkerRecord) -> tuple[WorkerRecord, Region]:
        """The worker's region and record; a pod worker's directory is made first when missing."""
        specs = [record.device_spec(uuid) for uuid in record.gpus]
        pod = split_pod_worker_name(record.name)
        if pod is not None:
            record = replace(record, made_dirs=self._make_pod_dir(*pod))
        try:
            # Creates both files or neither, and never replaces an existing one.
            region = Region.create(self.region_path(record.name), specs, tenant_uid=record.spec.tenant_uid)
        except BaseException:
            self._remove_dirs(record.made_dirs)
            raise
        try:
            self._write_record(record)
        except BaseException:
            region.close()
            self.remove(record.name, record.made_dirs)
            raise
        return record, region

    def _make_pod_dir(self, namespace: str, pod: str) -> tuple[str, ...]:
        """Makes ROOT/NAMESPACE/POD (mode 0755: the tenant may read, not write) where missing and
        checks that each part is a plain directory inside the root, never a symlink."""
        made: list[str] = []
        current = self.root
        for part in (namespace, pod):
            current = current / part
            try:
                os.mkdir(current, 0o755)  # never follows a symlink in the last component (EEXIST)
                made.append(str(current.relative_to(self.root)))
            except FileExistsError:
                pass
            if not _plain(current, stat.S_IFDIR):
                self._remove_dirs(tuple(made))
                raise UnsafePath(current, "exists and is not a plain directory (a symlink?); not used")
        if os.path.realpath(current) != os.path.join(os.path.realpath(self.root), namespace, pod):
            self._remove_dirs(tuple(made))
            raise UnsafePath(current, f"resolves outside {self.root}; not used")
        fd = os.open(current, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.fchmod(fd, 0o755)  # whatever the umask: the pod's processes must reach their files
        finally:
            os.close(fd)
        return tuple(made)

    def _write_record(self, record: WorkerRecord) -> None:
        path = self.record_path(record.name)
        temporary = path.with_name(path.name + ".tmp")
        temporary.unlink(missing_ok=True)  # unlink never follows a symlink
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps(record.to_json()))
        os.replace(temporary, path)  # replaces a symlink there, never its target

    def update(self, record: WorkerRecord) -> None:
        """Persist changed limits (a live resize): re-adoption after a restart restores these."""
        self._write_record(record)

    def remove(self, name: str, made_dirs: tuple[str, ...] = ()) -> None:
        """The worker's files (unlink: a symlink planted in their place goes, not its target),
        then the directories in made_dirs that are empty, innermost first."""
        region = self.region_path(name)
        for path in (self.record_path(name), limits_path(region), region):
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:  # e.g. a directory the kubelet made at `shm`: not ours
                log.warning("worker %s: %s left in place: %s", name, path, exc)
        self._remove_dirs(made_dirs)

    def _remove_dirs(self, made_dirs: tuple[str, ...]) -> None:
        for relative in sorted(made_dirs, key=len, reverse=True):
            path = self.root / relative
            if ".." in Path(relative).parts or not _plain(path, stat.S_IFDIR):
                continue
            try:
                os.rmdir(path)
            except OSError as exc:  # not empty (someone else's files) or busy: left
                log.info("directory %s left in place: %s", path, exc.strerror)

    def adopt(self) -> list[tuple[WorkerRecord, Region]]:
        """Every worker found in the directory, opened; unusable leftovers are reported and removed."""
        found = []
        for record_file in sorted(self.root.glob("*.json")):
            name = record_file.stem
            try:
                record = _read_record(record_file)
                region = self._open_repairing(record, self.region_path(name))
            except (OSError, ValueError, TypeError, KeyError, RegionError) as exc:
                log.error("worker %s: cannot re-adopt (%s); removing its files", name, exc)
                self.remove(name)
                continue
            found.append((record, region))
        for orphan in self.root.glob("*.shm"):
            if not self.record_path(orphan.stem).exists():
                log.warning("region %s has no worker record; removing it", orphan)
                self.remove(orphan.stem)
        return found + self._adopt_pods()

    @staticmethod
    def _open_repairing(record: WorkerRecord, path: Path) -> Region:
        """Opens a worker's region; a state file its tenant damaged is rebuilt in place from the
        record first (its processes may be alive: dropping the worker would free its capacity
        while they run)."""
        try:
            return Region.open(path, readonly=False)
        except RegionError:
            if not _plain(path, stat.S_IFREG):
                raise
            why = repair_state(path, len(record.gpus))
            if not why:
                raise  # the state file was fine: the limits file is what is wrong
            log.error("worker %s: state file %s was damaged (%s); rebuilt from the record", record.name, path, why)
            return Region.open(path, readonly=False)

    def _adopt_pods(self) -> list[tuple[WorkerRecord, Region]]:
        found = []
        for namespace in sorted(self.root.iterdir()):
            if not _plain(namespace, stat.S_IFDIR):
                continue
            for pod in sorted(namespace.iterdir()):
                name = pod_worker_name(namespace.name, pod.name)
                if split_pod_worker_name(name) is None or not _plain(pod, stat.S_IFDIR):
                    continue
                adopted = self._adopt_pod(name, pod)
                if adopted is not None:
                    found.append(adopted)
        return found

    def _adopt_pod(self, name: str, directory: Path) -> tuple[WorkerRecord, Region] | None:
        region_path, record_path = directory / POD_REGION, directory / POD_RECORD
        if not os.path.lexists(record_path):
            if any(os.path.lexists(p) for p in (region_path, limits_path(region_path))):
                log.warning("pod worker %s: region without a record; removing it", name)
                self.remove(name)
            return None
        record: WorkerRecord | None = None
        try:
            record = _read_record(record_path)
            if record.name != name or not record.pod_uid:
                raise ValueError(f"the record is for {record.name!r}")
            for path in (region_path, limits_path(region_path)):
                if not _plain(path, stat.S_IFREG):
                    raise UnsafePath(path, "missing, or not a plain file (a symlink?)")
            return record, self._open_repairing(record, region_path)
        except (OSError, ValueError, TypeError, KeyError, RegionError) as exc:
            log.error("pod worker %s: cannot re-adopt (%s); removing its files", name, exc)
            self.remove(name, record.made_dirs if record is not None and record.name == name else ())
            return None


def new_record(spec: WorkerSpec) -> WorkerRecord:
    """A record for `spec` as of now; ValidationError when its owner process does not exist."""
    start = 0
    if spec.owner_pid:
        found = process_start(spec.owner_pid)
        if found is None:
            raise ValidationError.single("owner_pid", f"no process {spec.owner_pid}", "the pid of a running process")
        start = found
    return WorkerRecord(spec, start, time.time())
