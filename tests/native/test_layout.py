"""The C region layout, its Python description and the generated driver table agree."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tfcore.ipc import _shm, layout

REPO = Path(__file__).resolve().parents[2]
INCLUDE = REPO / "ext" / "include" / "tf"
CUDA_INCLUDE = Path("/usr/local/cuda/include")


def test_python_layout_matches_c_offsets_and_sizes() -> None:
    c_fields = {(s, f): (off, size) for s, f, off, size in _shm.field_layout()}
    py_fields = {(st.name, f): span for st in layout.STRUCTS for f, span in st.offsets().items()}
    assert py_fields == c_fields


def test_python_constants_match_c() -> None:
    assert (layout.MAGIC, layout.VERSION_MAJOR, layout.VERSION_MINOR) == (
        _shm.MAGIC,
        _shm.VERSION_MAJOR,
        _shm.VERSION_MINOR,
    )
    assert (layout.MAX_DEVICES, layout.MAX_PROCS, layout.MAX_SHARED, layout.UUID_LEN) == (
        _shm.MAX_DEVICES,
        _shm.MAX_PROCS,
        _shm.MAX_SHARED,
        _shm.UUID_LEN,
    )
    assert (layout.LIMITS_SIZE, layout.STATE_SIZE) == (_shm.LIMITS_SIZE, _shm.STATE_SIZE)
    assert (layout.KIND_LIMITS, layout.KIND_STATE, layout.LIMITS_SUFFIX) == (
        _shm.KIND_LIMITS,
        _shm.KIND_STATE,
        _shm.LIMITS_SUFFIX,
    )


NVML_HOOKS = {
    ("nvmlDeviceGetMemoryInfo", "nvmlDeviceGetMemoryInfo"),
    ("nvmlDeviceGetMemoryInfo_v2", "nvmlDeviceGetMemoryInfo_v2"),
}


def test_hooks_are_known_driver_variants() -> None:
    table = (INCLUDE / "driver_procs.inc").read_text()
    variants = set(re.findall(r"TF_DRIVER_PROC\((\w+), (\w+),", table))
    hooks = set(re.findall(r"^TF_(?:HOOK|GATE)\((\w+), (\w+),", (INCLUDE / "hooks.def").read_text(), re.M))
    driver_hooks = {h for h in hooks if h[0].startswith("cu")}
    assert driver_hooks
    assert driver_hooks <= variants
    assert hooks - driver_hooks == NVML_HOOKS


def test_every_variant_of_a_hooked_memory_function_is_hooked() -> None:
    """A caller's cudaVersion picks the variant: an unhooked one would bypass the limit."""
    table = re.findall(r"TF_DRIVER_PROC\((\w+), (\w+),", (INCLUDE / "driver_procs.inc").read_text())
    hooks = set(re.findall(r"^TF_(?:HOOK|GATE)\((\w+), (\w+),", (INCLUDE / "hooks.def").read_text(), re.M))
    hooked_symbols = {v for _, v in hooks}
    for base in {b for b, _ in hooks if b.startswith("cu")}:
        # A symbol that is a variant of two bases (cuGraphInstantiate at 12.0 is
        # cuGraphInstantiateWithFlags) has one row, under either base.
        assert {v for b, v in table if b == base} <= hooked_symbols, base


# Driver calls that can read or write device memory, or put work on a stream: each must pass
# the tiering gate, or a frozen worker's call would reach memory that is not there.
TOUCHES_MEMORY = re.compile(
    r"cuMemcpy|cuMemset|cuLaunch|cuGraphLaunch|cuGraphUpload|cuStream(Wait|Write)Value|cuStreamBatchMemOp"
    r"|cuStreamAddCallback|cuMemPrefetch|cuMemDiscard|cuMem\w*BatchAsync|cu(Signal|Wait)ExternalSemaphoresAsync"
    r"|cuPointerGetAttribute|cuMemGetAddressRange"
)
# Copies whose both sides are arrays or host memory: arrays never move (docs/native.md).
ARRAY_ONLY = re.compile(r"cuMemcpy(HtoA|AtoH|AtoA)")


def test_every_call_that_touches_memory_passes_the_gate() -> None:
    table = re.findall(r"TF_DRIVER_PROC\((\w+), (\w+),", (INCLUDE / "driver_procs.inc").read_text())
    gated = set(re.findall(r"^TF_GATE\(\w+, (\w+),", (INCLUDE / "hooks.def").read_text(), re.M))
    # Launches pass the gate inside their compute admission (TF_ADMITTED in hooks.c).
    gated |= set(re.findall(r"^TF_ADMITTED\((\w+),", (REPO / "ext" / "shim" / "hooks.c").read_text(), re.M))
    must = {v for _, v in table if TOUCHES_MEMORY.match(v) and not ARRAY_ONLY.match(v)}
    assert len(must) > 140  # the pattern still finds the calls
    assert must - gated == set()


@pytest.mark.skipif(not (CUDA_INCLUDE / "cudaTypedefs.h").exists(), reason="CUDA toolkit headers not installed")
def test_driver_table_is_generated_from_the_toolkit() -> None:
    gen = REPO / "ext" / "tools" / "gen_driver_procs.py"
    done = subprocess.run([sys.executable, str(gen), "--check"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(not (CUDA_INCLUDE / "cuda.h").exists(), reason="CUDA toolkit headers not installed")
def test_own_abi_header_matches_cuda_h() -> None:
    ours = (INCLUDE / "cuda_abi.h").read_text()
    theirs = (CUDA_INCLUDE / "cuda.h").read_text()
    codes = re.findall(r"X\((CUDA_\w+), (\d+),", ours)
    assert len(codes) > 5
    for name, value in codes:
        assert re.search(rf"\b{name}\s*=\s*{value}\b", theirs), name
    for name in ("CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND", "CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT"):
        value = re.search(rf"{name} = (\d+)", ours)
        assert value
        assert re.search(rf"{name}\s*=\s*{value.group(1)}\b", theirs)
