"""`tensor-fusion region create|show|sweep`, and a process held to a region it created."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemons.cli import main
from daemons.region import parse_create
from tfcore.ipc import Region, limits_path
from tfcore.model.errors import ValidationError
from tfcore.native import library_paths

MIB = 1 << 20

WORKLOAD = """
import json, sys
from cuda.bindings import driver as d
d.cuInit(0)
ctx = d.cuDevicePrimaryCtxRetain(d.cuDeviceGet(0)[1])[1]
d.cuCtxSetCurrent(ctx)
err, ptr = d.cuMemAlloc(600 << 20)
print(json.dumps({"first": int(err), "second": int(d.cuMemAlloc(600 << 20)[0]),
                  "info": list(d.cuMemGetInfo()[1:])}), flush=True)
if sys.argv[1:] == ["hold"]:
    sys.stdin.read()
"""


def _workload_env(region: Path, tmp_path: Path) -> dict[str, str]:
    libs = library_paths()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "LD_", "CUDA_"))}
    env.update(
        LD_LIBRARY_PATH=str(libs["simcuda"].parent),
        LD_PRELOAD=str(libs["shim"]),
        TF_SHM_PATH=str(region),
        TF_SIM_STATE=str(tmp_path / "simgpu.state"),
    )
    return env


def test_create_then_a_process_is_held_to_the_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    region = tmp_path / "worker.shm"
    assert main(["region", "create", str(region), "--vram", "1Gi"]) == 0
    assert limits_path(region).exists()
    assert f"TF_SHM_PATH={region}" in capsys.readouterr().out
    done = subprocess.run(
        [sys.executable, "-c", WORKLOAD],
        env=_workload_env(region, tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"first": 0, "second": 2, "info": [1024 * MIB - 600 * MIB, 1024 * MIB]}


def test_show_lists_limits_usage_and_processes_and_sweep_reclaims(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    region = tmp_path / "worker.shm"
    assert main(["region", "create", str(region), "--vram", "1Gi", "--tflops-limit", "12.5"]) == 0
    capsys.readouterr()
    with subprocess.Popen(
        [sys.executable, "-c", WORKLOAD, "hold"],
        env=_workload_env(region, tmp_path),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as workload:
        assert workload.stdout is not None
        assert json.loads(workload.stdout.readline())["first"] == 0
        assert main(["region", "show", str(region)]) == 0
        text = capsys.readouterr().out
        assert "device 0 [0]: VRAM 600.0 MiB used of 1024.0 MiB" in text
        assert f"process {workload.pid} (slot 0): alive" in text
        workload.kill()
        workload.wait(timeout=10)
    assert main(["region", "show", str(region), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["devices"][0]["tflops_limit_milli"] == 12_500
    assert info["processes"] == [{"slot": 0, "pid": workload.pid, "alive": False, "used_bytes": [600 * MIB]}]
    assert main(["region", "sweep", str(region)]) == 0
    assert "reclaimed 1 dead process slot(s); returned device 0: 600.0 MiB" in capsys.readouterr().out
    with Region.open(region) as r:
        assert (r.devices()[0].vram_used_bytes, r.processes()) == (0, [])


def test_several_devices_and_uuids(tmp_path: Path) -> None:
    uuid = "GPU-5153494d-0000-4000-8000-000000000001"
    region = tmp_path / "w.shm"
    assert main(["region", "create", str(region), "--vram", "2Gi", "--device", "0", "--device", uuid]) == 0
    with Region.open(region) as r:
        assert [(d.uuid, d.vram_limit_bytes) for d in r.devices()] == [("0", 2 << 30), (uuid, 2 << 30)]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--vram", "lots"], "--vram: "),
        (["--vram", "0"], "--vram: a limit of 0"),
        (["--vram", "1.5"], "--vram: '1.5' is not a whole number of bytes"),
        (["--vram=-1Gi"], "--vram: '-1Gi' is not a whole number"),
        (["--vram", "1Gi", "--device", "gpu0"], "--device[0]: 'gpu0' names no device"),
        (["--vram", "1Gi", "--device", "1", "--device", "1"], "--device: the same device is given twice"),
        (["--vram", "1Gi", "--tflops-limit", "x"], "--tflops-limit: "),
    ],
)
def test_bad_options_name_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], message: str
) -> None:
    assert main(["region", "create", str(tmp_path / "w.shm"), *options]) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_existing_or_missing_regions_are_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    region = tmp_path / "w.shm"
    assert main(["region", "create", str(region), "--vram", "1Gi"]) == 0
    assert main(["region", "create", str(region), "--vram", "1Gi"]) == 1
    assert "File exists" in capsys.readouterr().err
    assert main(["region", "show", str(tmp_path / "nope.shm")]) == 1
    assert "No such file" in capsys.readouterr().err
    assert main(["region", "sweep", str(tmp_path / "nope.shm")]) == 1


@given(st.text(max_size=30), st.text(max_size=30), st.lists(st.text(max_size=50), max_size=3))
def test_create_options_fail_only_with_validation_errors(vram: str, tflops: str, devices: list[str]) -> None:
    args = argparse.Namespace(vram=vram, tflops_request="0", tflops_limit=tflops, devices=devices or None)
    problems = []
    try:
        specs = parse_create(args)
    except ValidationError as exc:
        problems = exc.problems
        specs = []
    assert all(p.field.startswith(("--vram", "--tflops", "--device")) for p in problems)
    assert all(s.vram_limit_bytes > 0 for s in specs)
