"""Adversarial tests: each route a tenant could take past its VRAM or compute limit, tried
as an attacker would (C programs in tests/native/c, Python with ctypes), under the shim on
the simulated GPU.  Every test asserts the limit holds; each failed on the shim before the
fix (the simulator reproduces the real driver's lifetimes, so the escape was visible)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tfcore.ipc import Region

from .conftest import make_region, parse_kv, run, sim_env

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
