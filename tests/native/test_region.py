"""Region create/open/update round trips, and rejection of bad files."""

from __future__ import annotations

import contextlib
import os
import struct
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tfcore.ipc import DeviceSpec, Region, RegionError, layout

GIB = 1 << 30
SPECS = [
    DeviceSpec("GPU-00000000-0000-4000-8000-000000000001", 20 * GIB, 50_000, 100_000),
    DeviceSpec("GPU-00000000-0000-4000-8000-000000000002", 10 * GIB),
]


@pytest.fixture
def region_path(tmp_path: Path) -> Path:
    with Region.create(tmp_path / "worker.shm", SPECS):
        pass
    return tmp_path / "worker.shm"


def test_round_trip(region_path: Path) -> None:
    with Region.open(region_path, readonly=False) as writer, Region.open(region_path) as reader:
        header = reader.header()
        assert (header.version_major, header.device_count) == (layout.VERSION_MAJOR, 2)
        assert header.total_size == os.path.getsize(region_path) == layout.REGION_SIZE
        devices = reader.devices()
        assert [d.uuid for d in devices] == [s.uuid for s in SPECS]
        assert devices[0].vram_limit_bytes == 20 * GIB
        assert devices[0].tflops_limit_milli == 100_000
        assert writer.add_vram_used(1, 3 * GIB) == 3 * GIB
        assert reader.devices()[1].vram_used_bytes == 3 * GIB  # shared, not a copy
        slot = writer.claim_slot(4242)
        writer.heartbeat(slot, 123)
        writer.add_process_used(slot, 1, GIB)
        (proc,) = reader.processes()
        assert (proc.pid, proc.heartbeat_ns, proc.used_bytes[1]) == (4242, 123, GIB)
        writer.set_limits(0, DeviceSpec(SPECS[0].uuid, 5 * GIB))
        assert reader.devices()[0].vram_limit_bytes == 5 * GIB
        assert reader.header().generation == 1
        assert not writer.release_slot(slot, 999)  # someone else's slot stays
        assert writer.release_slot(slot, 4242)
        assert reader.processes() == []


def test_usage_never_underflows(region_path: Path) -> None:
    with Region.open(region_path, readonly=False) as r:
        r.add_vram_used(0, GIB)
        assert r.add_vram_used(0, -5 * GIB) == 0


def test_slots_run_out_with_a_clear_error(region_path: Path) -> None:
    with Region.open(region_path, readonly=False) as r:
        for pid in range(1, layout.MAX_PROCS + 1):
            r.claim_slot(pid)
        with pytest.raises(RegionError, match="process slots"):
            r.claim_slot(99999)


def test_readonly_and_bounds_errors(region_path: Path) -> None:
    with Region.open(region_path) as r, pytest.raises(RegionError, match="read-only"):
        r.add_vram_used(0, 1)
    with Region.open(region_path, readonly=False) as r:
        with pytest.raises(RegionError, match="out of range"):
            r.add_vram_used(2, 1)
        r.close()
        with pytest.raises(RegionError, match="closed"):
            r.header()


def test_create_refuses_existing_file(region_path: Path) -> None:
    with pytest.raises(RegionError, match=str(region_path)):
        Region.create(region_path, SPECS)
    assert not list(region_path.parent.glob("*.tmp-*"))


def _header(**fields: int) -> bytes:
    values = {
        "magic": layout.MAGIC,
        "version_major": layout.VERSION_MAJOR,
        "version_minor": 0,
        "total_size": layout.REGION_SIZE,
        "device_count": 1,
        "max_devices": layout.MAX_DEVICES,
        "max_procs": layout.MAX_PROCS,
        "reserved0": 0,
        "generation": 0,
        "reserved1": b"",
    }
    values.update(fields)
    return struct.pack(layout.HEADER.format, *(values[name] for name, _ in layout.HEADER.fields))


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "smaller than a region header"),
        (b"TSHM", "smaller than a region header"),
        (_header(magic=0x12345678).ljust(layout.REGION_SIZE, b"\0"), "bad magic"),
        (_header(version_major=2).ljust(layout.REGION_SIZE, b"\0"), r"major version 2 \(this build reads 1\)"),
        (_header(), "file size does not match"),  # truncated after the header
        (_header().ljust(layout.REGION_SIZE, b"\0") + b"x", "file size does not match"),
        (_header(device_count=99).ljust(layout.REGION_SIZE, b"\0"), "counts out of range"),
    ],
)
def test_bad_files_raise_region_error(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "bad.shm"
    path.write_bytes(content)
    with pytest.raises(RegionError, match=reason) as info:
        Region.open(path)
    assert info.value.path == path


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RegionError, match="No such file"):
        Region.open(tmp_path / "absent.shm")


@given(st.binary(max_size=2 * layout.REGION_SIZE))
def test_random_bytes_never_crash(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "random.shm"
        path.write_bytes(content)
        with contextlib.suppress(RegionError):
            Region.open(path).close()
