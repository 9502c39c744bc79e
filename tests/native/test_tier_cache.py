"""The shim's cache of freed movable allocations: a reuse makes no VMM call, its memory stays
charged to the worker yet never costs it capacity, a freeze releases it, a kill leaves exact
books, and an entry is never handed out twice."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tfcore.ipc import DeviceSpec, Region

from .test_tiering import Worker, nvml_used, settle, start

pytestmark = pytest.mark.simulator_only  # VMM calls are counted from the simulator's trace

MIB = 1 << 20


@pytest.fixture(scope="module")
def tierwork(cc: Callable[..., Path]) -> Path:
    return cc("tierwork", "tierwork.c", flags=("-ldl",))


@pytest.fixture
def region(tmp_path: Path) -> Iterator[tuple[Region, Path]]:
    path = tmp_path / "worker.shm"
    with Region.create(path, [DeviceSpec("0", 64 * MIB)]) as r:
        r.set_tier_enabled(True)
        yield r, path


@pytest.fixture
def spawn(libs: dict[str, Path], tierwork: Path, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """Starts tierwork under the shim; whatever a failing test left running is finished."""
    started: list[Worker] = []

    def spawn_worker(region_path: Path, **extra: str) -> Worker:
        started.append(start(libs, tierwork, region_path, tmp_path, **extra))
        return started[-1]

    yield spawn_worker
    for worker in started:
        if worker.proc.stdin is not None and not worker.proc.stdin.closed:
            worker.proc.kill()
            worker.proc.wait(timeout=30)
            worker.finish()


def one(worker: Worker, mib: int) -> str:
    answer = worker.ask(f"one {mib}", 2)
    assert answer["one"] == "0", answer
    return answer["ptr"]


def vmm_calls(stderr: str, call: str) -> int:
    return sum(1 for line in stderr.splitlines() if line.startswith(f"tf-simgpu: {call} "))


def used(r: Region) -> int:
    return r.devices()[0].vram_used_bytes


def test_a_freed_allocation_is_reused_without_a_vmm_call(
    libs: dict[str, Path], spawn: Callable[..., Worker], region: tuple[Region, Path]
) -> None:
    r, path = region
    worker = spawn(path, TF_SIM_TRACE="1")
    first = one(worker, 16)
    assert worker.ask(f"free {first}", 1) == {"free": "0"}
    assert used(r) == 16 * MIB  # cached: still on the device, still charged
    assert nvml_used(libs) == 16 * MIB
    info = worker.ask("meminfo", 3)  # the program freed it: its own view counts it free
    assert int(info["free_bytes"]) == 64 * MIB
    for mib in (16, 15):  # the same size, then one that rounds to the same mapped size
        assert one(worker, mib) == first
        assert used(r) == mib * MIB  # charged what was asked, as a plain allocation
        assert worker.ask(f"free {first}", 1) == {"free": "0"}
    # 1/8 slack: 15 MiB mapped as 16 may serve 15, never 8 (that makes a new allocation)
    assert one(worker, 8) != first
    assert worker.finish() == 0
    assert vmm_calls(worker.stderr, "cuMemCreate") == 2
    assert vmm_calls(worker.stderr, "cuMemMap") == 2


def test_an_entry_is_never_handed_out_twice(
    libs: dict[str, Path], spawn: Callable[..., Worker], region: tuple[Region, Path]
) -> None:
    r, path = region
    worker = spawn(path)
    first = one(worker, 4)
    assert worker.ask(f"free {first}", 1) == {"free": "0"}
    assert worker.ask(f"free {first}", 1)["free"] != "0"  # double free: the driver refuses it
    assert worker.ask("free 7f0000001000", 1)["free"] != "0"  # never allocated
    inner = f"{int(first, 16) + MIB:x}"
    assert one(worker, 4) == first
    assert worker.ask(f"free {inner}", 1)["free"] != "0"  # not the start of an allocation
    second = one(worker, 4)  # the cached entry is in use: a new one
    assert second != first
    assert used(r) == 8 * MIB
    range_ = worker.ask(f"range {first}", 3)  # the mapped size (granularity-rounded)
    assert (range_["range"], range_["base"], int(range_["size"])) == ("0", first, 4 * MIB)
    for ptr in (first, second):
        assert worker.ask(f"free {ptr}", 1) == {"free": "0"}
    assert used(r) == 8 * MIB  # both cached
    assert worker.finish() == 0


def test_a_worker_at_its_limit_with_a_full_cache_can_still_allocate(
    libs: dict[str, Path], spawn: Callable[..., Worker], region: tuple[Region, Path]
) -> None:
    r, path = region
    worker = spawn(path)
    live = one(worker, 16)
    cached = [one(worker, 8) for _ in range(2)]
    for ptr in cached:
        assert worker.ask(f"free {ptr}", 1) == {"free": "0"}
    assert used(r) == 32 * MIB  # 16 live + 16 cached of the 64 MiB limit
    # 48 MiB fits the limit only without the cache: it is released and the request asked again
    big = one(worker, 48)
    assert big not in cached
    assert used(r) == 64 * MIB
    assert nvml_used(libs) == 64 * MIB  # the cache's memory went back to the driver
    assert worker.ask("one 1", 2)["one"] != "0"  # and the limit still holds
    for ptr in (live, big):
        assert worker.ask(f"free {ptr}", 1) == {"free": "0"}
    assert worker.finish() == 0


def test_a_freeze_releases_the_cache_and_keeps_live_data(
    libs: dict[str, Path], spawn: Callable[..., Worker], region: tuple[Region, Path]
) -> None:
    r, path = region
    worker = spawn(path)
    first = worker.ask("alloc 2 8", 3)  # live buffers with a pattern
    assert first["alloc"] == "0"
    spare = one(worker, 16)
    assert worker.ask(f"free {spare}", 1) == {"free": "0"}
    assert nvml_used(libs) == 32 * MIB
    r.request_tier("host")
    state = settle(r)
    assert (state.acked, state.where, state.failures) == (True, "host", ())
    assert state.host_bytes == 16 * MIB  # only the live buffers were copied
    assert nvml_used(libs) == 0
    assert used(r) == 16 * MIB  # the cache's charge went back with its memory
    assert worker.ask("check", 3) == {"check": "0", "same": "1", "ptrs": first["ptrs"]}
    assert nvml_used(libs) == 16 * MIB  # a resume does not bring the cache back
    assert worker.finish() == 0


def test_a_kill_with_a_full_cache_leaves_exact_books(
    libs: dict[str, Path], spawn: Callable[..., Worker], region: tuple[Region, Path]
) -> None:
    r, path = region
    worker = spawn(path)
    assert worker.ask("alloc 1 8", 3)["alloc"] == "0"
    spare = one(worker, 16)
    assert worker.ask(f"free {spare}", 1) == {"free": "0"}
    assert used(r) == 24 * MIB
    os.kill(worker.proc.pid, signal.SIGKILL)
    worker.finish()
    r.sweep()
    state = r.tier_state()
    assert (state.host_bytes, state.disk_bytes, state.pinned_bytes) == (0, 0, 0)
    assert used(r) == 0
    assert nvml_used(libs) == 0


def test_a_full_device_releases_the_cache_and_retries(spawn: Callable[..., Worker], tmp_path: Path) -> None:
    """The worker's limit has room but the GPU does not: the driver's refusal releases the cache."""
    path = tmp_path / "roomy.shm"
    with Region.create(path, [DeviceSpec("0", 256 * MIB)]) as r:
        r.set_tier_enabled(True)
        worker = spawn(path, TF_SIM_GPU_VRAM=str(64 * MIB))
        live = one(worker, 32)
        spare = one(worker, 24)
        assert worker.ask(f"free {spare}", 1) == {"free": "0"}
        assert used(r) == 56 * MIB
        big = one(worker, 30)  # 32 + 24 cached + 30 > 64 on the device; 32 + 30 fits
        assert used(r) == 62 * MIB
        for ptr in (live, big):
            assert worker.ask(f"free {ptr}", 1) == {"free": "0"}
        assert worker.finish() == 0


def test_freezes_racing_a_free_and_allocate_loop_keep_books_and_data(
    spawn: Callable[..., Worker], region: tuple[Region, Path]
) -> None:
    """Freezes land while the program frees into and takes from the cache in a loop."""
    r, path = region
    worker = spawn(path)
    first = worker.ask("alloc 2 8", 3)
    assert worker.proc.stdin is not None
    worker.proc.stdin.write("allocfree 3000000 16\n")  # ~0.3-1 s; answered when the loop ends
    worker.proc.stdin.flush()
    for to in ("host", "resume", "host"):
        r.request_tier(to)
        assert settle(r).acked
    assert worker.ask("", 2)["allocfree"] == "0"  # every allocation of the loop succeeded
    assert r.tier_state().freezes >= 1  # a freeze found memory to move while the loop ran
    assert worker.ask("check", 3) == {"check": "0", "same": "1", "ptrs": first["ptrs"]}
    assert used(r) in (16 * MIB, 32 * MIB)  # the live buffers, and the loop's last entry if cached
    assert worker.finish() == 0
    r.sweep()
    assert used(r) == 0
