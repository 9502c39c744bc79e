"""Region create/open/update round trips, slots and sweeps, and rejection of bad files."""

from __future__ import annotations

import contextlib
import os
import stat
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tfcore.ipc import DeviceSpec, Region, RegionError, layout, limits_path

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
        assert header.total_size == os.path.getsize(limits_path(region_path)) == layout.LIMITS_SIZE
        assert os.path.getsize(region_path) == layout.STATE_SIZE
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
        assert (proc.pid, proc.heartbeat_ns, proc.used_bytes[1], proc.alive) == (4242, 123, GIB, True)
        assert reader.devices()[1].vram_used_bytes == 4 * GIB  # usage is the sum of the holders
        writer.set_limits(0, DeviceSpec(SPECS[0].uuid, 5 * GIB))
        assert reader.devices()[0].vram_limit_bytes == 5 * GIB
        assert reader.header().generation == 1
        assert not writer.release_slot(slot, 999)  # someone else's slot stays
        assert writer.release_slot(slot, 4242)
        assert reader.processes() == []
        assert reader.devices()[1].vram_used_bytes == 3 * GIB  # its share went back


def test_file_modes_keep_limits_away_from_tenants(tmp_path: Path) -> None:
    with Region.create(tmp_path / "a.shm", SPECS):
        pass
    assert stat.S_IMODE(os.stat(limits_path(tmp_path / "a.shm")).st_mode) == 0o644
    assert stat.S_IMODE(os.stat(tmp_path / "a.shm").st_mode) == 0o666
    with Region.create(tmp_path / "b.shm", SPECS, tenant_uid=os.getuid()):
        pass
    assert stat.S_IMODE(os.stat(tmp_path / "b.shm").st_mode) == 0o600


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


HOLDER = """
import sys
from tfcore.ipc import Region
r = Region.open(sys.argv[1], readonly=False)
slot = r.claim_slot(12345)
r.add_process_used(slot, 0, 7 << 20)
print(slot, flush=True)
sys.stdin.read()  # hold the slot until told to go
"""


def test_sweep_reclaims_only_dead_processes(region_path: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(region_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as holder:
        assert holder.stdout is not None
        holder.stdout.readline()
        with Region.open(region_path, readonly=False) as admin:
            assert admin.sweep().reclaimed_slots == 0  # alive: its lock is held
            assert [p.alive for p in admin.processes()] == [True]
            holder.kill()
            holder.wait(timeout=10)
            (proc,) = admin.processes()
            assert (proc.pid, proc.alive) == (12345, False)
            result = admin.sweep()
            assert (result.reclaimed_slots, result.reclaimed_bytes[0]) == (1, 7 << 20)
            assert admin.processes() == []
            assert admin.devices()[0].vram_used_bytes == 0


def test_sweep_skips_slots_this_region_holds(region_path: Path) -> None:
    with Region.open(region_path, readonly=False) as r:
        r.claim_slot(1)
        assert r.sweep().reclaimed_slots == 0
        assert len(r.processes()) == 1


def test_readonly_and_bounds_errors(region_path: Path) -> None:
    with Region.open(region_path) as r:
        with pytest.raises(RegionError, match="read-only"):
            r.add_vram_used(0, 1)
        with pytest.raises(RegionError, match="read-only"):
            r.set_limits(0, SPECS[0])
        with pytest.raises(RegionError, match="read-only"):
            r.sweep()
    with Region.open(region_path, readonly=False) as r:
        with pytest.raises(RegionError, match="out of range"):
            r.add_vram_used(2, 1)
        r.close()
        with pytest.raises(RegionError, match="closed"):
            r.header()


def test_create_refuses_existing_files(region_path: Path) -> None:
    with pytest.raises(RegionError, match=str(region_path)):
        Region.create(region_path, SPECS)
    assert not list(region_path.parent.glob("*.tmp-*"))
    other = region_path.parent / "other.shm"
    limits_path(other).write_bytes(b"not ours")
    with pytest.raises(RegionError):
        Region.create(other, SPECS)
    assert limits_path(other).read_bytes() == b"not ours"
    assert not other.exists()


def test_create_rejects_bad_specs(tmp_path: Path) -> None:
    with pytest.raises(RegionError, match="longer than"):
        Region.create(tmp_path / "x.shm", [DeviceSpec("G" * 60, GIB)])
    with pytest.raises(RegionError, match="at most 16"):
        Region.create(tmp_path / "y.shm", [DeviceSpec(str(i), GIB) for i in range(17)])
    assert list(tmp_path.iterdir()) == []


def _header(kind: int, **fields: int) -> bytes:
    values = {
        "magic": layout.MAGIC,
        "version_major": layout.VERSION_MAJOR,
        "version_minor": 0,
        "total_size": layout.STATE_SIZE if kind == layout.KIND_STATE else layout.LIMITS_SIZE,
        "device_count": 1,
        "max_devices": layout.MAX_DEVICES,
        "max_procs": layout.MAX_PROCS,
        "kind": kind,
        "generation": 0,
        "tier_flags": 0,
        "tier_request": 0,
        "tier_request_seq": 0,
        "shared_high_water": 0,
        "reserved1": b"",
    }
    values.update(fields)
    return struct.pack(layout.HEADER.format, *(values[name] for name, _ in layout.HEADER.fields))


STATE = layout.KIND_STATE


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "smaller than a region header"),
        (b"TSHM", "smaller than a region header"),
        (_header(STATE, magic=0x12345678).ljust(layout.STATE_SIZE, b"\0"), "bad magic"),
        (
            _header(STATE, version_major=layout.VERSION_MAJOR - 1).ljust(layout.STATE_SIZE, b"\0"),
            rf"major version {layout.VERSION_MAJOR - 1} \(this build reads {layout.VERSION_MAJOR}\)",
        ),
        (_header(layout.KIND_LIMITS).ljust(layout.STATE_SIZE, b"\0"), "wrong file kind"),
        (_header(STATE), "file size does not match"),  # truncated after the header
        (_header(STATE).ljust(layout.STATE_SIZE, b"\0") + b"x", "file size does not match"),
        (_header(STATE, device_count=99).ljust(layout.STATE_SIZE, b"\0"), "counts out of range"),
    ],
)
def test_bad_state_files_raise_region_error(region_path: Path, content: bytes, reason: str) -> None:
    region_path.write_bytes(content)
    with pytest.raises(RegionError, match=reason) as info:
        Region.open(region_path)
    assert info.value.path == region_path


def test_bad_limits_file_is_named(region_path: Path) -> None:
    limits_path(region_path).write_bytes(b"garbage" * 10)
    with pytest.raises(RegionError, match="bad magic") as info:
        Region.open(region_path)
    assert info.value.path == limits_path(region_path)


def test_device_counts_must_agree(region_path: Path) -> None:
    region_path.write_bytes(_header(STATE, device_count=1).ljust(layout.STATE_SIZE, b"\0"))
    with pytest.raises(RegionError, match="disagree"):
        Region.open(region_path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RegionError, match="No such file"):
        Region.open(tmp_path / "absent.shm")


@given(st.binary(max_size=2 * layout.STATE_SIZE), st.booleans())
def test_random_bytes_never_crash(content: bytes, as_limits: bool) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "random.shm"
        with Region.create(path, SPECS):
            pass
        (limits_path(path) if as_limits else path).write_bytes(content)
        with contextlib.suppress(RegionError):
            Region.open(path).close()
