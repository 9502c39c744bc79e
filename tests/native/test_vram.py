"""VRAM isolation: the shim on the simulated driver, driven by C driver-API programs and
cuda-python scripts in child processes (never in the pytest process)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tfcore.ipc import Region, limits_path

from .conftest import make_region, parse_kv, run, run_python, sim_env, tenant_libs

MIB = 1 << 20
GIB = 1 << 30
SIM_UUID = "GPU-5153494d-0000-4000-8000-0000000000{:02x}"  # physical device N of the simulator
FAMILIES = ["alloc", "pitch", "managed", "async", "pool", "vmm", "array", "array3d", "mipmap"]


@pytest.fixture(scope="module")
def vram(cc: Callable[..., Path]) -> Path:
    return cc("vram", "vram.c", flags=("-ldl", "-lpthread"))


def shim_env(libs: dict[str, Path], region: Path | str, **extra: str) -> dict[str, str]:
    return sim_env(libs, shim=True, TF_SHM_PATH=str(region), **extra)


def usage(region: Path) -> tuple[int, int]:
    """(worker usage on device 0, occupied process slots)."""
    with Region.open(region) as r:
        return r.devices()[0].vram_used_bytes, len(r.processes())


@pytest.mark.parametrize("family", FAMILIES)
def test_each_allocation_family_is_limited(libs: dict[str, Path], vram: Path, tmp_path: Path, family: str) -> None:
    region = make_region(tmp_path / "w.shm", ("0", GIB))
    done = run([str(vram), "family", family, "600"], shim_env(libs, region))
    assert done.returncode == 0, done.stdout + done.stderr
    out = parse_kv(done.stdout)
    # first 600 MiB fits, a second does not (OUT_OF_MEMORY), after the free it fits again
    assert out["result"] == "0,2,0,0,0"
    assert out["info_held"] == f"rc:0,free:{GIB - 600 * MIB},total:{GIB},device_total:{GIB}"
    assert out["info_after"] == f"rc:0,free:{GIB},total:{GIB},device_total:{GIB}"
    assert done.stderr == ""  # nothing logged per call at the default level
    assert usage(region) == (0, 0)  # every free path returned exactly what it charged


@pytest.mark.parametrize("family", FAMILIES)
def test_families_work_unlimited_without_the_shim(libs: dict[str, Path], vram: Path, family: str) -> None:
    done = run([str(vram), "family", family, "600"], sim_env(libs))
    assert parse_kv(done.stdout)["result"] == "0,0,0,0,0", done.stdout + done.stderr


def test_frees_from_other_threads_are_exact(libs: dict[str, Path], vram: Path, tmp_path: Path) -> None:
    region = make_region(tmp_path / "w.shm", ("0", GIB))
    done = run([str(vram), "xthread", "64"], shim_env(libs, region))
    out = parse_kv(done.stdout)
    assert out["xthread"] == "0,0,0,0", done.stdout + done.stderr
    assert out["info_held"].startswith(f"rc:0,free:{GIB - 64 * MIB},")
    assert out["info_after"].startswith(f"rc:0,free:{GIB},")


def test_a_forked_child_gets_a_slot_of_its_own(libs: dict[str, Path], vram: Path, tmp_path: Path) -> None:
    region = make_region(tmp_path / "w.shm", ("0", GIB))
    done = run([str(vram), "fork"], shim_env(libs, region))
    out = parse_kv(done.stdout)
    assert (out["parent"], out["child"], out["child_exit"]) == ("0", "0", "0"), done.stdout + done.stderr
    assert out["child_info"].startswith(f"rc:0,free:{GIB - 150 * MIB},")  # one worker: both count
    assert out["parent_info"].startswith(f"rc:0,free:{GIB - 100 * MIB},")  # the child's share went back
    assert usage(region) == (0, 0)


def test_two_processes_share_one_workers_limit(libs: dict[str, Path], vram: Path, tmp_path: Path) -> None:
    region = make_region(tmp_path / "w.shm", ("0", GIB))
    env = shim_env(libs, region)
    with subprocess.Popen([str(vram), "hold", "600", "30"], env=env, stdout=subprocess.PIPE, text=True) as holder:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "hold=0"
        other = parse_kv(run([str(vram), "family", "alloc", "600"], env).stdout)
        assert other["result"].startswith("2,")  # the worker's first process holds 600 MiB
        assert other["info_held"].startswith(f"rc:0,free:{GIB - 600 * MIB},total:{GIB},")
        small = parse_kv(run([str(vram), "family", "alloc", "300"], env).stdout)
        assert small["result"] == "0,2,0,0,0"
        holder.kill()
    assert usage(region) == (600 * MIB, 1)  # killed: its share waits for the sweep
    with Region.open(region, readonly=False) as admin:
        assert admin.sweep().reclaimed_bytes[0] == 600 * MIB
    assert usage(region) == (0, 0)
    assert parse_kv(run([str(vram), "family", "alloc", "600"], env).stdout)["result"] == "0,2,0,0,0"


def test_32_processes_allocating_concurrently_account_exactly(
    libs: dict[str, Path], vram: Path, tmp_path: Path
) -> None:
    # 32 x ~0.5 MiB live at once cannot all fit in 6 MiB: admission races near the limit.
    region = make_region(tmp_path / "w.shm", ("0", 6 * MIB))
    env = shim_env(libs, region)
    procs = [
        subprocess.Popen([str(vram), "loop", "2000", "512"], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(32)
    ]
    outputs = []
    for p in procs:
        out, _ = p.communicate(timeout=60)
        outputs.append(parse_kv(out))
    assert all(o.get("loop", "").startswith("done,") for o in outputs), outputs
    assert usage(region) == (0, 0)


def test_sigkill_mid_loop_leaves_no_deadlock_and_the_sweep_reclaims(
    libs: dict[str, Path], vram: Path, tmp_path: Path
) -> None:
    region = make_region(tmp_path / "w.shm", ("0", GIB))
    env = shim_env(libs, region)
    with (
        subprocess.Popen([str(vram), "hold", "100", "30"], env=env, stdout=subprocess.PIPE, text=True) as holder,
        subprocess.Popen([str(vram), "loop", "-1", "4096"], env=env, stdout=subprocess.PIPE, text=True) as looper,
    ):
        assert holder.stdout is not None
        assert looper.stdout is not None
        assert holder.stdout.readline().strip() == "hold=0"
        assert looper.stdout.readline().strip() == "ready=1"
        time.sleep(0.2)
        looper.send_signal(signal.SIGKILL)
        looper.wait(timeout=10)
        try:
            with Region.open(region, readonly=False) as admin:
                dead = [p for p in admin.processes() if not p.alive]
                assert len(dead) == 1
                leftover = dead[0].used_bytes[0]
                assert leftover == 0 or 4096 * 1024 <= leftover <= 4102 * 1024  # at most its one live block
                assert admin.devices()[0].vram_used_bytes == 100 * MIB + leftover
                assert admin.sweep().reclaimed_bytes[0] == leftover
                assert admin.devices()[0].vram_used_bytes == 100 * MIB  # exactly the live holder's
            # Others carry on: nothing the dead process held can block them.
            done = run([str(vram), "family", "alloc", "400"], env)
            assert parse_kv(done.stdout)["result"] == "0,0,0,0,0"  # 100 + 2 x 400 MiB fit in 1 GiB
        finally:
            holder.kill()
    assert usage(region) == (100 * MIB, 1)  # the holder, killed too, awaits the next sweep


def test_kills_at_any_instruction_leave_exact_books(libs: dict[str, Path], vram: Path, tmp_path: Path) -> None:
    # A crash-looping pod: many processes SIGKILLed mid allocate/free.  Whatever instruction
    # each dies on, the sweep must bring usage back to exactly what the live holder has.
    region = make_region(tmp_path / "w.shm", ("0", GIB))
    env = shim_env(libs, region)
    with subprocess.Popen([str(vram), "hold", "100", "60"], env=env, stdout=subprocess.PIPE, text=True) as holder:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "hold=0"
        try:
            for round_ in range(12):
                loopers = [
                    subprocess.Popen([str(vram), "loop", "-1", "64"], env=env, stdout=subprocess.PIPE, text=True)
                    for _ in range(4)
                ]
                for looper in loopers:
                    assert looper.stdout is not None
                    assert looper.stdout.readline().strip() == "ready=1"
                time.sleep(0.01 * (round_ % 4))
                for looper in loopers:
                    looper.send_signal(signal.SIGKILL)
                for looper in loopers:
                    looper.wait(timeout=10)
                    assert looper.stdout is not None
                    looper.stdout.close()
                with Region.open(region, readonly=False) as admin:
                    admin.sweep()
                    assert admin.devices()[0].vram_used_bytes == 100 * MIB, f"round {round_}"
        finally:
            holder.kill()


def test_a_new_process_reclaims_a_dead_ones_slot(libs: dict[str, Path], vram: Path, tmp_path: Path) -> None:
    region = make_region(tmp_path / "w.shm", ("0", GIB))
    env = shim_env(libs, region)
    with subprocess.Popen([str(vram), "hold", "700", "30"], env=env, stdout=subprocess.PIPE, text=True) as holder:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "hold=0"
        holder.kill()
    # No sweep: claiming a slot takes over the dead one's, and its 700 MiB come back first.
    assert parse_kv(run([str(vram), "family", "alloc", "600"], env).stdout)["result"] == "0,2,0,0,0"
    assert usage(region) == (0, 0)


def test_missing_region_fails_open_with_one_line(libs: dict[str, Path], vram: Path, tmp_path: Path) -> None:
    missing = tmp_path / "absent.shm"
    done = run([str(vram), "family", "alloc", "600"], shim_env(libs, missing))
    assert parse_kv(done.stdout)["result"] == "0,0,0,0,0"
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert str(missing) in lines[0]
    assert "No such file" in lines[0]
    assert "failing open" in lines[0]
    closed = run([str(vram), "family", "alloc", "600"], shim_env(libs, missing, TF_SHIM_FAIL="closed"))
    assert parse_kv(closed.stdout)["result"] == "2,2,0,2,0"
    assert closed.stderr.count("TF_SHIM_FAIL=closed") == 1


@pytest.mark.parametrize("target", ["state", "limits"])
def test_corrupt_region_fails_closed(libs: dict[str, Path], vram: Path, tmp_path: Path, target: str) -> None:
    region = make_region(tmp_path / "w.shm", ("0", GIB))
    (region if target == "state" else limits_path(region)).write_bytes(b"\xff" * 4096)
    # A tenant can write its state file: damage never means unlimited, whatever TF_SHIM_FAIL says.
    for fail in ("", "open", "closed"):
        done = run([str(vram), "family", "alloc", "600"], shim_env(libs, region, TF_SHIM_FAIL=fail))
        assert parse_kv(done.stdout)["result"].startswith("2,2,"), done.stdout + done.stderr
        assert len(done.stderr.splitlines()) == 1, done.stderr
        assert "bad magic" in done.stderr
        assert "failing closed" in done.stderr


def test_bad_settings_are_reported_once(libs: dict[str, Path], vram: Path, tmp_path: Path) -> None:
    region = make_region(tmp_path / "w.shm", ("0", GIB))
    done = run([str(vram), "family", "alloc", "600"], shim_env(libs, region, TF_LOG_LEVEL="chatty", TF_SHIM_FAIL="x"))
    assert parse_kv(done.stdout)["result"] == "0,2,0,0,0"
    assert done.stderr.count('TF_LOG_LEVEL="chatty"') == 1
    assert done.stderr.count('TF_SHIM_FAIL="x"') == 1


def test_debug_level_explains_denials(libs: dict[str, Path], vram: Path, tmp_path: Path) -> None:
    region = make_region(tmp_path / "w.shm", ("0", GIB))
    done = run([str(vram), "family", "alloc", "600"], shim_env(libs, region, TF_LOG_LEVEL="debug"))
    assert "denied 629145600 bytes on region device 0" in done.stderr
    assert f"region {region}: 1 device(s)" in done.stderr


@pytest.mark.simulator_only
def test_cuda_visible_devices_not_starting_at_zero(libs: dict[str, Path], vram: Path, tmp_path: Path) -> None:
    region = make_region(tmp_path / "w.shm", (SIM_UUID.format(1), GIB))
    env = shim_env(libs, region, TF_SIM_GPU_COUNT="2", CUDA_VISIBLE_DEVICES="1")
    out = parse_kv(run([str(vram), "family", "alloc", "600"], env).stdout)
    assert out["result"] == "0,2,0,0,0"  # ordinal 0 is physical 1, which the region grants
    assert out["info_held"] == f"rc:0,free:{GIB - 600 * MIB},total:{GIB},device_total:{GIB}"
    # A region granting physical 0 does not cover what this process calls device 0.
    other = make_region(tmp_path / "other.shm", (SIM_UUID.format(0), GIB))
    denied = run(
        [str(vram), "family", "alloc", "1"], shim_env(libs, other, TF_SIM_GPU_COUNT="2", CUDA_VISIBLE_DEVICES="1")
    )
    assert parse_kv(denied.stdout)["result"] == "2,2,0,2,0"
    assert "CUDA device 0 is not granted to this worker" in denied.stderr


@pytest.mark.simulator_only
def test_limit_above_physical_reports_physical(libs: dict[str, Path], vram: Path, tmp_path: Path) -> None:
    region = make_region(tmp_path / "w.shm", ("0", 200 * GIB))
    out = parse_kv(run([str(vram), "info"], shim_env(libs, region, TF_SIM_GPU_VRAM=str(8 * GIB))).stdout)
    assert out["info"] == f"rc:0,free:{8 * GIB},total:{8 * GIB},device_total:{8 * GIB}"


CUDA_PYTHON_INFO = """
import json, pynvml
from cuda.bindings import driver as d
assert d.cuInit(0)[0] == 0
dev = d.cuDeviceGet(0)[1]
ctx = d.cuDevicePrimaryCtxRetain(dev)[1]
d.cuCtxSetCurrent(ctx)
out = {"total": d.cuDeviceTotalMem(dev)[1]}
err, ptr = d.cuMemAlloc(512 << 20)
out["alloc"] = int(err)
out["too_much"] = int(d.cuMemAlloc(2 << 30)[0])
err, stream = d.cuStreamCreate(0)
err, aptr = d.cuMemAllocAsync(256 << 20, stream)
out["async"] = int(err)
out["info"] = list(d.cuMemGetInfo()[1:])
pynvml.nvmlInit()
h = pynvml.nvmlDeviceGetHandleByIndex(0)
m = pynvml.nvmlDeviceGetMemoryInfo(h)
m2 = pynvml.nvmlDeviceGetMemoryInfo(h, version=pynvml.nvmlMemory_v2)
out["nvml"] = [m.total, m.used, m.free]
out["nvml_v2"] = [m2.total, m2.used, m2.free]
d.cuMemFreeAsync(aptr, stream)
d.cuStreamSynchronize(stream)
d.cuMemFree(ptr)
out["info_after"] = list(d.cuMemGetInfo()[1:])
print(json.dumps(out))
"""


@pytest.mark.simulator_only  # selects the device by the simulator's UUID
def test_cuda_python_and_nvml_see_the_virtual_gpu(libs: dict[str, Path], tmp_path: Path) -> None:
    region = make_region(tmp_path / "w.shm", (SIM_UUID.format(0), 2 * GIB))
    done = run_python(CUDA_PYTHON_INFO, shim_env(libs, region))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["total"] == 2 * GIB
    assert (out["alloc"], out["too_much"], out["async"]) == (0, 2, 0)
    used = 768 * MIB
    assert out["info"] == [2 * GIB - used, 2 * GIB]
    assert out["nvml"] == [2 * GIB, used, 2 * GIB - used]
    assert out["nvml_v2"] == [2 * GIB, used, 2 * GIB - used]
    assert out["info_after"] == [2 * GIB, 2 * GIB]
    assert done.stderr == ""


@pytest.mark.simulator_only
def test_cuda_python_unlimited_sees_the_whole_simulated_gpu(libs: dict[str, Path]) -> None:
    done = run_python(CUDA_PYTHON_INFO, sim_env(libs, TF_SIM_GPU_VRAM=str(4 * GIB)))
    out = json.loads(done.stdout)
    assert out["total"] == 4 * GIB
    assert out["too_much"] == 0
    used = (512 + 2048 + 256) * MIB  # all three allocations fit on the simulated 4 GiB
    assert out["nvml"] == [4 * GIB, used, 4 * GIB - used]


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory another uid can use (pytest's own tmp dirs are private to root)."""
    path = Path(tempfile.mkdtemp(prefix="tf-tenant-"))
    path.chmod(0o1777)  # like /tmp: the tenant creates the simulator's state file here
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_tenant_cannot_raise_its_own_limit(libs: dict[str, Path], vram: Path, shared_dir: Path) -> None:
    libs = tenant_libs(libs, shared_dir)
    region = make_region(shared_dir / "w.shm", ("0", GIB))
    limits = limits_path(region)
    before = limits.read_bytes()
    program = shared_dir / "vram"
    shutil.copy(vram, program)
    program.chmod(0o755)
    env = shim_env(libs, region, TF_SIM_STATE=str(shared_dir / "sim.state"))
    if os.geteuid() == 0:
        # The tenant runs as another uid, as in a pod: the limits file is root's, mode 0644.
        if shutil.which("setpriv") is None:
            pytest.skip("running the tenant as another uid needs setpriv (util-linux)")
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(program)]
    else:
        limits.chmod(0o444)  # without root, the owner's write bit is all we can take away
        cmd = [str(program)]
    done = run([*cmd, "tamper", str(limits), "1500"], env)
    out = parse_kv(done.stdout)
    assert out["open_rdwr"] == "Permission denied", done.stdout + done.stderr
    assert out["mapping_found"] == "1"  # the shim's read-only mapping of the limits
    assert out["mprotect"] == "Permission denied"  # cannot be made writable
    assert out["alloc"] == "2"  # 1500 MiB is still beyond the 1 GiB limit
    assert out["info"].endswith(f"total:{GIB},device_total:{GIB}")
    assert done.stderr == ""
    assert limits.read_bytes() == before
    with Region.open(region) as r:
        assert r.devices()[0].vram_limit_bytes == GIB
