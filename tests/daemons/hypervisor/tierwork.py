"""tierwork (tests/native/c/tierwork.c) under the shim on the simulated GPU, as a worker's
process: line commands on stdin, `key=value` answers on stdout."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tfcore.native import library_paths

ROOT = Path(__file__).resolve().parents[3]


def build_tierwork(out_dir: Path) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc not found")
    out = out_dir / "tierwork"
    src = ROOT / "tests" / "native" / "c" / "tierwork.c"
    subprocess.run(
        [gcc, "-std=gnu11", "-I", str(ROOT / "ext" / "include"), str(src), "-o", str(out), "-ldl"], check=True
    )
    return out


class TierworkProcess:
    """One tierwork process; `base_env` (default: this process's, less TF_/LD_/CUDA_) plus the
    shim and the simulator, plus `env` (the region, the simulator's settings, the tier dir)."""

    def __init__(self, tierwork: Path, base_env: dict[str, str] | None = None, **env: str) -> None:
        libs = library_paths()
        if base_env is None:
            base_env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "LD_", "CUDA_"))}
        full = dict(base_env, LD_PRELOAD=str(libs["shim"]), LD_LIBRARY_PATH=str(libs["simcuda"].parent))
        full.update(env)
        self.proc = subprocess.Popen(
            [str(tierwork)], env=full, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def ask(self, line: str, answers: int) -> dict[str, str]:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        lines = [self.proc.stdout.readline() for _ in range(answers)]
        return dict(x.strip().split("=", 1) for x in lines if "=" in x)

    async def ask_async(self, line: str, answers: int) -> dict[str, str]:
        """ask, off the event loop (a hypervisor in the same test keeps running)."""
        return await asyncio.to_thread(self.ask, line, answers)

    def finish(self) -> int:
        """quit, and the exit code."""
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write("quit\n")
        self.proc.stdin.close()
        code = self.proc.wait(timeout=30)
        self.proc.stdout.close()
        return code

    def stop(self) -> None:
        """Killed (the test is over, whatever state it is in)."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.kill()
        self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
