"""The simulated driver and NVML, used through the real Python clients in subprocesses."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import run_python, sim_env

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
