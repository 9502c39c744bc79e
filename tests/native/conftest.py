"""Fixtures for native tests: built library paths and subprocess helpers.

The simulated driver is only ever loaded in child processes: loading it into pytest could
shadow a real driver and would leak state between tests.

TF_NATIVE_DRIVER=real (set by `make gpu-check`) runs the children on the machine's real
driver instead; tests marked `simulator_only` are skipped then.
"""

from __future__ import annotations

import functools
import hashlib
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
CUDA_DIR = Path(__file__).parent / "cuda"
INCLUDE = REPO / "ext" / "include"
REAL_DRIVER = os.environ.get("TF_NATIVE_DRIVER", "") == "real"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not REAL_DRIVER:
        return
    skip = pytest.mark.skip(reason="simulator_only: TF_NATIVE_DRIVER=real runs on the real driver")
    for item in items:
        if item.get_closest_marker("simulator_only") is not None:
            item.add_marker(skip)


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
    if REAL_DRIVER:
        env.update({k: v for k, v in os.environ.items() if k == "LD_LIBRARY_PATH" or k.startswith("CUDA_")})
    else:
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


def find_nvcc() -> str | None:
    """nvcc on PATH, under $CUDA_HOME or in the toolkit's default place."""
    found = shutil.which("nvcc")
    candidates = [Path(os.environ.get("CUDA_HOME", "/nonexistent")) / "bin" / "nvcc", Path("/usr/local/cuda/bin/nvcc")]
    return found or next((str(c) for c in candidates if c.is_file()), None)


# Builds of tests/native/cuda programs: -cudart static and shared with sm_90 SASS plus
# compute_75 PTX (as applications ship: the PTX lets `make gpu-check` run on any GPU from
# Turing on), and PTX only.
SASS_AND_PTX = ("-gencode", "arch=compute_90,code=sm_90", "-gencode", "arch=compute_75,code=compute_75")
NVCC_VARIANTS: dict[str, tuple[str, ...]] = {
    "static": (*SASS_AND_PTX, "-cudart", "static"),
    "shared": (*SASS_AND_PTX, "-cudart", "shared"),
    "ptx": ("-gencode", "arch=compute_90,code=compute_90", "-cudart", "static"),
}


@functools.cache
def nvcc_version(nvcc: str) -> str:
    return subprocess.run([nvcc, "--version"], capture_output=True, text=True, check=False).stdout


def nvcc_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tensor-fusion" / "nvcc"


def compile_cuda(nvcc: str, source: str, variant: str, cache: Path) -> Path:
    """Builds tests/native/cuda/SOURCE as VARIANT once per source, flags and nvcc version
    (the build is kept under `cache`, named by their hash)."""
    flags = NVCC_VARIANTS[variant]
    version = nvcc_version(nvcc)
    text = (CUDA_DIR / source).read_bytes()
    key = hashlib.sha256(text + repr(flags).encode() + version.encode()).hexdigest()[:16]
    target = cache / f"{Path(source).stem}-{variant}-{key}"
    if not target.exists():
        cache.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(f".tmp{os.getpid()}")
        cmd = [nvcc, *flags, "-o", str(partial), str(CUDA_DIR / source)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"nvcc {source} ({variant}) failed: {done.stderr[-2000:]}")
        partial.replace(target)
    return target


@pytest.fixture(scope="session")
def nvcc_build(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], Path]:
    """Compiles a CUDA program once (see compile_cuda); skips when nvcc is absent."""
    nvcc = find_nvcc()
    if nvcc is None:
        pytest.skip("nvcc not found (PATH, $CUDA_HOME, /usr/local/cuda): CUDA C++ runtime tests need the toolkit")
    cache = nvcc_cache()
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError:
        cache = tmp_path_factory.mktemp("nvcc")
    return lambda source, variant: compile_cuda(nvcc, source, variant, cache)
