"""The simulated driver and NVML, used through the real Python clients in subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import parse_kv, run, run_python, sim_env

pytestmark = pytest.mark.simulator_only  # the simulator itself is under test

CUDA_PROBE = """
import json
from cuda.bindings import driver as d
out = {"before": int(d.cuDeviceGetCount()[0])}
out["init"] = int(d.cuInit(0)[0])
out["version"] = d.cuDriverGetVersion()[1]
out["count"] = d.cuDeviceGetCount()[1]
devices = [d.cuDeviceGet(i)[1] for i in range(out["count"])]
out["names"] = [d.cuDeviceGetName(64, dev)[1].rstrip(b"\\0").decode() for dev in devices]
out["totals"] = [d.cuDeviceTotalMem(dev)[1] for dev in devices]
out["uuids"] = [bytes(d.cuDeviceGetUuid(dev)[1].bytes).hex() for dev in devices]
out["bad_device"] = int(d.cuDeviceGet(99)[0])
out["errname"] = d.cuGetErrorName(d.CUresult.CUDA_ERROR_NOT_INITIALIZED)[1].decode()
print(json.dumps(out))
"""

NVML_PROBE = """
import json, pynvml
try:
    pynvml.nvmlDeviceGetCount()
    early = "no error"
except pynvml.NVMLError_Uninitialized:
    early = "uninitialized"
pynvml.nvmlInit()
pynvml.nvmlInit()
out = {"early": early, "count": pynvml.nvmlDeviceGetCount(),
       "driver": pynvml.nvmlSystemGetDriverVersion()}
h = pynvml.nvmlDeviceGetHandleByIndex(0)
mem = pynvml.nvmlDeviceGetMemoryInfo(h)
out.update(name=pynvml.nvmlDeviceGetName(h), uuid=pynvml.nvmlDeviceGetUUID(h),
           total=mem.total, free=mem.free, used=mem.used)
pynvml.nvmlShutdown()
out["after_one_shutdown"] = pynvml.nvmlDeviceGetCount()  # still initialized: ref counted
pynvml.nvmlShutdown()
try:
    pynvml.nvmlShutdown()
except pynvml.NVMLError_Uninitialized:
    out["extra_shutdown"] = "uninitialized"
print(json.dumps(out))
"""


def test_cuda_python_runs_on_the_sim(libs: dict[str, Path]) -> None:
    done = run_python(CUDA_PROBE, sim_env(libs, TF_SIM_GPU_COUNT="2", TF_SIM_GPU_VRAM=str(24 << 30)))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["before"] == 3  # CUDA_ERROR_NOT_INITIALIZED before cuInit
    assert (out["init"], out["version"], out["count"]) == (0, 13000, 2)
    assert out["names"] == ["NVIDIA H100 80GB HBM3 (simulated)"] * 2
    assert out["totals"] == [24 << 30] * 2
    assert len(set(out["uuids"])) == 2
    assert out["bad_device"] == 101  # CUDA_ERROR_INVALID_DEVICE
    assert out["errname"] == "CUDA_ERROR_NOT_INITIALIZED"
    assert done.stderr == ""


def test_bad_sim_settings_fall_back_to_defaults(libs: dict[str, Path]) -> None:
    env = sim_env(libs, TF_SIM_GPU_COUNT="lots", TF_SIM_GPU_VRAM="-1", TF_SIM_DRIVER_VERSION="12080")
    done = run_python(CUDA_PROBE, env)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["count"], out["totals"], out["version"]) == (1, [80 << 30], 12080)
    assert 'ignoring TF_SIM_GPU_COUNT="lots"' in done.stderr
    assert 'ignoring TF_SIM_GPU_VRAM="-1"' in done.stderr


def test_pynvml_runs_on_the_sim(libs: dict[str, Path]) -> None:
    done = run_python(NVML_PROBE, sim_env(libs, TF_SIM_GPU_VRAM=str(40 << 30)))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["early"] == "uninitialized"
    assert out["count"] == 1
    assert out["name"] == "NVIDIA H100 80GB HBM3 (simulated)"
    assert out["uuid"].startswith("GPU-")
    assert len(out["uuid"]) == 40
    assert (out["total"], out["free"], out["used"]) == (40 << 30, 40 << 30, 0)
    assert out["after_one_shutdown"] == 1
    assert out["extra_shutdown"] == "uninitialized"


@pytest.fixture(scope="module")
def simdrv(cc: Callable[..., Path]) -> Path:
    return cc("simdrv", "simdrv.c", flags=("-ldl",))


@pytest.fixture(scope="module")
def vram(cc: Callable[..., Path]) -> Path:
    return cc("vram", "vram.c", flags=("-ldl", "-lpthread"))


def test_driver_api_program_on_the_sim(libs: dict[str, Path], simdrv: Path) -> None:
    done = run([str(simdrv), "basics"], sim_env(libs, TF_SIM_WAVE_NS=str(5_000_000)))
    assert done.returncode == 0, done.stdout + done.stderr
    out = parse_kv(done.stdout)
    assert out["before_init"] == "3"  # NOT_INITIALIZED
    assert out["no_context"] == "201"  # INVALID_CONTEXT
    assert (out["zero_size"], out["free_unknown"], out["aligned"]) == ("1", "1", "1")
    assert out["copy"] == "0,0,0,1"  # bytes copied in come back out
    assert out["copy_out_of_bounds"] == "1"
    assert out["memset32"] == "1"
    assert out["async"] == "600,0,1"  # NOT_READY while the kernel runs, then done, in order
    assert out["bad_launch"] == "1,400"
    assert out["vmm"] == "0,0,0,0,0,1,0,0,0"
    assert out["vmm_unaligned"] == "1"
    assert out["frees"] == "0,0,1"
    assert out["ctx"] == "0,1,0"
    assert out["oom"] == "2"
    assert out["meminfo"] == f"{80 << 30},{80 << 30}"  # everything freed
    assert done.stderr == ""


@pytest.mark.parametrize(("waves", "speed", "ms"), [(1, "100", "100.0"), (3, "100", "300.0"), (2, "200", "100.0")])
def test_kernel_time_model(libs: dict[str, Path], simdrv: Path, waves: int, speed: str, ms: str) -> None:
    env = sim_env(libs, TF_SIM_WAVE_NS=str(100_000_000), TF_SIM_GPU_SPEED=speed)
    out = parse_kv(run([str(simdrv), "kernel", str(waves)], env).stdout)
    early, rc, elapsed = out["elapsed"].split(",")
    assert (early, rc, elapsed) == ("600", "0", ms)


def test_processes_share_one_device_timeline(libs: dict[str, Path], simdrv: Path) -> None:
    env = sim_env(libs, TF_SIM_WAVE_NS=str(100_000_000))
    with subprocess.Popen([str(simdrv), "kernel", "4", "bg"], env=env, stdout=subprocess.PIPE, text=True) as other:
        assert other.stdout is not None
        while other.stdout.readline().strip() != "launched=1":
            pass
        out = parse_kv(run([str(simdrv), "kernel", "1"], env).stdout)
        other.kill()
    # Alone the kernel takes 100 ms; behind the other process's 400 ms kernel it ends later.
    assert float(out["elapsed"].split(",")[2]) > 250


NVML_PROCS = """
import ctypes, json, os, sys, time, pynvml
pynvml.nvmlInit()
h = pynvml.nvmlDeviceGetHandleByIndex(0)
fn = pynvml._nvmlGetFunctionPointer("nvmlDeviceGetComputeRunningProcesses_v3")
count = ctypes.c_uint(0)
probe = fn(h, ctypes.byref(count), None)
procs = pynvml.nvmlDeviceGetComputeRunningProcesses(h)
time.sleep(float(sys.argv[1]))
util = pynvml.nvmlDeviceGetUtilizationRates(h)
try:
    samples = [[s.pid, s.smUtil] for s in pynvml.nvmlDeviceGetProcessUtilization(h, 0)]
except pynvml.NVMLError_NotFound:
    samples = []
mem = pynvml.nvmlDeviceGetMemoryInfo(h)
print(json.dumps({"probe": probe, "needed": count.value, "procs": [[p.pid, p.usedGpuMemory] for p in procs],
                  "gpu": util.gpu, "samples": samples, "used": mem.used}))
"""


def test_nvml_reports_processes_memory_and_utilization(libs: dict[str, Path], vram: Path, simdrv: Path) -> None:
    env = sim_env(libs, TF_SIM_WAVE_NS=str(100_000_000))
    with (
        subprocess.Popen([str(vram), "hold", "300", "30"], env=env, stdout=subprocess.PIPE, text=True) as holder,
        subprocess.Popen([str(simdrv), "kernel", "10", "bg"], env=env, stdout=subprocess.PIPE, text=True) as busy,
    ):
        assert holder.stdout is not None
        assert busy.stdout is not None
        assert holder.stdout.readline().strip() == "hold=0"
        while busy.stdout.readline().strip() != "launched=1":
            pass
        done = run([sys.executable, "-c", NVML_PROCS, "0.3"], env)  # inside the 1 s kernel
        holder.kill()
        busy.kill()
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["probe"], out["needed"]) == (7, 1)  # INSUFFICIENT_SIZE, and the count needed
    assert out["procs"] == [[holder.pid, 300 << 20]]
    assert out["used"] == 300 << 20
    assert out["gpu"] == 100  # the other process's kernel keeps the device busy
    assert out["samples"] == [[busy.pid, 100]]
    after = json.loads(run([sys.executable, "-c", NVML_PROCS, "0"], env).stdout)
    assert (after["procs"], after["used"]) == ([], 0)  # dead processes' memory is returned


def test_device_memory_is_one_pool_for_the_machine(libs: dict[str, Path], vram: Path) -> None:
    env = sim_env(libs, TF_SIM_GPU_VRAM=str(4 << 30))
    with subprocess.Popen([str(vram), "hold", "3000", "30"], env=env, stdout=subprocess.PIPE, text=True) as holder:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "hold=0"
        seen = parse_kv(run([str(vram), "family", "alloc", "1000"], env).stdout)
        holder.kill()
    assert seen["info_held"].startswith(f"rc:0,free:{(4 << 30) - (3000 << 20) - (1000 << 20)},")
    assert seen["result"] == "0,2,0,0,0"  # the physical device is full: OUT_OF_MEMORY
    alone = parse_kv(run([str(vram), "info"], env).stdout)
    assert alone["info"] == f"rc:0,free:{4 << 30},total:{4 << 30},device_total:{4 << 30}"


CONFIG_PROBE = """
import json
from cuda.bindings import driver as d
d.cuInit(0)
n = d.cuDeviceGetCount()[1]
attr = d.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT
print(json.dumps({"count": n, "name": d.cuDeviceGetName(96, 0)[1].rstrip(b"\\0").decode(),
                  "total": d.cuDeviceTotalMem(0)[1], "sms": d.cuDeviceGetAttribute(attr, 0)[1]}))
"""


def test_config_file_describes_the_devices(libs: dict[str, Path], tmp_path: Path) -> None:
    config = tmp_path / "sim.conf"
    config.write_text(
        "# a smaller GPU\ncount = 2\nname = NVIDIA A100-SXM4-40GB\nvram = 42949672960\n"
        "sm_count = 108\ntflops = 312\nbogus = 1\nsm_count = many\n"
    )
    done = run_python(CONFIG_PROBE, sim_env(libs, TF_SIM_CONFIG=str(config)))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out == {"count": 2, "name": "NVIDIA A100-SXM4-40GB (simulated)", "total": 40 << 30, "sms": 108}
    assert 'unknown key "bogus"' in done.stderr
    assert 'ignoring sm_count="many"' in done.stderr


CUDA_PYTHON_PROGRAM = """
import json
from cuda.bindings import driver as d
d.cuInit(0)
dev = d.cuDeviceGet(0)[1]
ctx = d.cuDevicePrimaryCtxRetain(dev)[1]
d.cuCtxSetCurrent(ctx)
data = bytes(range(256)) * 16
err, ptr = d.cuMemAlloc(len(data))
d.cuMemcpyHtoD(ptr, data, len(data))
back = bytearray(len(data))
d.cuMemcpyDtoH(back, ptr, len(data))
ptx = b".version 7.0\\n.target sm_50\\n.address_size 64\\n"
err, mod = d.cuModuleLoadData(ptx + b".visible .entry k()\\n{\\n ret;\\n}\\n\\0")
err, fn = d.cuModuleGetFunction(mod, b"k")
err, stream = d.cuStreamCreate(0)
launch = d.cuLaunchKernel(fn, 64, 1, 1, 256, 1, 1, 0, stream, 0, 0)[0]
sync = d.cuStreamSynchronize(stream)[0]
missing = d.cuGraphAddMemcpyNode(None, None, 0, None, None)[0]
print(json.dumps({"round_trip": bytes(back) == data, "launch": int(launch), "sync": int(sync),
                  "free": int(d.cuMemFree(ptr)[0]), "missing": int(missing)}))
"""


def test_cuda_python_program_on_the_sim(libs: dict[str, Path]) -> None:
    done = run_python(CUDA_PYTHON_PROGRAM, sim_env(libs))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"round_trip": True, "launch": 0, "sync": 0, "free": 0, "missing": 801}


def test_unusable_state_file_falls_back_to_private_state(libs: dict[str, Path], tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.write_bytes(b"junk")
    done = run_python(CUDA_PROBE, sim_env(libs, TF_SIM_STATE=str(state)))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["count"] == 1
    assert done.stderr.count("simulates its own private GPUs") == 1


EVERY_SYMBOL = """
import ctypes, json, re, sys
lib = ctypes.CDLL("libcuda.so.1")
gpa = lib.cuGetProcAddress_v2
gpa.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_uint64,
                ctypes.POINTER(ctypes.c_int)]
bases = sorted(set(re.findall(r"^TF_DRIVER_PROC\\((\\w+),", open(sys.argv[1]).read(), re.M)))
bad = []
for base in bases:
    pfn, status = ctypes.c_void_p(), ctypes.c_int(-1)
    rc = gpa(base.encode(), ctypes.byref(pfn), 13000, 0, ctypes.byref(status))
    if rc != 0 or status.value != 0 or not pfn.value:
        bad.append([base, rc, status.value])
print(json.dumps({"asked": len(bases), "bad": bad}))
"""


def test_every_driver_symbol_resolves(libs: dict[str, Path]) -> None:
    table = Path(__file__).resolve().parents[2] / "ext" / "include" / "tf" / "driver_procs.inc"
    done = run([sys.executable, "-c", EVERY_SYMBOL, str(table)], sim_env(libs))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["asked"] > 400  # every base name of the CUDA 13 driver
    assert out["bad"] == []  # implemented, or a stub answering CUDA_ERROR_NOT_SUPPORTED
