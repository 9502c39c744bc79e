"""The isolation attacks of test_isolation_attacks.py through the CUDA runtime, under the shim
with a 256 MiB limit, each asserting the limit holds: an nvcc-built program
(tests/native/cuda/runtime_attacks.cu, cudart static, built once and cached like
test_runtime.py's; skipped when nvcc is absent) and cuda.bindings.runtime
(tests/native/runtime_workload.py `attack`, always run)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tfcore.ipc import Region

from .conftest import make_region, parse_kv, run, sim_env
from .test_runtime import PYTHON_WORKLOAD, in_repo

MIB = 1 << 20
LIMIT = 256 * MIB


@pytest.fixture(scope="module")
def program(nvcc_build: Callable[[str, str], Path]) -> Path:
    return nvcc_build("runtime_attacks.cu", "static")


def attack(libs: dict[str, Path], program: Path, region: Path, *args: str) -> dict[str, str]:
    done = run([str(program), *args], sim_env(libs, shim=True, TF_SHM_PATH=str(region)))
    out = parse_kv(done.stdout)
    assert "error" not in out, done.stdout + done.stderr
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def used(region: Path) -> int:
    with Region.open(region) as r:
        return r.devices()[0].vram_used_bytes


def info(free: int) -> str:
    return f"rc:0,free:{free},total:{LIMIT}"


def test_a_pool_with_a_raised_release_threshold_stays_charged(
    libs: dict[str, Path], program: Path, tmp_path: Path
) -> None:
    region = make_region(tmp_path / "w.shm", ("0", LIMIT))
    out = attack(libs, program, region, "pool", "100")
    assert out["async_rc"] == "0,0"
    assert out["info_kept"] == info(LIMIT - 200 * MIB)  # cudaFreeAsync'd, kept by the pool
    assert out["allocs"] == "1"  # 50 MiB more fit beside the pool's 200, 100 do not
    assert out["reuse_rc"] == "0"  # the pool's own memory is reused
    assert out["trim_rc"] == "0"
    assert out["info_trimmed"] == info(LIMIT - 50 * MIB)
    assert used(region) == 0


def test_a_graph_memory_allocation_node_is_charged(libs: dict[str, Path], program: Path, tmp_path: Path) -> None:
    region = make_region(tmp_path / "w.shm", ("0", LIMIT))
    out = attack(libs, program, region, "graphmem", "200")
    assert (out["instantiate_rc"], out["launch_rc"]) == ("0", "0")
    assert out["allocs"] == "1"
    assert out["info"] == info(6 * MIB)
    assert out["info_destroyed"] == info(LIMIT - 50 * MIB)
    over = attack(libs, program, region, "graphmem", "300")
    assert over["instantiate_rc"] == "2"  # cudaErrorMemoryAllocation: more than the limit never instantiates


def test_a_captured_cuda_malloc_async_is_charged_once(libs: dict[str, Path], program: Path, tmp_path: Path) -> None:
    region = make_region(tmp_path / "w.shm", ("0", LIMIT))
    out = attack(libs, program, region, "capture", "200")
    assert (out["begin_rc"], out["status"]) == ("0", "1")
    assert (out["alloc_rc"], out["memset_rc"], out["kernel_rc"]) == ("0", "0", "0")
    assert out["info_capturing"] == info(LIMIT)  # captured: nothing allocated yet, nothing charged
    assert (out["end_rc"], out["instantiate_rc"], out["launch_rc"]) == ("0", "0", "0")
    assert out["allocs"] == "1"  # charged once (at instantiation): 50 MiB more fit beside it, 100 do not
    assert out["info"] == info(6 * MIB)
    assert out["info_destroyed"] == info(LIMIT - 50 * MIB)
    over = attack(libs, program, region, "capture", "300")
    assert over["instantiate_rc"] == "2"  # cudaErrorMemoryAllocation: the graph would pass the limit


def test_vmm_through_driver_entry_points_stays_charged_while_mapped(
    libs: dict[str, Path], program: Path, tmp_path: Path
) -> None:
    region = make_region(tmp_path / "w.shm", ("0", LIMIT))
    out = attack(libs, program, region, "vmm", "64")
    assert out["mapped"] == "4"  # released while mapped: still charged
    assert out["last_rc"] == "2"  # CUDA_ERROR_OUT_OF_MEMORY
    assert out["info_mapped"] == info(0)
    assert out["info_unmapped"] == info(LIMIT)
    assert used(region) == 0


def test_the_malloc_heap_limit_is_charged(libs: dict[str, Path], program: Path, tmp_path: Path) -> None:
    region = make_region(tmp_path / "w.shm", ("0", LIMIT))
    out = attack(libs, program, region, "heap", "100")
    assert out["heap_rc"] == "0"  # 100 MiB of heap beyond the default 8
    assert out["allocs"] == "3"  # 100 + 3 x 50 MiB fit in 256 MiB
    assert out["info"] == info(6 * MIB)
    assert out["lowered_rc"] == "0"
    assert out["info_lowered"] == info(106 * MIB)


def test_an_ipc_import_outliving_the_exporters_free_is_charged(
    libs: dict[str, Path], program: Path, tmp_path: Path
) -> None:
    exporter_region = make_region(tmp_path / "a.shm", ("0", 4 * LIMIT))
    importer_region = make_region(tmp_path / "b.shm", ("0", LIMIT))

    def start(region: Path, *args: str) -> subprocess.Popen[str]:
        env = sim_env(libs, shim=True, TF_SHM_PATH=str(region))
        return subprocess.Popen(
            [str(program), *args], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def say(process: subprocess.Popen[str]) -> None:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()

    with start(exporter_region, "export", "200") as exporter:
        assert exporter.stdout is not None
        handle = exporter.stdout.readline().strip().removeprefix("handle=")
        with start(importer_region, "import", "0", handle) as importer:
            assert importer.stdout is not None
            assert importer.stdout.readline().strip() == "open_rc=0"
            say(exporter)
            assert exporter.stdout.readline().strip() == "free_rc=0"
            say(importer)
            stdout, _ = importer.communicate(timeout=30)
        exporter.wait(timeout=30)
    out = parse_kv(stdout)
    assert out.get("allocs") == "1", stdout  # the 200 MiB it keeps open count against its 256
    assert out["info"] == info(6 * MIB)
    assert out["close_rc"] == "0"
    assert out["info_closed"] == info(LIMIT - 50 * MIB)
    assert used(importer_region) == 0


def python_attack(libs: dict[str, Path], region: Path, name: str, mib: int) -> dict[str, str]:
    env = in_repo(sim_env(libs, shim=True, TF_SHM_PATH=str(region)))
    done = run([*PYTHON_WORKLOAD, "attack", name, str(mib)], env)
    assert done.returncode == 0, done.stdout + done.stderr
    return parse_kv(done.stdout)


def test_cuda_python_pool_threshold_keeps_memory_charged(libs: dict[str, Path], tmp_path: Path) -> None:
    region = make_region(tmp_path / "w.shm", ("0", LIMIT))
    out = python_attack(libs, region, "pool", 100)
    assert (out["set_rc"], out["async_rc"]) == ("0,0", "0,0")
    assert out["info_kept"] == info(LIMIT - 200 * MIB)
    assert out["allocs"] == "1"
    assert out["trim_rc"] == "0"
    assert out["info_trimmed"] == info(LIMIT - 50 * MIB)


def test_cuda_python_graph_memory_node_is_charged(libs: dict[str, Path], tmp_path: Path) -> None:
    region = make_region(tmp_path / "w.shm", ("0", LIMIT))
    out = python_attack(libs, region, "graphmem", 200)
    assert (out["instantiate_rc"], out["launch_rc"]) == ("0", "0")
    assert out["allocs"] == "1"
    assert out["info"] == info(6 * MIB)
    assert python_attack(libs, region, "graphmem", 300)["instantiate_rc"] == "2"


def test_cuda_python_captured_malloc_async_is_charged_once(libs: dict[str, Path], tmp_path: Path) -> None:
    region = make_region(tmp_path / "w.shm", ("0", LIMIT))
    out = python_attack(libs, region, "capture", 200)
    assert (out["begin_rc"], out["alloc_rc"], out["end_rc"]) == ("0,0", "0,0", "0")
    assert out["info_capturing"] == info(LIMIT)  # nothing allocated while capturing
    assert (out["instantiate_rc"], out["launch_rc"]) == ("0", "0")
    assert out["allocs"] == "1"
    assert out["info"] == info(6 * MIB)
    assert python_attack(libs, region, "capture", 300)["instantiate_rc"] == "2"


def test_cuda_python_malloc_heap_limit_is_charged(libs: dict[str, Path], tmp_path: Path) -> None:
    region = make_region(tmp_path / "w.shm", ("0", LIMIT))
    out = python_attack(libs, region, "heap", 100)
    assert out["heap_rc"] == "0"
    assert out["allocs"] == "3"
    assert out["info"] == info(6 * MIB)
