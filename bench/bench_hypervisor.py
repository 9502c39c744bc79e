"""Compute sharing accuracy: the hypervisor's closed loop against fixed token buckets.

Per scenario (two and four tenants, a tenant alone under its limit, a burst while the other
idles), on the simulated GPU, in the same run:

- feedback: a standalone node (`tensor-fusion up`) with its per-GPU controller; workloads
  started with `tensor-fusion run`;
- fixed-nominal: no hypervisor; each region gets a fixed refill rate, the tenant's limit share
  times a nominal launch-cost-per-second of the GPU (the controller's starting estimate), as a
  static limiter without feedback does;
- fixed-calibrated: the same with the simulator's exact constant (SMs x 2048 threads per 5 us
  wave), which no limiter knows on real hardware: the best a fixed bucket can do.

Achieved shares come from the workloads (kernels launched x the simulated kernel time), not
from the controller.  Per tenant: |achieved - target| in percentage points after SETTLE
seconds, and the settling time (from which on a 0.5 s moving window stays within 2 points).
One JSON line per scenario.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tfcore.hypervisor import ControllerSettings
from tfcore.ipc import DeviceSpec, Region
from tfcore.native import library_paths

KERNEL_SECONDS = 4 * 5e-6
RATED_TFLOPS = 989.4
CALIBRATED_GAIN = 132 * 2048 / 5e-6  # cost units (threads) per second that fill the simulated H100
NOMINAL_GAIN = ControllerSettings().initial_gain
SETTLE = 2.0
TOLERANCE = 0.02
WINDOW = 0.5
CLI = [sys.executable, "-m", "daemons.cli"]


@dataclass(frozen=True)
class TenantPlan:
    name: str
    request: float
    limit: float
    phases: str
    targets: tuple[tuple[float, float, float], ...]  # (from s, to s, target share)


SCENARIOS: dict[str, tuple[TenantPlan, ...]] = {
    "10/90": (
        TenantPlan("a", 0.1, 0.1, "busy:5", ((0, 5, 0.1),)),
        TenantPlan("b", 0.9, 0.9, "busy:5", ((0, 5, 0.9),)),
    ),
    "30/70": (
        TenantPlan("a", 0.3, 0.3, "busy:5", ((0, 5, 0.3),)),
        TenantPlan("b", 0.7, 0.7, "busy:5", ((0, 5, 0.7),)),
    ),
    "25x4": tuple(TenantPlan(f"t{i}", 0.25, 0.25, "busy:5", ((0, 5, 0.25),)) for i in range(4)),
    "alone-at-limit": (TenantPlan("a", 0.1, 0.3, "busy:5", ((0, 5, 0.3),)),),
    "burst-and-back": (
        TenantPlan("a", 0.3, 0.8, "busy:9", ((0, 4, 0.8), (4, 9, 0.5))),
        TenantPlan("b", 0.5, 0.5, "idle:4,busy:5", ((4, 9, 0.5),)),
    ),
}


def _tflops(share: float) -> str:
    return f"{round(share * RATED_TFLOPS * 1000)}m"


def _sample(plan: TenantPlan) -> list[str]:
    return [sys.executable, "-m", "daemons.standalone.sample", "--phases", plan.phases, "--report", "0.1"]


def _collect(processes: dict[str, subprocess.Popen[str]]) -> dict[str, list[dict[str, Any]]]:
    progress = {}
    for name, process in processes.items():
        out, err = process.communicate(timeout=120)
        if process.returncode != 0:
            raise RuntimeError(f"{name} failed: {err[-500:]}")
        progress[name] = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    return progress


def _run_feedback(plans: tuple[TenantPlan, ...], root: Path, env: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    env = dict(env, TF_STATE_DIR=str(root / "node"))
    with (root / "node.log").open("wb") as log:
        node = subprocess.Popen([*CLI, "up", "--simulate", "--port", "0"], env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while not (root / "node" / "node.json").exists():
            if node.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((root / "node.log").read_text())
            time.sleep(0.05)
        processes = {
            p.name: subprocess.Popen(
                [
                    *CLI,
                    "run",
                    "--name",
                    p.name,
                    "--tflops",
                    _tflops(p.request),
                    "--tflops-limit",
                    _tflops(p.limit),
                    "--vram",
                    "1Gi",
                    "--",
                    *_sample(p),
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for p in plans
        }
        return _collect(processes)
    finally:
        node.send_signal(signal.SIGTERM)
        node.wait(timeout=30)


def _run_fixed(
    plans: tuple[TenantPlan, ...], root: Path, env: dict[str, str], gain: float
) -> dict[str, list[dict[str, Any]]]:
    libs = library_paths()
    env = dict(env, LD_PRELOAD=str(libs["shim"]), LD_LIBRARY_PATH=str(libs["simcuda"].parent))
    processes = {}
    for p in plans:
        path = root / f"{p.name}.shm"
        with Region.create(path, [DeviceSpec("0", 1 << 30)]) as region:
            rate = round(p.limit * gain)
            region.set_compute_rate(0, rate, max(1, round(rate * ControllerSettings().burst_seconds)))
        processes[p.name] = subprocess.Popen(
            _sample(p), env=dict(env, TF_SHM_PATH=str(path)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    return _collect(processes)


def _series(progress: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """(time, share over the WINDOW before it) from cumulative launch counts."""
    points = [(p["t"], p["launches"]) for p in progress if p["phase"] in {"busy", "idle"}]
    out = []
    for t, launches in points:
        earlier = [(t0, n0) for t0, n0 in points if t - WINDOW - 0.05 <= t0 <= t - WINDOW + 0.05]
        if earlier:
            t0, n0 = earlier[0]
            out.append((t, (launches - n0) * KERNEL_SECONDS / (t - t0)))
    return out


def _share(progress: list[dict[str, Any]], start: float, end: float) -> float:
    points = [p for p in progress if start <= p["t"] <= end and p["phase"] in {"busy", "idle"}]
    if len(points) < 2:
        return 0.0
    launches = points[-1]["launches"] - points[0]["launches"]
    return float(launches * KERNEL_SECONDS / (points[-1]["t"] - points[0]["t"]))


def _score(plans: tuple[TenantPlan, ...], progress: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    tenants: list[dict[str, Any]] = []
    for plan in plans:
        series = _series(progress[plan.name])
        for start, end, target in plan.targets:
            achieved = _share(progress[plan.name], start + SETTLE, end - 0.1)
            inside = [(t, v) for t, v in series if start + WINDOW <= t <= end - 0.1]
            settled_at = next(
                (t for i, (t, _v) in enumerate(inside) if all(abs(v - target) <= TOLERANCE for _t, v in inside[i:])),
                None,
            )
            tenants.append(
                {
                    "tenant": plan.name,
                    "phase": f"{start}-{end}s",
                    "target": target,
                    "achieved": round(achieved, 4),
                    "error_pp": round(100 * abs(achieved - target), 2),
                    "settling_s": None if settled_at is None else round(settled_at - start, 2),
                }
            )
    settling = [t["settling_s"] for t in tenants]
    return {
        "tenants": tenants,
        "max_error_pp": max(t["error_pp"] for t in tenants),
        "max_settling_s": None if None in settling else max(s for s in settling if s is not None),
    }


def main() -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "LD_", "CUDA_"))}
    for scenario, plans in SCENARIOS.items():
        line: dict[str, Any] = {"bench": "hypervisor", "scenario": scenario, "settle_s": SETTLE}
        for variant in ("feedback", "fixed-nominal", "fixed-calibrated"):
            with tempfile.TemporaryDirectory(prefix="tf-bench-hv-") as tmp:
                root = Path(tmp)
                env = dict(base, TF_SIM_STATE=str(root / "simgpu.state"))
                if variant == "feedback":
                    progress = _run_feedback(plans, root, env)
                else:
                    gain = NOMINAL_GAIN if variant == "fixed-nominal" else CALIBRATED_GAIN
                    progress = _run_fixed(plans, root, env, gain)
                line[variant] = _score(plans, progress)
        ours = max(line["feedback"]["max_error_pp"], 0.01)
        line["error_ratio_fixed_nominal_to_feedback"] = round(line["fixed-nominal"]["max_error_pp"] / ours, 2)
        line["error_ratio_fixed_calibrated_to_feedback"] = round(line["fixed-calibrated"]["max_error_pp"] / ours, 2)
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
