"""The simulator's model of host placement: host-located VMM memory, PCIe copies, NVML."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import parse_kv, run, run_python, sim_env

pytestmark = pytest.mark.simulator_only  # the simulator's model itself is under test

MIB = 1 << 20


@pytest.fixture(scope="module")
def tiering(cc: Callable[..., Path]) -> Path:
    return cc("tiering", "tiering.c", flags=("-ldl",))


def test_memory_moves_to_the_host_at_the_same_address(libs: dict[str, Path], tiering: Path) -> None:
    out = parse_kv(run([str(tiering), "move", "64"], sim_env(libs)).stdout)
    steps = ("reserve", "create_device", "map_device", "fill", "create_host", "map_scratch", "copy_out")
    assert {k: out[k] for k in (*steps, "unmap", "map_host", "read", "done")} == dict.fromkeys(
        (*steps, "unmap", "map_host", "read", "done"), "0"
    )
    assert out["same"] == "1"  # bit-identical at the same VA
    assert int(out["used_device"]) == 64 * MIB
    assert int(out["used_host"]) == 0  # host-placed memory is not device memory


def test_nvml_counts_only_device_resident_memory(libs: dict[str, Path], tiering: Path) -> None:
    code = f"""
import subprocess, pynvml
pynvml.nvmlInit()
h = pynvml.nvmlDeviceGetHandleByIndex(0)
child = subprocess.run([{str(tiering)!r}, "move", "32"], capture_output=True, text=True)
print(child.stdout)
print("nvml_used_after=%d" % pynvml.nvmlDeviceGetMemoryInfo(h).used)
"""
    out = parse_kv(run_python(code, sim_env(libs)).stdout)
    assert out["same"] == "1"
    assert int(out["used_device"]) == 32 * MIB
    assert int(out["used_host"]) == 0
    assert out["nvml_used_after"] == "0"


# Sizes where the model's time dwarfs the host's own memmove (the timeline never runs behind
# the wall clock, so a copy can look slower than modelled, never faster).
@pytest.mark.parametrize(("mbps", "mib", "ms"), [(100, 16, 168), (200, 16, 84)])
def test_copies_cross_pcie_at_the_configured_bandwidth(
    libs: dict[str, Path], tiering: Path, mbps: int, mib: int, ms: int
) -> None:
    env = sim_env(libs, TF_SIM_PCIE_MBPS=str(mbps))
    out = parse_kv(run([str(tiering), "copy", str(mib)], env).stdout)
    assert out["copy"] == f"0,{ms}"  # simulated timeline: MiB x 2^20 / (MB/s x 10^6), in ms


@pytest.mark.parametrize("slowdown", [None, "200", "1000"])
def test_kernels_slow_down_with_the_share_of_memory_on_the_host(
    libs: dict[str, Path], tiering: Path, slowdown: str | None
) -> None:
    env = sim_env(libs, TF_SIM_WAVE_NS="5000")
    if slowdown:
        env["TF_SIM_HOST_SLOWDOWN"] = slowdown
    out = parse_kv(run([str(tiering), "slow", "64"], env).stdout)
    device_only, half = float(out["device_only"]), float(out["half_on_host"])
    assert device_only > 0
    # Half of the process's memory on the host: 1 + (slowdown/100 - 1) / 2 times as long.
    factor = 1 + (int(slowdown or 400) / 100 - 1) / 2
    assert half == pytest.approx(device_only * factor, rel=0.02)


def test_host_placed_memory_is_bounded_by_the_host_budget(libs: dict[str, Path], tiering: Path) -> None:
    env = sim_env(libs, TF_SIM_HOST_MEM=str(16 * MIB))
    assert parse_kv(run([str(tiering), "hostoom", "32"], env).stdout)["create_host"] == "2"
    assert parse_kv(run([str(tiering), "hostoom", "16"], env).stdout)["create_host"] == "0"


def test_a_bad_bandwidth_is_reported_and_the_default_used(libs: dict[str, Path], tiering: Path) -> None:
    done = run([str(tiering), "copy", "16"], sim_env(libs, TF_SIM_PCIE_MBPS="fast"))
    assert 'ignoring TF_SIM_PCIE_MBPS="fast"' in done.stderr
    assert parse_kv(done.stdout)["copy"].startswith("0,")
