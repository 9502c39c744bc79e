"""Pod workers' files: the per-pod layout, adoption of both layouts, and symlinks never followed."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from daemons.hypervisor.workers import UnsafePath, WorkerDirectory, WorkerRecord, new_record
from tfcore.hypervisor.workerspec import WorkerSpec
from tfcore.ipc import Region

UUID = "GPU-5153494d-0000-4000-8000-000000000000"
GIB = 1 << 30


def _pod_record(name: str = "ml/train-0", uid: str = "uid-1") -> WorkerRecord:
    spec = WorkerSpec(
        name,
        vram_limit_bytes=2 * GIB,
        tflops_request_milli=100_000,
        tflops_limit_milli=200_000,
        vram_request_bytes=GIB,
        gpus=(UUID,),
        pod_uid=uid,
    )
    return new_record(spec)


def test_a_pod_worker_lives_in_its_pod_directory_and_leaves_nothing(tmp_path: Path) -> None:
    directory = WorkerDirectory(tmp_path / "workers")
    record, region = directory.create(_pod_record())
    pod_dir = tmp_path / "workers" / "ml" / "train-0"
    assert region.path == pod_dir / "shm"
    assert sorted(p.name for p in pod_dir.iterdir()) == ["record.json", "shm", "shm.limits"]
    assert stat.S_IMODE(pod_dir.stat().st_mode) == 0o755
    assert stat.S_IMODE((pod_dir / "shm.limits").stat().st_mode) == 0o644
    assert record.made_dirs == ("ml", "ml/train-0")
    assert region.devices()[0].vram_limit_bytes == 2 * GIB
    region.close()
    directory.remove(record.name, record.made_dirs)
    assert list((tmp_path / "workers").iterdir()) == []


def test_directories_made_by_someone_else_are_kept(tmp_path: Path) -> None:
    directory = WorkerDirectory(tmp_path / "workers")
    (tmp_path / "workers" / "ml" / "train-0").mkdir(parents=True)  # the kubelet was first
    record, region = directory.create(_pod_record())
    region.close()
    assert record.made_dirs == ()
    other_record, other = directory.create(_pod_record("ml/train-1"))
    other.close()
    (tmp_path / "workers" / "ml" / "train-1" / "note").write_text("not ours")
    directory.remove(record.name, record.made_dirs)
    directory.remove(other_record.name, other_record.made_dirs)
    assert (tmp_path / "workers" / "ml" / "train-0").is_dir()
    assert (tmp_path / "workers" / "ml" / "train-1" / "note").read_text() == "not ours"


def test_a_symlinked_directory_is_never_used(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "workers").mkdir()
    (tmp_path / "workers" / "ml").symlink_to(outside)
    directory = WorkerDirectory(tmp_path / "workers")
    with pytest.raises(UnsafePath, match="not a plain directory"):
        directory.create(_pod_record())
    assert list(outside.iterdir()) == []
    (tmp_path / "workers" / "ml").unlink()
    (tmp_path / "workers" / "ml").mkdir()
    (tmp_path / "workers" / "ml" / "train-0").symlink_to(outside)
    with pytest.raises(UnsafePath):
        directory.create(_pod_record())
    assert list(outside.iterdir()) == []
    assert directory.adopt() == []  # a symlinked pod directory is not even looked into


def test_adoption_finds_both_layouts_and_does_not_follow_planted_symlinks(tmp_path: Path) -> None:
    directory = WorkerDirectory(tmp_path / "workers")
    _, api = directory.create(new_record(WorkerSpec("api-worker", vram_limit_bytes=GIB, gpus=(UUID,))))
    _, pod = directory.create(_pod_record())
    inode = os.stat(pod.path).st_ino
    api.close()
    pod.close()
    # A planted symlink in place of another pod's record: unusable, removed, its target untouched.
    secret = tmp_path / "secret.json"
    secret.write_text("{}")
    planted = tmp_path / "workers" / "ml" / "evil"
    planted.mkdir()
    (planted / "record.json").symlink_to(secret)
    found = {record.name: region for record, region in directory.adopt()}
    assert sorted(found) == ["api-worker", "ml/train-0"]
    assert os.stat(found["ml/train-0"].path).st_ino == inode  # the same files, untouched
    for region in found.values():
        region.close()
    assert secret.read_text() == "{}"
    assert not os.path.lexists(planted / "record.json")
    assert planted.is_dir()  # not ours to remove


def test_a_region_without_its_record_is_removed_at_adoption(tmp_path: Path) -> None:
    directory = WorkerDirectory(tmp_path / "workers")
    pod_dir = tmp_path / "workers" / "ml" / "half"
    pod_dir.mkdir(parents=True)
    Region.create(pod_dir / "shm", []).close()
    assert directory.adopt() == []
    assert list(pod_dir.iterdir()) == []
