"""`make demo`: show what runs today on this machine, and say plainly what does not yet.

Two workloads share one GPU (the simulated one here: no NVIDIA driver is used), each held by
the shim to its own VRAM limit from its own worker region.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tfcore.ipc import DeviceSpec, Region
from tfcore.model.annotations import parse_request
from tfcore.model.errors import ValidationError
from tfcore.native import NativeLibraryMissing, library_paths

MIB = 1024**2
SAMPLE_LABELS = {"tensor-fusion.ai/enabled": "true"}
SAMPLE_ANNOTATIONS = {
    "tensor-fusion.ai/tflops-request": "100",
    "tensor-fusion.ai/tflops-limit": "200",
    "tensor-fusion.ai/vram-request": "3Gi",
    "tensor-fusion.ai/vram-limit": "3Gi",
}
NOT_YET = (
    "standalone node (`tensor-fusion up`, `tensor-fusion run`) and TFLOPS limiting: Data plane II issue",
    "operator (controllers, webhook deployment, HA) and the Helm chart: Operator and Helm chart issues",
)

# A driver-API workload (cuda-python): allocate 256 MiB blocks until refused, report what it saw.
WORKLOAD = """
import json
from cuda.bindings import driver as cu
cu.cuInit(0)
err, dev = cu.cuDeviceGet(0)
err, ctx = cu.cuDevicePrimaryCtxRetain(dev)
cu.cuCtxSetCurrent(ctx)
err, total = cu.cuDeviceTotalMem(dev)
blocks, refused = 0, "never"
while blocks < 1000:
    err, ptr = cu.cuMemAlloc(256 << 20)
    if err != cu.CUresult.CUDA_SUCCESS:
        refused = err.name
        break
    blocks += 1
err, free, seen_total = cu.cuMemGetInfo()
print(json.dumps({"total": total, "blocks": blocks, "refused": refused, "free": free}))
"""


def _show_vram_isolation(libs: dict[str, Path]) -> None:
    with tempfile.TemporaryDirectory(prefix="tf-demo-") as tmp:
        workloads = {"tenant-a": 1024 * MIB, "tenant-b": 3072 * MIB}
        procs = {}
        for name, limit in workloads.items():
            region = Path(tmp) / f"{name}.shm"
            Region.create(region, [DeviceSpec("0", limit)]).close()
            env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "LD_", "CUDA_"))}
            env.update(
                LD_LIBRARY_PATH=str(libs["simcuda"].parent),
                LD_PRELOAD=str(libs["shim"]),
                TF_SHM_PATH=str(region),
                TF_SIM_STATE=str(Path(tmp) / "simgpu.state"),
            )
            procs[name] = subprocess.Popen(
                [sys.executable, "-c", WORKLOAD], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        print("  two workloads on one simulated 80 GiB GPU, each under the shim with its own region:")
        print(f"    {'worker':10s} {'limit':>9s} {'sees total':>11s} {'allocated':>10s}  next allocation")
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=60)
            if proc.returncode != 0:
                print(f"    {name}: failed: {err.strip()[-300:]}")
                continue
            seen = json.loads(out)
            print(
                f"    {name:10s} {workloads[name] // MIB:>6d}MiB {seen['total'] // MIB:>8d}MiB "
                f"{seen['blocks'] * 256:>7d}MiB  {seen['refused']}"
            )


def main() -> int:
    print("tensor-fusion demo: what this build can do today\n")
    try:
        libs = library_paths()
    except NativeLibraryMissing as exc:
        print(f"  native libraries: not built ({exc})")
        return 0
    for name, path in libs.items():
        print(f"  native library {name:8s} {path}")
    print()
    _show_vram_isolation(libs)
    print("\n  a pod asking for 100-200 TFLOPS and 3Gi VRAM parses into:")
    request = parse_request(labels=SAMPLE_LABELS, annotations=SAMPLE_ANNOTATIONS)
    print(f"    tflops {request.tflops_request}..{request.tflops_limit}, vram {request.vram_request}")
    try:
        parse_request(
            labels=SAMPLE_LABELS,
            annotations={"tensor-fusion.ai/tflops-request": "300", "tensor-fusion.ai/tflops-limit": "200"},
        )
    except ValidationError as exc:
        print(f"  and a bad one is refused:\n    {exc}")
    print("\n  not yet available (coming with their issues):")
    for item in NOT_YET:
        print(f"    - {item}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
