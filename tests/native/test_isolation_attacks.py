"""Adversarial tests: each route a tenant could take past its VRAM or compute limit, tried
as an attacker would (C programs in tests/native/c, Python with ctypes), under the shim on
the simulated GPU.  Every test asserts the limit holds; each failed on the shim before the
fix (the simulator reproduces the real driver's lifetimes, so the escape was visible)."""

from __future__ import annotations

import mmap
import os
import shutil
import struct
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tfcore.ipc import DeviceSpec, Region

from .conftest import make_region, parse_kv, run, sim_env, tenant_libs
from .test_compute import GRID, RATE, finish, launcher, measured_rate, start

__all__ = ["launcher"]  # the fixture, shared with test_compute

MIB = 1 << 20
LIMIT = 256 * MIB


@pytest.fixture(scope="module")
def attacks(cc: Callable[..., Path]) -> Path:
    return cc("attacks", "attacks.c", flags=("-ldl",))


@pytest.fixture(scope="module")
def plain_loader(cc: Callable[..., Path]) -> Path:
    return cc("plain_loader", "plain_loader.c", flags=("-ldl",))


def shim_env(libs: dict[str, Path], region: Path, **extra: str) -> dict[str, str]:
    return sim_env(libs, shim=True, TF_SHM_PATH=str(region), **extra)


def used(region: Path) -> int:
    with Region.open(region) as r:
        return r.devices()[0].vram_used_bytes


def test_vmm_memory_stays_charged_while_mapped_after_release(
    libs: dict[str, Path], attacks: Path, tmp_path: Path
) -> None:
    region = make_region(tmp_path / "w.shm", ("0", LIMIT))
    done = run([str(attacks), "vmm", "64"], shim_env(libs, region))
    out = parse_kv(done.stdout)
    assert "error" not in out, done.stdout + done.stderr
    assert out["mapped"] == "4"  # 4 x 64 MiB fit in 256 MiB; released handles do not free them
    assert out["last_rc"] == "2"  # CUDA_ERROR_OUT_OF_MEMORY
    assert out["info_mapped"] == f"rc:0,free:0,total:{LIMIT}"
    assert out["info_unmapped"] == f"rc:0,free:{LIMIT},total:{LIMIT}"  # the last unmap returns it
    assert used(region) == 0


def test_a_plain_rtld_local_loader_is_limited(libs: dict[str, Path], plain_loader: Path, tmp_path: Path) -> None:
    region = make_region(tmp_path / "w.shm", ("0", LIMIT))
    done = run([str(plain_loader), "100"], shim_env(libs, region))
    out = parse_kv(done.stdout)
    assert out.get("allocs") == "2", done.stdout + done.stderr
    assert out["info"] == f"rc:0,free:{LIMIT - 200 * MIB},total:{LIMIT}"


def test_allocations_in_exit_handlers_are_counted(libs: dict[str, Path], attacks: Path, tmp_path: Path) -> None:
    region = make_region(tmp_path / "w.shm", ("0", LIMIT))
    done = run([str(attacks), "exit", "100"], shim_env(libs, region))
    out = parse_kv(done.stdout)
    assert out.get("main_alloc") == "0", done.stdout + done.stderr
    # 1 MiB from main + 2 x 100 MiB fit; a third 100 MiB would exceed 256 MiB.
    assert out["exit_allocs"] == "2"
    assert out["exit_info"] == f"rc:0,free:{LIMIT - 201 * MIB},total:{LIMIT}"
    assert used(region) == 0  # and the process's share went back when it ended


def test_processes_beyond_the_slots_cannot_escape_the_sweep(
    libs: dict[str, Path], attacks: Path, tmp_path: Path
) -> None:
    region = make_region(tmp_path / "w.shm", ("0", 8 * 1024 * MIB))
    done = run([str(attacks), "procs", "16", "70"], shim_env(libs, region))
    out = parse_kv(done.stdout)
    assert out.get("children_allocated") == "64", done.stdout + done.stderr  # the 65th and later are refused
    assert "no free process slot" in done.stderr
    with Region.open(region, readonly=False) as r:
        r.sweep()
    assert used(region) == 0  # every SIGKILLed child's share came back


GRANTED_OFFSET = 64 + 16  # state file: header, then device 0's usage block: unslotted, consumed, granted


def test_rewriting_the_granted_counter_does_not_raise_the_rate(
    libs: dict[str, Path], launcher: Path, tmp_path: Path
) -> None:
    path = tmp_path / "w.shm"
    with Region.create(path, [DeviceSpec("0", 1 << 30)]) as region:
        region.set_compute_rate(0, RATE, RATE // 10)
    stop = threading.Event()

    def hypervisor() -> None:  # the node's tick: police the bucket from the limits file
        with Region.open(path, readonly=False) as r:
            while not stop.wait(0.05):
                r.police_compute(0)

    def tenant() -> None:  # what the tenant can do: its state file is read-write to it
        with open(path, "r+b") as f, mmap.mmap(f.fileno(), 0) as m:
            while not stop.wait(0.01):
                m[GRANTED_OFFSET : GRANTED_OFFSET + 8] = struct.pack("<Q", 1 << 62)

    threads = [threading.Thread(target=hypervisor), threading.Thread(target=tenant)]
    for t in threads:
        t.start()
    try:
        proc = start([str(launcher), "kernel", "1.6", str(GRID)], shim_env(libs, path))
        rate = measured_rate(path, 1.0, settle=0.3)
        finish(proc)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert rate < RATE * 1.1  # unpoliced, the rewritten counter admits every launch at once


def test_the_hypervisor_reports_a_rewound_consumed_counter(tmp_path: Path) -> None:
    path = tmp_path / "w.shm"
    with Region.create(path, [DeviceSpec("0", 1 << 30)]) as region:
        region.set_compute_rate(0, RATE, RATE // 10)
        assert region.police_compute(0) == ()
        with open(path, "r+b") as f, mmap.mmap(f.fileno(), 0) as m:
            m[GRANTED_OFFSET - 8 : GRANTED_OFFSET] = struct.pack("<Q", 5 * RATE)  # consumed moves on
            assert region.police_compute(0) == ()
            m[GRANTED_OFFSET - 8 : GRANTED_OFFSET] = struct.pack("<Q", 0)  # and is wound back
            m[GRANTED_OFFSET : GRANTED_OFFSET + 8] = struct.pack("<Q", 1 << 62)
        found = region.police_compute(0)
    assert found == ("granted-tokens counter raised beyond what the rate allows", "consumed-tokens counter wound back")


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory another uid can use (pytest's own tmp dirs are private to root)."""
    path = Path(tempfile.mkdtemp(prefix="tf-tenant-"))
    path.chmod(0o1777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_another_user_cannot_allocate_against_a_worker(libs: dict[str, Path], attacks: Path, shared_dir: Path) -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("running processes as two other uids needs root and setpriv")
    libs = tenant_libs(libs, shared_dir)  # the checkout may be private (a 0700 mktemp clone)
    path = shared_dir / "w.shm"
    with Region.create(path, [DeviceSpec("0", LIMIT)], tenant_uid=65534):
        pass  # what `tensor-fusion run` asks for: the state file is 0600 and the workload's uid's
    program = shared_dir / "attacks"
    shutil.copy(attacks, program)
    program.chmod(0o755)
    env = shim_env(libs, path, TF_SIM_STATE=str(shared_dir / "sim.state"))

    def as_uid(uid: int) -> subprocess.CompletedProcess[str]:
        cmd = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", str(program), "alloc", "100"]
        return run(cmd, env)

    intruder = as_uid(65533)
    assert parse_kv(intruder.stdout)["allocs"] == "0", intruder.stdout + intruder.stderr
    assert "Permission denied" in intruder.stderr
    assert "failing closed" in intruder.stderr
    owner = as_uid(65534)
    assert parse_kv(owner.stdout)["allocs"] == "2", owner.stdout + owner.stderr
    with path.open("rb") as f:  # and the intruder could not have written it either
        assert f.read(4) == b"TSHM"


def test_a_kernel_nested_deep_in_child_graphs_is_charged(libs: dict[str, Path], launcher: Path, tmp_path: Path) -> None:
    path = tmp_path / "w.shm"
    with Region.create(path, [DeviceSpec("0", 1 << 30)]) as region:
        region.set_compute_rate(0, RATE, RATE // 10)
    out = finish(start([str(launcher), "deep", "0.3", str(GRID)], shim_env(libs, path)))
    with Region.open(path) as r:
        stats = r.compute_stats(0)
    assert int(out["launches"]) > 0
    assert stats.cost_admitted == int(out["launches"]) * int(out["cost_each"])  # 12 levels down, still paid


@pytest.mark.parametrize("path", ["grid", "gridasync", "launch", "multidevice"])
def test_the_legacy_launch_calls_are_held_to_the_rate(
    libs: dict[str, Path], launcher: Path, tmp_path: Path, path: str
) -> None:
    path_ = tmp_path / "w.shm"
    with Region.create(path_, [DeviceSpec("0", 1 << 30)]) as region:
        region.set_compute_rate(0, RATE, RATE // 10)
    proc = start([str(launcher), path, "1.2", str(GRID)], shim_env(libs, path_))
    rate = measured_rate(path_, 0.8)
    out = finish(proc)
    assert rate == pytest.approx(RATE, rel=0.05)
    with Region.open(path_) as r:
        assert r.compute_stats(0).cost_admitted == int(out["launches"]) * int(out["cost_each"])


def test_heap_and_stack_limits_are_charged(libs: dict[str, Path], attacks: Path, tmp_path: Path) -> None:
    region = make_region(tmp_path / "w.shm", ("0", LIMIT))
    done = run([str(attacks), "heap", "100"], shim_env(libs, region))
    out = parse_kv(done.stdout)
    assert out.get("heap_rc") == "0", done.stdout + done.stderr  # 100 MiB of heap beyond the default 8
    # 64 KiB more stack for each of the simulated GPU's resident threads (SMs x 2048) is
    # gigabytes: far past the limit, refused.
    assert out["stack_rc"] == "2"
    assert out["allocs"] == "3"  # 100 + 3 x 50 MiB fit in 256 MiB, a fourth does not
    assert out["info"] == f"rc:0,free:{6 * MIB},total:{LIMIT}"
    assert out["lowered_rc"] == "0"
    assert out["info_lowered"] == f"rc:0,free:{106 * MIB},total:{LIMIT}"  # the heap's share came back


def test_memory_a_pool_keeps_after_free_stays_charged(libs: dict[str, Path], attacks: Path, tmp_path: Path) -> None:
    region = make_region(tmp_path / "w.shm", ("0", LIMIT))
    done = run([str(attacks), "pool", "100"], shim_env(libs, region))
    out = parse_kv(done.stdout)
    assert out.get("async_rc") == "0,0", done.stdout + done.stderr
    assert out["info_kept"] == f"rc:0,free:{LIMIT - 200 * MIB},total:{LIMIT}"  # the pool keeps 200 MiB
    assert out["plain_rc"] == "2"  # so 100 MiB more would pass the limit
    assert out["reuse_rc"] == "0"  # the pool's own memory is reused
    assert out["trim_rc"] == "0"
    assert out["info_trimmed"] == f"rc:0,free:{LIMIT},total:{LIMIT}"
    assert out["after_trim_rc"] == "0"
    assert used(region) == 0


def test_a_missing_helper_fails_closed_with_one_line(
    libs: dict[str, Path], plain_loader: Path, cc: Callable[..., Path], tmp_path: Path
) -> None:
    driver = cc("libcuda.so.1", "helperless_driver.c", flags=("-shared", "-fPIC"))
    region = make_region(tmp_path / "w.shm", ("0", LIMIT))
    env = dict(shim_env(libs, region), LD_LIBRARY_PATH=str(driver.parent))
    done = run([str(plain_loader), "100"], env)
    out = parse_kv(done.stdout)
    assert out.get("allocs") == "0", done.stdout + done.stderr  # never admitted by default
    assert out["info"].startswith("rc:0,free:0,")
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr  # logged once, not per call
    assert "cuCtxGetDevice" in lines[0]


def test_graph_memory_nodes_are_charged(libs: dict[str, Path], attacks: Path, tmp_path: Path) -> None:
    region = make_region(tmp_path / "w.shm", ("0", LIMIT))
    done = run([str(attacks), "graphmem", "200"], shim_env(libs, region))
    out = parse_kv(done.stdout)
    assert (out.get("instantiate_rc"), out.get("launch_rc")) == ("0", "0"), done.stdout + done.stderr
    assert out["allocs"] == "1"  # the graph's 200 MiB count: 50 MiB more fit, 100 do not
    assert out["info"] == f"rc:0,free:{6 * MIB},total:{LIMIT}"
    # Destroying the executable gives its memory back (charged at instantiation, worst case).
    assert out["info_destroyed"] == f"rc:0,free:{LIMIT - 50 * MIB},total:{LIMIT}"
    over = parse_kv(run([str(attacks), "graphmem", "300"], shim_env(libs, region)).stdout)
    assert over["instantiate_rc"] == "2"  # a graph that would make more than the limit never instantiates


def test_imported_memory_is_charged_to_the_importer(libs: dict[str, Path], attacks: Path, tmp_path: Path) -> None:
    exporter_region = make_region(tmp_path / "a.shm", ("0", 4 * LIMIT))
    importer_region = make_region(tmp_path / "b.shm", ("0", LIMIT))

    def start_tool(*args: str, region: Path) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(attacks), *args], env=shim_env(libs, region), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def say(process: subprocess.Popen[str], line: str) -> None:
        assert process.stdin is not None
        process.stdin.write(line + "\n")
        process.stdin.flush()

    with start_tool("export", "200", region=exporter_region) as exporter:
        assert exporter.stdout is not None
        handle = exporter.stdout.readline().strip().removeprefix("handle=")
        with start_tool("import", "0", handle, region=importer_region) as importer:
            assert importer.stdout is not None
            assert importer.stdout.readline().strip() == "open_rc=0"
            say(exporter, "free")  # the exporter frees: the import keeps the memory alive
            assert exporter.stdout.readline().strip() == "free_rc=0"
            say(importer, "go")
            stdout, _ = importer.communicate(timeout=30)
        exporter.wait(timeout=30)
    done = subprocess.CompletedProcess(importer.args, importer.returncode, stdout, "")
    out = parse_kv(done.stdout)
    assert out.get("allocs") == "1", done.stdout  # the 200 MiB it keeps open count against its own 256 MiB
    assert out["info"] == f"rc:0,free:{6 * MIB},total:{LIMIT}"
    assert out["close_rc"] == "0"
    assert used(importer_region) == 0


def test_vmm_memory_imported_from_a_descriptor_is_charged_to_the_importer(
    libs: dict[str, Path], attacks: Path, tmp_path: Path
) -> None:
    exporter_region = make_region(tmp_path / "a.shm", ("0", 4 * LIMIT))
    importer_region = make_region(tmp_path / "b.shm", ("0", LIMIT))
    # The exporter releases its handle (the descriptor keeps the memory) and execs the importer.
    done = run([str(attacks), "vmmexport", "200", str(importer_region)], shim_env(libs, exporter_region))
    out = parse_kv(done.stdout)
    assert (out.get("import_rc"), out.get("map_rc")) == ("0", "0"), done.stdout + done.stderr
    assert out["allocs"] == "1"  # the 200 MiB it maps count against its own 256 MiB
    assert out["info"] == f"rc:0,free:{6 * MIB},total:{LIMIT}"
    assert out["info_released"] == f"rc:0,free:{LIMIT - 50 * MIB},total:{LIMIT}"


def test_a_pointer_imported_from_another_processes_pool_is_charged_to_the_importer(
    libs: dict[str, Path], attacks: Path, tmp_path: Path
) -> None:
    exporter_region = make_region(tmp_path / "a.shm", ("0", 4 * LIMIT))
    importer_region = make_region(tmp_path / "b.shm", ("0", LIMIT))
    # The exporter allocates from an exportable pool, exports pool and pointer, and runs the
    # importer (fork and exec, the descriptor inherited) while it holds the allocation.
    done = run([str(attacks), "poolexport", "200", str(importer_region)], shim_env(libs, exporter_region))
    out = parse_kv(done.stdout)
    assert out.get("import_rc") == "0", done.stdout + done.stderr
    assert out["allocs"] == "1"  # the 200 MiB it imported count against its own 256 MiB
    assert out["info"] == f"rc:0,free:{6 * MIB},total:{LIMIT}"
    assert out["free_rc"] == "0"
    assert out["info_freed"] == f"rc:0,free:{LIMIT - 50 * MIB},total:{LIMIT}"
    assert used(importer_region) == 0


@pytest.mark.parametrize(
    "variant",
    [
        "kept",  # the captured allocation outlives the graph
        "free",  # its cuMemFreeAsync captured too
        "forked",  # issued on a stream forked into the capture by an event, then joined back
        "graph",  # the kernel launched as a graph of its own, captured as a child graph
    ],
)
def test_a_captured_stream_allocation_is_charged_once(
    libs: dict[str, Path], attacks: Path, tmp_path: Path, variant: str
) -> None:
    path = tmp_path / "w.shm"
    with Region.create(path, [DeviceSpec("0", LIMIT)]) as region:
        region.set_compute_rate(0, 1 << 40, 1 << 40)  # a rate that never makes a launch wait
    args = [str(attacks), "capture", "200", variant]
    done = run(args, shim_env(libs, path))
    out = parse_kv(done.stdout)
    assert (out.get("begin_rc"), out.get("status")) == ("0", "1"), done.stdout + done.stderr
    assert (out["alloc_rc"], out["memset_rc"], out["kernel_rc"], out["end_rc"]) == ("0", "0", "0", "0")
    # Captured work allocates and runs nothing: nothing is charged while capturing.
    assert out["info_capturing"] == f"rc:0,free:{LIMIT},total:{LIMIT}"
    # Charged once, when instantiated (the graph memory-node rule), not also when captured.
    assert (out["instantiate_rc"], out["launch_rc"]) == ("0", "0")
    assert out["allocs"] == "1"  # the graph's 200 MiB count: 50 MiB more fit, 100 do not
    assert out["info"] == f"rc:0,free:{6 * MIB},total:{LIMIT}"
    assert out["info_destroyed"] == f"rc:0,free:{LIMIT - 50 * MIB},total:{LIMIT}"
    with Region.open(path) as r:  # the captured kernel is paid when the graph runs, once
        assert r.compute_stats(0).cost_admitted == int(out["cost_each"])
    over = parse_kv(run([str(attacks), "capture", "300"], shim_env(libs, path)).stdout)
    assert over["alloc_rc"] == "0"  # capturing allocates nothing, so the driver says yes
    assert over["instantiate_rc"] == "2"  # and the graph that would make 300 MiB never instantiates
