"""`make demo`: a standalone node on this machine and two workloads sharing one GPU.

Starts `tensor-fusion up` (on the simulated GPU when no NVIDIA driver is found, said loudly),
then runs two sample workloads (cuda-python, kernels in a loop: one on the driver API, one on
the CUDA runtime that cuda.bindings.runtime embeds) side by side with `tensor-fusion run`,
each with its own compute share and VRAM limit, shows their progress live, and ends with a
table of target vs achieved compute share and VRAM limit vs peak use.
Achieved shares are measured by the workloads themselves (kernels launched x the simulated
kernel time), not taken from the controller.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from tfcore.hypervisor.nodefile import NODE_FILE, decode_node_file
from tfcore.native import NativeLibraryMissing, library_paths

KERNEL_SECONDS = 4 * 5e-6  # the sample kernel on the simulated H100: 4 waves of 5 us
RATED_TFLOPS = 989.4
SECONDS = 6.0
SETTLE = 2.0
CLI = [sys.executable, "-m", "daemons.cli"]
# name, TFLOPS request, TFLOPS limit, VRAM limit, VRAM the workload tries to take (MiB), CUDA API
TENANTS = (
    ("training", 0.6, 0.6, "3Gi", 4096, "driver"),
    ("inference", 0.3, 0.3, "1Gi", 768, "runtime"),
)


def _tflops(share: float) -> str:
    return f"{round(share * RATED_TFLOPS * 1000)}m"


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _start_node(root: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    with (root / "node.log").open("wb") as log:  # the child keeps its own descriptors
        node = subprocess.Popen([*CLI, "up", "--simulate", "--port", "0"], env=env, stdout=log, stderr=log)
    node_file = root / "node" / NODE_FILE
    deadline = time.monotonic() + 30
    while not node_file.exists():
        if node.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the node did not start:\n" + (root / "node.log").read_text())
        time.sleep(0.05)
    return node, decode_node_file(node_file.read_bytes()).url


def _share(progress: list[dict[str, Any]], start: float, end: float) -> float:
    points = [p for p in progress if p["phase"] == "busy" and start <= p["t"] <= end]
    if len(points) < 2:
        return 0.0
    launches = int(points[-1]["launches"]) - int(points[0]["launches"])
    return launches * KERNEL_SECONDS / (float(points[-1]["t"]) - float(points[0]["t"]))


def main() -> int:
    print("tensor-fusion demo: a standalone node, two workloads sharing one GPU\n")
    try:
        library_paths()
    except NativeLibraryMissing as exc:
        print(f"  native libraries are not built: {exc}")
        return 1
    with tempfile.TemporaryDirectory(prefix="tf-demo-") as tmp:
        root = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "LD_", "CUDA_"))}
        env.update(TF_STATE_DIR=str(root / "node"), TF_SIM_STATE=str(root / "simgpu.state"))
        node, url = _start_node(root, env)
        try:
            return _demo(root, env, url)
        finally:
            node.send_signal(signal.SIGTERM)
            node.wait(timeout=20)


def _demo(root: Path, env: dict[str, str], url: str) -> int:
    device = _get(url + "/api/v1/devices")["devices"][0]
    simulated = " -- SIMULATED, no NVIDIA driver on this machine" if device["simulated"] else ""
    print(f"  node up at {url}: GPU 0 {device['name']}, rated {device['rated_tflops']} TFLOPS{simulated}\n")
    runs = {}
    for name, request, limit, vram, alloc, api in TENANTS:
        command = [
            *CLI,
            "run",
            "--name",
            name,
            "--tflops",
            _tflops(request),
            "--tflops-limit",
            _tflops(limit),
            "--vram",
            vram,
            "--",
            sys.executable,
            "-m",
            "daemons.standalone.sample",
            "--phases",
            f"busy:{SECONDS}",
            "--report",
            "0.1",
            "--alloc-mib",
            str(alloc),
            "--api",
            api,
        ]
        workload = f"sample ({name}, CUDA {api} API)"
        print(f"  $ tensor-fusion run --tflops {request * RATED_TFLOPS:.0f} --vram {vram} -- {workload}")
        runs[name] = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    print()
    peak: dict[str, int] = {}
    while any(p.poll() is None for p in runs.values()):
        time.sleep(0.5)
        try:
            workers = _get(url + "/api/v1/workers")["workers"]
        except OSError:
            continue
        line = []
        for worker in workers:
            gpu = worker["gpus"][0]
            peak[worker["name"]] = max(peak.get(worker["name"], 0), gpu["vram_used_bytes"])
            line.append(f"{worker['name']:>9s} {100 * gpu['share']['measured']:5.1f}% of the GPU")
        if line:
            print("  live: " + " | ".join(line), flush=True)
    results = {}
    for name, process in runs.items():
        out, err = process.communicate()
        if process.returncode != 0:
            print(f"  {name} failed: {err.strip()[-400:]}")
            return 1
        results[name] = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    print(f"\n  {'worker':10s} {'target':>7s} {'achieved':>9s}   {'VRAM limit':>10s} {'peak use':>9s}  next allocation")
    for name, request, _limit, vram, _alloc, _api in TENANTS:
        achieved = _share(results[name], SETTLE, SECONDS - 0.1)
        allocation: dict[str, Any] = next((p for p in results[name] if p["phase"] == "alloc"), {})
        refused = allocation.get("refused") or "granted"
        used = peak.get(name, 0) >> 20
        print(f"  {name:10s} {100 * request:6.1f}% {100 * achieved:8.1f}%   {vram:>10s} {used:>6d}MiB  {refused}")
    print("\n  achieved = kernels the workload ran x their simulated duration, after 2 s of settling")
    return 0


if __name__ == "__main__":
    sys.exit(main())
