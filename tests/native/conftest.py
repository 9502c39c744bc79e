"""Fixtures for native tests: built library paths and subprocess helpers.

The simulated driver is only ever loaded in child processes: loading it into pytest could
shadow a real driver and would leak state between tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tfcore.ipc import DeviceSpec, Region
from tfcore.native import library_paths

REPO = Path(__file__).resolve().parents[2]
C_DIR = Path(__file__).parent / "c"
INCLUDE = REPO / "ext" / "include"


@pytest.fixture(scope="session")
def libs() -> dict[str, Path]:
    return library_paths()


@pytest.fixture(autouse=True)
def _own_simulated_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets a simulated machine of its own; its processes share it."""
    monkeypatch.setenv("TF_SIM_STATE", str(tmp_path / "simgpu.state"))


def sim_env(libs: dict[str, Path], shim: bool = False, **extra: str) -> dict[str, str]:
    """Environment for a child that sees the simulated driver (and optionally the shim)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "LD_", "CUDA_"))}
    env["TF_SIM_STATE"] = os.environ["TF_SIM_STATE"]
    env["LD_LIBRARY_PATH"] = str(libs["simcuda"].parent)
    if shim:
        env["LD_PRELOAD"] = str(libs["shim"])
    env.update(extra)
    return env


def tenant_libs(libs: dict[str, Path], directory: Path) -> dict[str, Path]:
    """Copies of the native libraries in `directory`, readable by any uid. A tenant running as
    another uid cannot load them from the checkout when that is private (a clone in a 0700
    `mktemp -d` directory), so the test must not depend on where it was cloned."""
    target = directory / "lib"
    copied: dict[str, Path] = {}
    for name, path in libs.items():
        relative = path.relative_to(libs["shim"].parent)
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        shutil.copy2(path, destination)
        destination.chmod(0o755)
        copied[name] = destination
    for folder in (target, *(p.parent for p in copied.values())):
        folder.chmod(0o755)
    return copied


def run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=False)


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-c", code], env)


def parse_kv(stdout: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)


@pytest.fixture(scope="session")
def cc(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Compiles C sources from tests/native/c with gcc; skips when gcc is missing."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc not found: the C driver-API tests need a C compiler")
    out_dir = tmp_path_factory.mktemp("cbin")

    def compile_c(output: str, *sources: str, flags: tuple[str, ...] = ()) -> Path:
        target = out_dir / output
        cmd = [
            gcc,
            "-std=gnu11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-I",
            str(INCLUDE),
            *(str(C_DIR / s) for s in sources),
            "-o",
            str(target),
            *flags,
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        return target

    return compile_c


def make_region(path: Path, *limits: tuple[str, int]) -> Path:
    """A region granting (device selector, VRAM bytes) pairs; returns its path."""
    with Region.create(path, [DeviceSpec(selector, vram) for selector, vram in limits]):
        pass
    return path
