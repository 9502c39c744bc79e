"""The LD_PRELOAD shim: routing through dlsym and cuGetProcAddress, variants, RTLD_NEXT."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import make_region, parse_kv, run, run_python, sim_env

TOTAL_PROBE = """
import json
from cuda.bindings import driver as d
d.cuInit(0)
print(json.dumps({"total": d.cuDeviceTotalMem(0)[1], "count": d.cuDeviceGetCount()[1],
                  "name": d.cuDeviceGetName(64, 0)[1].rstrip(b"\\0").decode()}))
"""
GIB = 1 << 30


@pytest.mark.simulator_only
def test_cuda_python_goes_through_the_shim(libs: dict[str, Path], tmp_path: Path) -> None:
    region = make_region(tmp_path / "w.shm", ("0", 3 * GIB))
    done = run_python(TOTAL_PROBE, sim_env(libs, shim=True, TF_SHM_PATH=str(region)))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["total"] == 3 * GIB  # clamped by the hook
    assert (out["count"], out["name"]) == (1, "NVIDIA H100 80GB HBM3 (simulated)")
    assert done.stderr == ""


@pytest.mark.simulator_only
def test_shim_without_region_passes_through_silently(libs: dict[str, Path]) -> None:
    done = run_python(TOTAL_PROBE, sim_env(libs, shim=True))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["total"] == 80 * GIB
    assert done.stderr == ""


@pytest.fixture(scope="module")
def procaddr(cc: Callable[..., Path]) -> Path:
    return cc("procaddr", "procaddr.c", flags=("-ldl",))


@pytest.mark.simulator_only
def test_sim_get_proc_address_semantics(libs: dict[str, Path], procaddr: Path) -> None:
    done = run([str(procaddr)], sim_env(libs))
    assert done.returncode == 0, done.stdout + done.stderr
    out = parse_kv(done.stdout)
    assert out["gpa"] == "lib:libcuda.so.1"
    assert out["init"] == "0"
    # Old cudaVersion: the CUDA 2.0 variant, writing 4 bytes (saturated), never the _v2 ABI.
    assert out["totalmem_2000"] == "rc:0,status:0,lib:libcuda.so.1,sym:cuDeviceTotalMem"
    assert out["totalmem_v1"] == "rc:0,bytes:4294967295,canary_ok:1"
    assert out["totalmem_13000"] == "rc:0,status:0,lib:libcuda.so.1,sym:cuDeviceTotalMem_v2"
    assert out["totalmem_v2"] == f"rc:0,bytes:{80 * GIB}"
    assert out["uuid_9000"] == "rc:0,status:2,lib:none,sym:none"  # VERSION_NOT_SUFFICIENT
    assert out["uuid_11000"].endswith("sym:cuDeviceGetUuid")
    assert out["uuid_12000"].endswith("sym:cuDeviceGetUuid_v2")
    assert out["unknown"] == "rc:0,status:1,lib:none,sym:none"  # SYMBOL_NOT_FOUND
    # Known to the driver but not simulated: resolves, and answers CUDA_ERROR_NOT_SUPPORTED.
    assert out["unimplemented"].startswith("rc:0,status:0,lib:libcuda.so.1,")
    assert out["unimplemented_call"] == "801"
    assert out["memalloc_13000"].endswith("lib:libcuda.so.1,sym:cuMemAlloc_v2")
    assert out["memalloc_2000"] == "rc:0,status:0,lib:libcuda.so.1,sym:none"  # 32-bit form: the stub
    assert out["launch_ptsz"].endswith("sym:cuLaunchKernel")  # per-thread form maps to the plain one
    assert out["too_new"].startswith("rc:1,")  # CUDA_ERROR_INVALID_VALUE
    assert out["gpa_11030"].endswith("lib:libcuda.so.1,sym:cuGetProcAddress")


def test_shim_substitutes_only_the_variant_it_was_written_for(
    libs: dict[str, Path], procaddr: Path, tmp_path: Path
) -> None:
    region = make_region(tmp_path / "w.shm", ("0", GIB))
    done = run([str(procaddr)], sim_env(libs, shim=True, TF_SHM_PATH=str(region)))
    assert done.returncode == 0, done.stdout + done.stderr
    out = parse_kv(done.stdout)
    assert out["gpa"] == "lib:libtfshim.so"  # dlsym on the libcuda handle was routed
    assert out["totalmem_2000"] == "rc:0,status:0,lib:libtfshim.so,sym:cuDeviceTotalMem"
    assert out["totalmem_v1"] == f"rc:0,bytes:{GIB},canary_ok:1"
    assert out["totalmem_13000"] == "rc:0,status:0,lib:libtfshim.so,sym:cuDeviceTotalMem_v2"
    assert out["totalmem_v2"] == f"rc:0,bytes:{GIB}"
    assert out["uuid_11000"].endswith("lib:libcuda.so.1,sym:cuDeviceGetUuid")  # not hooked
    assert out["unknown"] == "rc:0,status:1,lib:none,sym:none"
    assert out["too_new"].startswith("rc:1,")
    assert out["gpa_12000"].endswith("lib:libtfshim.so,sym:cuGetProcAddress_v2")
    assert out["gpa_11030"].endswith("lib:libtfshim.so,sym:cuGetProcAddress")
    assert out["memalloc_13000"].endswith("lib:libtfshim.so,sym:cuMemAlloc_v2")
    assert out["memalloc_2000"].endswith("lib:libtfshim.so,sym:cuMemAlloc")
    assert out["launch_ptsz"].endswith("lib:libtfshim.so,sym:cuLaunchKernel")


def test_shim_keeps_rtld_next_relative_to_the_caller(libs: dict[str, Path], cc: Callable[..., Path]) -> None:
    a = cc("libnext_a.so", "next_a.c", flags=("-shared", "-fPIC", "-ldl"))
    b = cc("libnext_b.so", "next_b.c", flags=("-shared", "-fPIC"))
    main = cc(
        "next_main",
        "next_main.c",
        flags=("-Wl,--no-as-needed", f"-L{a.parent}", "-lnext_a", "-lnext_b", f"-Wl,-rpath,{a.parent}"),
    )
    assert b.exists()
    for shim in (False, True):
        done = run([str(main)], sim_env(libs, shim=shim))
        assert done.stdout.strip() == "probe=107", (shim, done.stdout, done.stderr)
