"""`make gpu-check`: the checks that need a real NVIDIA GPU (driver >= 550), one JSON line each.

    driver          the real libcuda.so.1 loads, a GPU is there, the driver is new enough
    native-suite    tests/native against the real driver (TF_NATIVE_DRIVER=real; tests marked
                    simulator_only are skipped)
    runtime-nvcc    an nvcc-built CUDA C++ program under the shim with a 1 GiB limit
                    (skipped when nvcc is not installed)
    runtime-python  a cuda.bindings.runtime program under the shim with a 1 GiB limit
    rate-30-70      two tenants held to 30% and 70% of what the GPU sustains with a real
                    spinning kernel launched alone, run together

Needs only what `make install` puts in .venv plus the machine's driver (nvcc is optional).
`--only runtime-python,rate-30-70` runs some checks.  Rehearsal without a GPU: put the
simulated driver on the library path (LD_LIBRARY_PATH=tfcore/native/sim) and every check
runs against it.
Exits 0 when every check passed, 1 when one failed, 2 when there is no usable driver.
Runs in about 3 minutes; the native suite is capped at 5.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from tfcore.ipc import DeviceSpec, Region
from tfcore.native import library_paths

from .native.conftest import compile_cuda, find_nvcc, nvcc_cache, parse_kv

REPO = Path(__file__).resolve().parents[1]
GIB, MIB = 1 << 30, 1 << 20
MIN_DRIVER = 550
RATE_GRID = 1024  # blocks of 256 threads per launch: every SM of any current GPU busy
RATE_ITERATIONS = 20000  # loop trips per thread: tens of microseconds per launch
RATE_TOLERANCE = 0.10
WORKLOAD = [sys.executable, "-m", "tests.native.runtime_workload"]

DRIVER_PROBE = """
import ctypes, json
cuda = ctypes.CDLL("libcuda.so.1")
out = {"init": cuda.cuInit(0)}
version, count = ctypes.c_int(0), ctypes.c_int(0)
cuda.cuDriverGetVersion(ctypes.byref(version))
cuda.cuDeviceGetCount(ctypes.byref(count))
out.update(cuda_version=version.value, devices=count.value)
try:
    import pynvml
    pynvml.nvmlInit()
    out["driver"] = pynvml.nvmlSystemGetDriverVersion()
    out["name"] = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(0))
except Exception as exc:
    out["nvml_error"] = str(exc)
print(json.dumps(out))
"""


def emit(check: str, ok: bool | None, **details: Any) -> bool:
    """One JSON line; ok None = skipped (counts as passed)."""
    print(json.dumps({"check": check, "ok": ok, **details}), flush=True)
    return ok is not False


def real_env(**extra: str) -> dict[str, str]:
    """The caller's environment without tensor-fusion's settings (a rehearsal on the
    simulator keeps its machine state file)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "LD_PRELOAD")) or k == "TF_SIM_STATE"}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


def shim_env(region: Path) -> dict[str, str]:
    return real_env(LD_PRELOAD=str(library_paths()["shim"]), TF_SHM_PATH=str(region))


def check_driver() -> bool:
    done = subprocess.run(
        [sys.executable, "-c", DRIVER_PROBE], env=real_env(), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
        return emit("driver", False, error=f"no NVIDIA driver: {reason}")
    out = json.loads(done.stdout)
    if out["init"] != 0 or out["devices"] < 1:
        return emit("driver", False, error=f"cuInit = {out['init']}, {out['devices']} GPUs", **out)
    major = int(str(out.get("driver", "0")).split(".")[0] or 0)
    if "driver" in out and major < MIN_DRIVER:
        return emit("driver", False, error=f"driver {out['driver']}: {MIN_DRIVER} or newer needed", **out)
    return emit("driver", True, **out)


def check_native_suite(work: Path) -> bool:
    report = work / "native.xml"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/native", f"--junitxml={report}"]
    started = time.monotonic()
    try:
        done = subprocess.run(
            cmd,
            cwd=REPO,
            env=real_env(TF_NATIVE_DRIVER="real"),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return emit("native-suite", False, error="did not finish within 300 s")
    suite = ET.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite[0]
    counts = {k: int(suite.get(k, "0")) for k in ("tests", "failures", "errors", "skipped")}
    failed = [
        case.get("name", "")
        for case in suite.iter("testcase")
        if case.find("failure") is not None or case.find("error") is not None
    ]
    seconds = round(time.monotonic() - started, 1)
    return emit("native-suite", done.returncode == 0, seconds=seconds, failed=failed[:20], **counts)


def limited_region(path: Path) -> Path:
    with Region.create(path, [DeviceSpec("0", GIB)]):
        pass
    return path


def held_to_limit(out: dict[str, str]) -> bool:
    return (
        out.get("result") == "0,2,0,0,0"
        and out.get("info_held", "").startswith(f"rc:0,free:{GIB - 600 * MIB},total:{GIB}")
        and out.get("info_after", "").startswith(f"rc:0,free:{GIB},total:{GIB}")
    )


def check_runtime_nvcc(work: Path) -> bool:
    nvcc = find_nvcc()
    if nvcc is None:
        return emit("runtime-nvcc", None, skipped="nvcc not found (PATH, $CUDA_HOME, /usr/local/cuda)")
    program = compile_cuda(nvcc, "runtime_probe.cu", "static", nvcc_cache())
    results = {}
    for family in ("malloc", "async", "vmm"):
        region = limited_region(work / f"nvcc-{family}.shm")
        done = subprocess.run(
            [str(program), "family", family, "600"],
            env=shim_env(region),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        results[family] = parse_kv(done.stdout)
    ok = all(held_to_limit(out) for out in results.values())
    return emit("runtime-nvcc", ok, limit_bytes=GIB, results=results)


def check_runtime_python(work: Path) -> bool:
    results = {}
    for family in ("malloc", "async", "vmm"):
        region = limited_region(work / f"py-{family}.shm")
        done = subprocess.run(
            [*WORKLOAD, "family", family, "600"],
            env=shim_env(region),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        results[family] = parse_kv(done.stdout) | ({"stderr": done.stderr[-400:]} if done.returncode else {})
    ok = all(held_to_limit(out) for out in results.values())
    return emit("runtime-python", ok, limit_bytes=GIB, results=results)


def admitted_rates(regions: list[Path], seconds: float) -> list[float]:
    """Launch cost admitted per second in each region over `seconds`."""
    with contextlib.ExitStack() as stack:
        handles = [stack.enter_context(Region.open(r)) for r in regions]
        t0, before = time.monotonic_ns(), [h.compute_stats(0).cost_admitted for h in handles]
        time.sleep(seconds)
        t1, after = time.monotonic_ns(), [h.compute_stats(0).cost_admitted for h in handles]
    return [(a - b) * 1e9 / (t1 - t0) for a, b in zip(after, before, strict=True)]


def run_tenants(regions: list[Path], seconds: float) -> list[float]:
    cmd = [*WORKLOAD, "graph", str(seconds + 1.5), str(RATE_GRID), str(RATE_ITERATIONS)]
    procs = [subprocess.Popen(cmd, env=shim_env(r), stdout=subprocess.PIPE, text=True) for r in regions]
    try:
        for p in procs:
            assert p.stdout is not None
            line = p.stdout.readline().strip()
            if line != "ready=1":
                raise RuntimeError(f"workload did not start: {line!r}")
        time.sleep(0.5)
        return admitted_rates(regions, seconds)
    finally:
        for p in procs:
            p.communicate(timeout=60)


def check_rate(work: Path) -> bool:
    alone = work / "alone.shm"
    with Region.create(alone, [DeviceSpec("0", GIB)]) as r:
        r.set_compute_rate(0, 1 << 50, 1 << 50)  # admission counted, never waiting
    (capacity,) = run_tenants([alone], 3.0)
    targets = [0.3 * capacity, 0.7 * capacity]
    regions = []
    for name, target in zip(("a30", "b70"), targets, strict=True):
        path = work / f"{name}.shm"
        with Region.create(path, [DeviceSpec("0", GIB)]) as r:
            r.set_compute_rate(0, int(target), int(target // 10))
        regions.append(path)
    achieved = run_tenants(regions, 5.0)
    ratios = [a / t for a, t in zip(achieved, targets, strict=True)]
    share = achieved[0] / sum(achieved) if sum(achieved) else 0.0
    ok = all(abs(x - 1) <= RATE_TOLERANCE for x in ratios) and abs(share - 0.3) <= 0.05
    return emit(
        "rate-30-70",
        ok,
        capacity_cost_per_s=round(capacity),
        achieved_over_target=[round(x, 3) for x in ratios],
        share_of_first=round(share, 3),
        tolerance=RATE_TOLERANCE,
    )


CHECKS = {
    "native-suite": check_native_suite,
    "runtime-nvcc": check_runtime_nvcc,
    "runtime-python": check_runtime_python,
    "rate-30-70": check_rate,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(CHECKS), help="comma-separated checks (default: all)")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in CHECKS]
    if unknown:
        parser.error(f"--only: unknown check {', '.join(unknown)}; expected some of {', '.join(CHECKS)}")
    if not check_driver():
        return 2
    results = []
    with tempfile.TemporaryDirectory(prefix="tf-gpu-check-") as tmp:
        work = Path(tmp)
        for check in (CHECKS[name] for name in chosen):
            try:
                results.append(check(work))
            except Exception as exc:  # one broken check must not hide the others' results
                results.append(emit(check.__name__.removeprefix("check_").replace("_", "-"), False, error=repr(exc)))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
