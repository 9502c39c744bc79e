"""A sample workload (cuda-python): launches kernels in a loop and reports progress.

Used by `make demo`, the end-to-end tests and the benchmark.  It runs on any driver, real or
simulated; on the simulated GPU kernels take the time the simulator's model gives their grid
and block.  `--api driver` (default) uses cuda.bindings.driver; `--api runtime` the CUDA
runtime that cuda.bindings.runtime embeds (kernels from a library, launched as one-node CUDA
graphs: the Python runtime binding has no <<<>>>), allocations with cudaMalloc.  Phases say when it works and when it
rests, e.g. `--phases busy:3,idle:2,busy:3`.  One JSON line per `--report` seconds on stdout:
{"t": seconds since start, "launches": cumulative, "phase": "busy"|"idle"}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from cuda.bindings import driver as cu
from cuda.bindings import runtime as rt

KERNEL_NAME = b"tf_sample_kernel"
# A real module: PTX that any driver since CUDA 11 JIT-compiles (the simulator reads its names).
SAMPLE_PTX = b".version 7.0\n.target sm_50\n.address_size 64\n.visible .entry tf_sample_kernel()\n{\n\tret;\n}\n\0"


def _check(result: tuple[object, ...] | list[object]) -> object:
    err = result[0]
    if err != cu.CUresult.CUDA_SUCCESS:
        raise RuntimeError(f"CUDA call failed: {err}")
    return result[1] if len(result) > 1 else None


def _phases(text: str) -> list[tuple[str, float]]:
    phases = []
    for item in text.split(","):
        kind, _, seconds = item.partition(":")
        if kind not in {"busy", "idle"}:
            raise SystemExit(f"--phases: bad phase {item!r} (expected busy:SECONDS or idle:SECONDS)")
        phases.append((kind, float(seconds)))
    return phases


class Launcher:
    def __init__(self, mode: str, grid: int, block: int) -> None:
        _check(cu.cuInit(0))
        device = _check(cu.cuDeviceGet(0))
        context = _check(cu.cuDevicePrimaryCtxRetain(device))
        _check(cu.cuCtxSetCurrent(context))
        module = _check(cu.cuModuleLoadData(SAMPLE_PTX))
        self.function = _check(cu.cuModuleGetFunction(module, KERNEL_NAME))
        self.stream = _check(cu.cuStreamCreate(0))
        self.grid, self.block, self.mode = grid, block, mode
        self.per_launch = 1
        if mode == "graph":
            self.graph_exec, self.per_launch = self._graph(4)

    def _graph(self, kernels: int) -> tuple[object, int]:
        graph = _check(cu.cuGraphCreate(0))
        params = cu.CUDA_KERNEL_NODE_PARAMS()
        params.func = self.function
        params.gridDimX, params.gridDimY, params.gridDimZ = self.grid, 1, 1
        params.blockDimX, params.blockDimY, params.blockDimZ = self.block, 1, 1
        previous: list[object] = []
        for _ in range(kernels):
            node = _check(cu.cuGraphAddKernelNode(graph, previous, len(previous), params))
            previous = [node]
        return _check(cu.cuGraphInstantiate(graph, 0)), kernels

    def launch(self) -> None:
        if self.mode == "graph":
            _check(cu.cuGraphLaunch(self.graph_exec, self.stream))
        elif self.mode == "cooperative":
            _check(cu.cuLaunchCooperativeKernel(self.function, self.grid, 1, 1, self.block, 1, 1, 0, self.stream, 0))
        else:
            _check(cu.cuLaunchKernel(self.function, self.grid, 1, 1, self.block, 1, 1, 0, self.stream, 0, 0))

    def sync(self) -> None:
        _check(cu.cuStreamSynchronize(self.stream))


def _rt_check(result: tuple[object, ...] | list[object]) -> object:
    err = result[0]
    if err != rt.cudaError_t.cudaSuccess:
        raise RuntimeError(f"CUDA runtime call failed: {err}")
    return result[1] if len(result) > 1 else None


class RuntimeLauncher:
    """The same kernel through the CUDA runtime: a one-node graph launched per kernel."""

    def __init__(self, grid: int, block: int) -> None:
        library = _rt_check(rt.cudaLibraryLoadData(SAMPLE_PTX, None, None, 0, None, None, 0))
        kernel = _rt_check(rt.cudaLibraryGetKernel(library, KERNEL_NAME))
        params = rt.cudaKernelNodeParams()
        params.func = int(kernel)  # type: ignore[call-overload]
        params.gridDim = rt.dim3()
        params.gridDim.x, params.gridDim.y, params.gridDim.z = grid, 1, 1
        params.blockDim = rt.dim3()
        params.blockDim.x, params.blockDim.y, params.blockDim.z = block, 1, 1
        graph = _rt_check(rt.cudaGraphCreate(0))
        _rt_check(rt.cudaGraphAddKernelNode(graph, None, 0, params))
        self.graph_exec = _rt_check(rt.cudaGraphInstantiate(graph, 0))
        self.stream = _rt_check(rt.cudaStreamCreate())
        self.per_launch = 1

    def launch(self) -> None:
        _rt_check(rt.cudaGraphLaunch(self.graph_exec, self.stream))

    def sync(self) -> None:
        _rt_check(rt.cudaStreamSynchronize(self.stream))


def _allocate_block(api: str) -> str:
    """64 MiB more; the refusal's name, or "" when granted."""
    if api == "runtime":
        rt_err = rt.cudaMalloc(64 << 20)[0]
        return "" if rt_err == rt.cudaError_t.cudaSuccess else str(rt_err.name)
    err = cu.cuMemAlloc(64 << 20)[0]
    return "" if err == cu.CUresult.CUDA_SUCCESS else str(err.name)


def _allocate(mib: int, api: str) -> tuple[int, str]:
    """Allocates up to mib MiB in 64 MiB blocks; returns what it got and the refusal, if any."""
    got = 0
    while got < mib:
        refused = _allocate_block(api)
        if refused:
            return got, refused
        got += 64
    return got, ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phases", default="busy:5", help="busy:S,idle:S,... (default busy:5)")
    parser.add_argument("--api", choices=["driver", "runtime"], default="driver", help="CUDA API (default driver)")
    parser.add_argument("--mode", choices=["kernel", "graph", "cooperative"], default="kernel")
    parser.add_argument("--grid", type=int, default=4224, help="blocks per launch (default 4224)")
    parser.add_argument("--block", type=int, default=256, help="threads per block (default 256)")
    parser.add_argument("--report", type=float, default=0.25, help="seconds between progress lines")
    parser.add_argument("--alloc-mib", type=int, default=0, help="allocate this much VRAM first, in 64 MiB blocks")
    args = parser.parse_args(argv)
    launcher: Launcher | RuntimeLauncher
    launcher = (
        RuntimeLauncher(args.grid, args.block) if args.api == "runtime" else Launcher(args.mode, args.grid, args.block)
    )
    allocated, refused = _allocate(args.alloc_mib, args.api)
    if args.alloc_mib:
        print(
            json.dumps({"t": 0.0, "launches": 0, "phase": "alloc", "vram_mib": allocated, "refused": refused}),
            flush=True,
        )
    start = time.monotonic()
    launches = 0
    next_report = args.report
    for kind, seconds in _phases(args.phases):
        end = time.monotonic() + seconds
        while (now := time.monotonic()) < end:
            if kind == "busy":
                for _ in range(32):
                    launcher.launch()
                launches += 32 * launcher.per_launch
            else:
                launcher.sync()
                time.sleep(min(0.01, end - now))
            if now - start >= next_report:
                print(json.dumps({"t": round(now - start, 3), "launches": launches, "phase": kind}), flush=True)
                next_report += args.report
    launcher.sync()
    print(json.dumps({"t": round(time.monotonic() - start, 3), "launches": launches, "phase": "done"}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
