"""A cuda.bindings.runtime program for tests/native and `make gpu-check` (the embedded CUDA
runtime of cuda-bindings, nothing tensor-fusion specific).  Prints key=value lines.

    python -m tests.native.runtime_workload basic
    python -m tests.native.runtime_workload family NAME MIB   (malloc managed pitch 3d async vmm)
    python -m tests.native.runtime_workload graph SECONDS GRID [ITERATIONS]  ("ready=1" first)
    python -m tests.native.runtime_workload attack NAME MIB   (pool graphmem heap capture: as runtime_attacks.cu)

The Python runtime binding has no <<<>>>: kernels come from PTX through cudaLibraryLoadData and
launch as CUDA graphs.
"""

from __future__ import annotations

import ctypes
import sys
import time
from typing import Any

from cuda.bindings import driver
from cuda.bindings import runtime as rt

MIB = 1 << 20
# Portable PTX (any driver since CUDA 11 JIT-compiles it for its GPU): spins `iterations`
# times per thread, so on a real GPU a launch's busy time grows with its work.
PTX = b""".version 7.0
.target sm_50
.address_size 64
.visible .entry spin(.param .u64 sink, .param .u64 iterations)
{
    .reg .pred %p<3>;
    .reg .b64 %rd<6>;
    ld.param.u64 %rd1, [sink];
    ld.param.u64 %rd2, [iterations];
    mov.u64 %rd3, 0;
LOOP:
    setp.ge.u64 %p1, %rd3, %rd2;
    @%p1 bra DONE;
    add.u64 %rd3, %rd3, 1;
    bra.uni LOOP;
DONE:
    setp.eq.u64 %p2, %rd1, 0;
    @%p2 bra END;
    cvta.to.global.u64 %rd4, %rd1;
    st.global.u64 [%rd4], %rd3;
END:
    ret;
}
"""


class MemLocation(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("id", ctypes.c_int)]


class AllocationProp(ctypes.Structure):
    """CUmemAllocationProp (driver ABI), for cuMemCreate reached through the runtime."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("requestedHandleTypes", ctypes.c_int),
        ("location", MemLocation),
        ("win32HandleMetaData", ctypes.c_void_p),
        ("compressionType", ctypes.c_ubyte),
        ("gpuDirectRDMACapable", ctypes.c_ubyte),
        ("usage", ctypes.c_ushort),
        ("reserved", ctypes.c_ubyte * 4),
    ]


def code(result: Any) -> int:
    """The cudaError_t of a binding's result tuple, as an int."""
    err = result[0] if isinstance(result, tuple) else result
    return int(err)


def driver_entry(name: str, argtypes: list[Any]) -> Any:
    flags = rt.cudaGetDriverEntryPointFlags.cudaEnableDefault
    err, address, _status = rt.cudaGetDriverEntryPointByVersion(name.encode(), 12000, flags)
    if int(err) != 0 or not address:
        raise RuntimeError(f"cudaGetDriverEntryPointByVersion({name}) = {err}")
    return ctypes.CFUNCTYPE(ctypes.c_int, *argtypes)(address)


def info(key: str) -> None:
    err, free, total = rt.cudaMemGetInfo()
    print(f"{key}=rc:{int(err)},free:{free},total:{total}")


def family_alloc(name: str, mib: int) -> tuple[int, int]:
    size = mib * MIB
    if name == "malloc":
        err, ptr = rt.cudaMalloc(size)
    elif name == "managed":
        err, ptr = rt.cudaMallocManaged(size, rt.cudaMemAttachGlobal)
    elif name == "pitch":
        err, ptr, _pitch = rt.cudaMallocPitch(1024, size // 1024)
    elif name == "3d":
        err, pitched = rt.cudaMalloc3D(rt.make_cudaExtent(1024, 1024, mib))
        ptr = int(pitched.ptr) if int(err) == 0 else 0
    elif name == "async":
        err, ptr = rt.cudaMallocAsync(size, 0)
        if int(err) == 0:
            err = rt.cudaStreamSynchronize(0)[0]
    elif name == "vmm":
        create = driver_entry("cuMemCreate", [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_ulonglong])
        prop = AllocationProp(type=1, location=MemLocation(type=1, id=0))  # pinned, on device 0
        handle = ctypes.c_ulonglong(0)
        rc = create(ctypes.byref(handle), size, ctypes.byref(prop), 0)
        return (2 if rc == 2 else rc), handle.value  # CUDA_ERROR_OUT_OF_MEMORY = cudaErrorMemoryAllocation
    else:
        raise SystemExit(f"family: unknown NAME {name!r}")
    return int(err), int(ptr or 0)


def family_free(name: str, ptr: int) -> int:
    if name == "async":
        rc = code(rt.cudaFreeAsync(ptr, 0))
        return rc or code(rt.cudaStreamSynchronize(0))
    if name == "vmm":
        return int(driver_entry("cuMemRelease", [ctypes.c_ulonglong])(ptr))
    return code(rt.cudaFree(ptr))


def family(name: str, mib: int) -> None:
    r1, a = family_alloc(name, mib)
    info("info_held")
    r2, b = family_alloc(name, mib)
    if r2 == 0:
        family_free(name, b)
    rt.cudaGetLastError()
    r3 = family_free(name, a) if r1 == 0 else -1
    r4, a = family_alloc(name, mib)
    r5 = family_free(name, a) if r4 == 0 else -1
    info("info_after")
    print(f"result={r1},{r2},{r3},{r4},{r5}")


def kernel() -> Any:
    err, library = rt.cudaLibraryLoadData(PTX, None, None, 0, None, None, 0)
    assert int(err) == 0, err
    err, spin = rt.cudaLibraryGetKernel(library, b"spin")
    assert int(err) == 0, err
    return spin


def graph_exec(spin: Any, grid: int, iterations: int = 0) -> Any:
    err, graph = rt.cudaGraphCreate(0)
    params = rt.cudaKernelNodeParams()
    params.func = int(spin)
    params.gridDim = rt.dim3()
    params.gridDim.x, params.gridDim.y, params.gridDim.z = grid, 1, 1
    params.blockDim = rt.dim3()
    params.blockDim.x, params.blockDim.y, params.blockDim.z = 256, 1, 1
    params.kernelParams = ((0, iterations), (ctypes.c_void_p, ctypes.c_ulonglong))
    err, _node = rt.cudaGraphAddKernelNode(graph, None, 0, params)
    assert int(err) == 0, err
    err, exe = rt.cudaGraphInstantiate(graph, 0)
    assert int(err) == 0, err
    return exe


def graph(seconds: float, grid: int, iterations: int) -> None:
    exe = graph_exec(kernel(), grid, iterations)
    print("ready=1", flush=True)
    launches, rc = 0, 0
    end = time.monotonic() + seconds
    while time.monotonic() < end and rc == 0:
        rc = code(rt.cudaGraphLaunch(exe, 0))
        launches += 1
    sync = code(rt.cudaDeviceSynchronize())
    print(f"rc={rc},{sync}\nlaunches={launches}\ncost_each={grid * 256}")


def basic() -> None:
    err, count = rt.cudaGetDeviceCount()
    print(f"count={int(err)},{count}")
    err, ptr = rt.cudaMalloc(1024)
    data = bytes(range(256)) * 4
    put = code(rt.cudaMemcpy(ptr, data, len(data), rt.cudaMemcpyKind.cudaMemcpyHostToDevice))
    back = bytearray(len(data))
    got = code(rt.cudaMemcpy(back, ptr, len(back), rt.cudaMemcpyKind.cudaMemcpyDeviceToHost))
    print(f"copies={put},{got},{int(bytes(back) == data)}")
    spin = kernel()
    err, _missing = rt.cudaLibraryGetKernel(rt.cudaLibraryLoadData(PTX, None, None, 0, None, None, 0)[1], b"nope")
    print(f"missing_kernel={int(err)}")
    launched = code(rt.cudaGraphLaunch(graph_exec(spin, 4), 0))
    print(f"graph={launched},{code(rt.cudaDeviceSynchronize())}")
    info("info")
    print(f"free={code(rt.cudaFree(ptr))}")


def count_allocs() -> None:
    """50 MiB cudaMallocs until refused (at most 64), as runtime_attacks.cu."""
    got = 0
    while got < 64 and int(rt.cudaMalloc(50 * MIB)[0]) == 0:
        got += 1
    rt.cudaGetLastError()
    print(f"allocs={got}")


def attack_capture(size: int) -> None:
    """cudaMallocAsync (and a memset on it) captured from a stream into a graph, then run."""
    err, stream = rt.cudaStreamCreateWithFlags(rt.cudaStreamNonBlocking)
    mode = rt.cudaStreamCaptureMode.cudaStreamCaptureModeGlobal
    print(f"begin_rc={int(err)},{code(rt.cudaStreamBeginCapture(stream, mode))}")
    err, ptr = rt.cudaMallocAsync(size, stream)
    print(f"alloc_rc={int(err)},{code(rt.cudaMemsetAsync(ptr, 1, size, stream))}")
    info("info_capturing")
    err, graph = rt.cudaStreamEndCapture(stream)
    print(f"end_rc={int(err)}")
    err, exe = rt.cudaGraphInstantiate(graph, 0)
    print(f"instantiate_rc={int(err)}")
    print(f"launch_rc={code(rt.cudaGraphLaunch(exe, stream)) if int(err) == 0 else -1}")
    rt.cudaStreamSynchronize(stream)
    count_allocs()
    info("info")


def attack(name: str, mib: int) -> None:
    """The isolation attacks of tests/native/cuda/runtime_attacks.cu through cuda.bindings.runtime."""
    size = mib * MIB
    if name == "pool":  # the default pool keeps what is freed: its release threshold raised
        err, pool = rt.cudaDeviceGetDefaultMemPool(0)
        keep_all = driver.cuuint64_t((1 << 64) - 1)
        threshold = rt.cudaMemPoolAttr.cudaMemPoolAttrReleaseThreshold
        print(f"set_rc={int(err)},{code(rt.cudaMemPoolSetAttribute(pool, threshold, keep_all))}")
        (ra, a), (rb, b) = rt.cudaMallocAsync(size, 0), rt.cudaMallocAsync(size, 0)
        print(f"async_rc={int(ra)},{int(rb)}")
        rt.cudaFreeAsync(a, 0)
        rt.cudaFreeAsync(b, 0)
        rt.cudaStreamSynchronize(0)
        info("info_kept")
        count_allocs()
        print(f"trim_rc={code(rt.cudaMemPoolTrimTo(pool, 0))}")
        info("info_trimmed")
    elif name == "graphmem":  # a graph memory-allocation node, instantiated and run
        err, graph = rt.cudaGraphCreate(0)
        params = rt.cudaMemAllocNodeParams()
        params.poolProps.allocType = rt.cudaMemAllocationType.cudaMemAllocationTypePinned
        params.poolProps.location.type = rt.cudaMemLocationType.cudaMemLocationTypeDevice
        params.poolProps.location.id = 0
        params.bytesize = size
        err, _node = rt.cudaGraphAddMemAllocNode(graph, None, 0, params)
        assert int(err) == 0, err
        err, exe = rt.cudaGraphInstantiate(graph, 0)
        print(f"instantiate_rc={int(err)}")
        print(f"launch_rc={code(rt.cudaGraphLaunch(exe, 0)) if int(err) == 0 else -1}")
        rt.cudaStreamSynchronize(0)
        count_allocs()
        info("info")
    elif name == "capture":
        attack_capture(size)
    elif name == "heap":  # the device malloc heap, 8 MiB by default
        rt.cudaFree(0)
        print(f"heap_rc={code(rt.cudaDeviceSetLimit(rt.cudaLimit.cudaLimitMallocHeapSize, 8 * MIB + size))}")
        count_allocs()
        info("info")
    else:
        raise SystemExit(f"attack: unknown NAME {name!r}")


def main(argv: list[str]) -> None:
    match argv:
        case ["basic"]:
            basic()
        case ["family", name, mib]:
            family(name, int(mib))
        case ["attack", name, mib]:
            attack(name, int(mib))
        case ["graph", seconds, grid]:
            graph(float(seconds), int(grid), 0)
        case ["graph", seconds, grid, iterations]:
            graph(float(seconds), int(grid), int(iterations))
        case _:
            raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
