"""Programs on the CUDA runtime: nvcc-built CUDA C++ (cudart static and shared, sm_90 SASS and
PTX only) and cuda.bindings.runtime (which embeds its own runtime), on the simulated driver
and under the shim, held to a 1 GiB limit and to a launch rate like driver-API programs.

The nvcc programs skip when the toolkit is absent; the cuda.bindings.runtime ones always run.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tfcore.ipc import Region

from .conftest import REPO, make_region, parse_kv, run, sim_env
from .test_compute import finish, make_worker, measured_rate, start, worker_env

MIB = 1 << 20
GIB = 1 << 30
FAMILIES = ["malloc", "managed", "pitch", "3d", "async", "vmm"]
GRID = 4
RATE = 1_024_000  # cost units per second: 1000 launches of GRID x 256 threads
PYTHON_WORKLOAD = [sys.executable, "-m", "tests.native.runtime_workload"]


@pytest.fixture(scope="module")
def probe(nvcc_build: Callable[[str, str], Path]) -> Callable[[str], Path]:
    return lambda variant: nvcc_build("runtime_probe.cu", variant)


def zstd_available() -> bool:
    """Whether the simulator can read zstd-compressed payloads (it loads libzstd.so.1)."""
    try:
        ctypes.CDLL("libzstd.so.1")
    except OSError:
        return False
    return True


def in_repo(env: dict[str, str]) -> dict[str, str]:
    """The Python workload is a module of this repository's tests package."""
    return dict(env, PYTHONPATH=str(REPO))


@pytest.mark.simulator_only  # on a GPU the kernel scales the data: round_trip differs
@pytest.mark.parametrize("variant", ["static", "shared", "ptx"])
def test_nvcc_program_runs_on_the_simulator(libs: dict[str, Path], probe: Callable[[str], Path], variant: str) -> None:
    done = run([str(probe(variant)), "basic"], sim_env(libs))
    assert done.returncode == 0, done.stdout + done.stderr
    out = parse_kv(done.stdout)
    assert out["count"] == "0,1"
    assert out["props"] == "0,9.0,132"
    for key in ("malloc", "h2d", "launch", "sync", "d2h", "stream_sync", "free", "reset"):
        assert out[key] == "0", (key, done.stdout)
    assert out["round_trip"] == "1"  # bytes come back; the kernel's arithmetic is not simulated
    assert out["func_attrs"] == "0,1024"
    assert out["occupancy"] == "0,8"  # 256-thread blocks: 2048 resident threads per SM
    assert out["elapsed"] == "0,1"
    # registered, mapped at its own address, registered twice (712), unregistered, twice (713)
    assert out["host_register"] == "0,0,1,712,0,713"
    assert out["profiler"] == "0,0"  # no profiler attached: starting and stopping succeed
    assert out["copy2d"] == "0,1,0,0,0,1"  # cudaMallocPitch, cudaMemcpy2D both ways, cudaMemset2D
    assert out["copy3d"] == "0,0,0,1"  # cudaMalloc3D, cudaMemcpy3D both ways
    assert out["managed_hints"] == "0,0"
    assert out["host_func"] == "0,0,0,2"  # cudaLaunchHostFunc, then cudaStreamAddCallback, both ran
    # cudaPointerGetAttributes: device (2) on device 0 at its own address, managed (3),
    # pinned host (1), pageable host: unregistered (0), which is not an error
    assert out["pointers"] == "0:2:0:1,0:3,0:1,0:0"
    if variant != "ptx" or zstd_available():  # nvcc compresses PTX with zstd
        assert out["symbol"] == "0,1,2,3,4"  # __device__ initial values from the cubin or PTX
        assert out["symbol_write"] == "0,7"
    else:
        assert out["symbol"].startswith("500,")  # opaque image: its globals are unknown
    assert done.stderr == ""


@pytest.mark.parametrize("family", FAMILIES)
def test_nvcc_program_is_held_to_its_vram_limit(
    libs: dict[str, Path], probe: Callable[[str], Path], tmp_path: Path, family: str
) -> None:
    region = make_region(tmp_path / "w.shm", ("0", GIB))
    done = run([str(probe("static")), "family", family, "600"], sim_env(libs, shim=True, TF_SHM_PATH=str(region)))
    assert done.returncode == 0, done.stdout + done.stderr
    out = parse_kv(done.stdout)
    # 600 MiB fits, a second 600 MiB does not (cudaErrorMemoryAllocation), after the free it fits again
    assert out["result"] == "0,2,0,0,0"
    assert out["info_held"] == f"rc:0,free:{GIB - 600 * MIB},total:{GIB}"
    assert out["info_after"] == f"rc:0,free:{GIB},total:{GIB}"
    with Region.open(region) as r:
        assert r.devices()[0].vram_used_bytes == 0


@pytest.mark.parametrize("variant", ["shared", "ptx"])
def test_every_nvcc_build_goes_through_the_shim(
    libs: dict[str, Path], probe: Callable[[str], Path], tmp_path: Path, variant: str
) -> None:
    region = make_region(tmp_path / "w.shm", ("0", GIB))
    done = run([str(probe(variant)), "family", "malloc", "600"], sim_env(libs, shim=True, TF_SHM_PATH=str(region)))
    assert parse_kv(done.stdout)["result"] == "0,2,0,0,0", done.stdout + done.stderr


@pytest.mark.parametrize("how", ["launch", "graph"])
def test_nvcc_launches_are_held_to_the_rate(
    libs: dict[str, Path], probe: Callable[[str], Path], tmp_path: Path, how: str
) -> None:
    region = make_worker(tmp_path / "w.shm", RATE)
    proc = start([str(probe("static")), how, "1.4", str(GRID)], worker_env(libs, region))
    rate = measured_rate(region, 0.8)
    out = finish(proc)
    assert out["rc"] == "0,0"
    assert rate == pytest.approx(RATE, rel=0.03)
    with Region.open(region) as r:
        stats = r.compute_stats(0)
    per_launch = 3 if how == "graph" else 1  # the graph holds three kernel nodes
    assert int(out["cost_each"]) == GRID * 256 * per_launch
    assert stats.launches * per_launch == int(out["launches"])
    assert stats.throttled > 0


@pytest.mark.simulator_only
def test_cuda_python_runtime_runs_on_the_simulator(libs: dict[str, Path]) -> None:
    done = run([*PYTHON_WORKLOAD, "basic"], in_repo(sim_env(libs)))
    assert done.returncode == 0, done.stdout + done.stderr
    out = parse_kv(done.stdout)
    assert out["count"] == "0,1"
    assert out["copies"] == "0,0,1"
    assert out["missing_kernel"] == "500"  # cudaErrorSymbolNotFound: the PTX defines only `spin`
    assert out["graph"] == "0,0"
    assert out["free"] == "0"


@pytest.mark.parametrize("family", FAMILIES)
def test_cuda_python_runtime_is_held_to_its_vram_limit(libs: dict[str, Path], tmp_path: Path, family: str) -> None:
    region = make_region(tmp_path / "w.shm", ("0", GIB))
    done = run([*PYTHON_WORKLOAD, "family", family, "600"], in_repo(sim_env(libs, shim=True, TF_SHM_PATH=str(region))))
    assert done.returncode == 0, done.stdout + done.stderr
    out = parse_kv(done.stdout)
    assert out["result"] == "0,2,0,0,0"
    assert out["info_held"] == f"rc:0,free:{GIB - 600 * MIB},total:{GIB}"
    assert out["info_after"] == f"rc:0,free:{GIB},total:{GIB}"


def test_cuda_python_runtime_graph_launches_are_held_to_the_rate(libs: dict[str, Path], tmp_path: Path) -> None:
    region = make_worker(tmp_path / "w.shm", RATE)
    proc = start([*PYTHON_WORKLOAD, "graph", "1.4", str(GRID)], in_repo(worker_env(libs, region)))
    rate = measured_rate(region, 0.8)
    out = finish(proc)
    assert out["rc"] == "0,0"
    assert rate == pytest.approx(RATE, rel=0.03)
    with Region.open(region) as r:
        assert r.compute_stats(0).launches == int(out["launches"])
