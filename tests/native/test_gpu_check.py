"""`make gpu-check` (tests/gpu_check.py) off a GPU: it fails clearly without a driver, and
rehearses its checks with the simulated driver standing in for the real one."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

pytestmark = pytest.mark.simulator_only


def gpu_check(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "LD_"))}
    cmd = [sys.executable, "-m", "tests.gpu_check", *args]
    return subprocess.run(cmd, cwd=REPO, env=base | env, capture_output=True, text=True, timeout=120, check=False)


def real_driver_present() -> bool:
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


@pytest.mark.skipif(real_driver_present(), reason="this machine has an NVIDIA driver")
def test_without_a_driver_it_says_so_in_one_line_and_exits_2() -> None:
    done = gpu_check()
    assert done.returncode == 2, done.stderr
    line = json.loads(done.stdout)
    assert (line["check"], line["ok"]) == ("driver", False)
    assert "no NVIDIA driver" in line["error"]


def test_rehearsal_on_the_simulated_driver(libs: dict[str, Path]) -> None:
    sim = {"LD_LIBRARY_PATH": str(libs["simcuda"].parent), "TF_SIM_STATE": os.environ["TF_SIM_STATE"]}
    done = gpu_check("--only", "runtime-python", **sim)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [json.loads(x) for x in done.stdout.splitlines()]
    assert [(x["check"], x["ok"]) for x in lines] == [("driver", True), ("runtime-python", True)]
    assert lines[1]["results"]["vmm"]["result"] == "0,2,0,0,0"


def test_unknown_checks_are_named() -> None:
    done = gpu_check("--only", "runtime-python,warp-speed")
    assert done.returncode == 2
    assert "--only: unknown check warp-speed" in done.stderr
