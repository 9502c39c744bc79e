"""Shim overhead: per-call cost of cuLaunchKernel (region without a compute rate, and with
compute admission under a rate high enough never to wait), of a cuMemAlloc/cuMemFree pair
and of a cuMemAllocAsync/cuMemFreeAsync pair, on the simulated driver, without and with the
shim, in the same run; and the futex wake latency of a launch waiting for tokens when the
hypervisor changes the rate.

A small C driver program (ext/bench/shim_calls.c, compiled here with gcc) times the calls
with clock_gettime; it runs alternately plain and under LD_PRELOAD of the shim with a region
in force, several rounds, and each figure is the median over rounds of the per-run medians.
When valgrind is installed, the same program also runs under callgrind, which counts the
instructions per call exactly (timings on shared VMs are noisy; instruction counts are not).
The simulated driver stands in for the NVIDIA one; the shim's code path is the production one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

from tfcore.ipc import DeviceSpec, Region
from tfcore.native import library_paths

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "ext" / "bench" / "shim_calls.c"
ROUNDS = 7
TARGET_ADDED_NS = {"cuLaunchKernel": 50.0, "cuMemAlloc+cuMemFree": 200.0, "cuMemAllocAsync+cuMemFreeAsync": 200.0}
ADMISSION = "cuLaunchKernel+admission"  # the launch figure with a rate in force
NEVER_WAITS = 1 << 50  # cost units per second (and bucket depth): far beyond any launch loop
WAKES = 300
WAKE_CAP_US = 10_000.0  # what a waiter that only slept out its capped timeout would see at worst


# ext/bench/shim_calls.c makes 41 timed batches plus a quarter-batch warm-up of each figure.
CALLS_PER_UNIT = 41.25


def _instructions(binary: Path, env: dict[str, str], counts: tuple[int, int, int], out: Path) -> int:
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", str(binary), *map(str, counts)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=True)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count from callgrind: {done.stderr[-500:]}")
    return int(found.group(1))


def _instructions_per_call(binary: Path, env: dict[str, str], figure: str, work: Path) -> float:
    """Instructions one call costs: the difference between runs of n and 2n calls, so that
    start-up and driver init cancel out."""
    launch = figure.startswith("cuLaunchKernel")
    n = 2000 if launch else 400
    counts = []
    for calls in (n, 2 * n):
        args = (calls, 0, 0) if launch else (0, calls, 0) if figure == "cuMemAlloc+cuMemFree" else (0, 0, calls)
        counts.append(_instructions(binary, env, args, work / "callgrind.out"))
    return (counts[1] - counts[0]) / (n * CALLS_PER_UNIT)


def _wake_latencies(binary: Path, env: dict[str, str], region: Path) -> list[float]:
    cmd = [str(binary), "wake", str(WAKES), str(region)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=True)
    return sorted(int(line) / 1000 for line in done.stdout.split())


def _run(binary: Path, env: dict[str, str]) -> dict[str, float]:
    done = subprocess.run([str(binary)], env=env, capture_output=True, text=True, timeout=300, check=True)
    return {row["figure"]: float(row["median_ns"]) for row in map(json.loads, done.stdout.splitlines())}


def main() -> None:
    gcc = shutil.which("gcc")
    if gcc is None:
        print(json.dumps({"bench": "shim", "skipped": "gcc not found"}))
        return
    libs = library_paths()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        binary = work / "shim_calls"
        include = REPO / "ext" / "include"
        cmd = [gcc, "-std=gnu11", "-O2", "-I", str(include), str(SOURCE), "-o", str(binary), "-ldl"]
        subprocess.run(cmd, check=True)
        region, limited = work / "worker.shm", work / "limited.shm"
        with Region.create(region, [DeviceSpec("0", 64 << 30)]):
            pass
        with Region.create(limited, [DeviceSpec("0", 64 << 30)]) as r:
            r.set_compute_rate(0, NEVER_WAITS, NEVER_WAITS)
            r.police_compute(0)  # as the node does every tick: the ceiling check is in force
        base = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "LD_", "CUDA_"))}
        # Zero-length kernels: launches never wait for the simulated device.
        base.update(LD_LIBRARY_PATH=str(libs["simcuda"].parent), TF_SIM_STATE=str(work / "sim"), TF_SIM_WAVE_NS="0")
        shim = dict(base, LD_PRELOAD=str(libs["shim"]), TF_SHM_PATH=str(region))
        admitting = dict(shim, TF_SHM_PATH=str(limited))
        plain_runs, shim_runs = [], []
        for _ in range(ROUNDS):
            plain_runs.append(_run(binary, base))
            shim_runs.append(_run(binary, shim))
            with_rate = _run(binary, admitting)
            plain_runs[-1][ADMISSION] = plain_runs[-1]["cuLaunchKernel"]
            shim_runs[-1][ADMISSION] = with_rate["cuLaunchKernel"]
        instructions: dict[str, dict[str, float]] = {}
        if shutil.which("valgrind") is not None:
            for figure in (*TARGET_ADDED_NS, ADMISSION):
                plain_i = _instructions_per_call(binary, base, figure, work)
                shim_i = _instructions_per_call(binary, admitting if figure == ADMISSION else shim, figure, work)
                instructions[figure] = {
                    "plain_instructions_per_call": round(plain_i, 1),
                    "shim_instructions_per_call": round(shim_i, 1),
                    "added_instructions_per_call": round(shim_i - plain_i, 1),
                }
        wake_env = dict(admitting, TF_SHM_PATH=str(limited))
        wakes = _wake_latencies(binary, wake_env, limited)
    for figure, target in (*TARGET_ADDED_NS.items(), (ADMISSION, TARGET_ADDED_NS["cuLaunchKernel"])):
        plain = statistics.median(r[figure] for r in plain_runs)
        shimmed = statistics.median(r[figure] for r in shim_runs)
        print(
            json.dumps(
                {
                    "bench": "shim",
                    "figure": figure,
                    "driver": "simulated",
                    "plain_ns_per_call": round(plain, 1),
                    "shim_ns_per_call": round(shimmed, 1),
                    "added_ns_per_call": round(shimmed - plain, 1),
                    "ratio_shim_over_plain": round(shimmed / plain, 3),
                    "target_added_ns": target,
                    "within_target": shimmed - plain < target,
                    "rounds": ROUNDS,
                    **instructions.get(figure, {}),
                }
            )
        )
    p50, p99 = wakes[len(wakes) // 2], wakes[min(len(wakes) - 1, len(wakes) * 99 // 100)]
    print(
        json.dumps(
            {
                "bench": "shim",
                "figure": "futex wake latency",
                "driver": "simulated",
                "p50_us": round(p50, 1),
                "p99_us": round(p99, 1),
                "max_us": round(wakes[-1], 1),
                "samples": len(wakes),
                "sleep_cap_us": WAKE_CAP_US,
                "ratio_p50_over_half_cap": round(p50 / (WAKE_CAP_US / 2), 4),
            }
        )
    )


if __name__ == "__main__":
    main()
