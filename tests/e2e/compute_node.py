"""A standalone node on the simulated GPU, driven as a user drives it: `tensor-fusion up` in a
child process, workloads through `tensor-fusion run`, state through the HTTP API.

Achieved shares are measured by the workloads themselves, not by the controller: the sample
workload reports how many kernels it launched, and on the simulated GPU each default kernel
takes exactly KERNEL_SECONDS of device time (WAVES waves of 5 us at speed 100, docs/native.md),
so launches x KERNEL_SECONDS / wall time is the tenant's share of the GPU.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Kernels of 20 waves (100 us of device time each): a tenant at 90% needs ~9,000 launches/s,
# so the Python workloads are not CPU-starved on CI's two shared cores (at the sample's
# default 20 us kernels they needed 40,000/s and fell short of their share under load).
WAVES = 20
GRID = 4224 // 4 * WAVES
KERNEL_SECONDS = WAVES * 5e-6
H100_TFLOPS = 989.4
CLI = [sys.executable, "-m", "daemons.cli"]


def tflops(share: float) -> str:
    """A share of the simulated H100 as a TFLOPS quantity (milli precision)."""
    return f"{round(share * H100_TFLOPS * 1000)}m"


@dataclass
class Tenant:
    name: str
    process: subprocess.Popen[str]
    progress: list[dict[str, Any]]

    def collect(self, timeout: float = 60) -> int:
        out, _ = self.process.communicate(timeout=timeout)
        self.progress = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        return self.process.returncode

    def share(self, start: float, end: float) -> float:
        """Share of the GPU between two progress times (seconds since the workload started)."""
        points = [p for p in self.progress if start <= p["t"] <= end and p["phase"] != "done"]
        if len(points) < 2:
            raise AssertionError(f"{self.name}: no progress between {start} and {end}: {self.progress}")
        first, last = points[0], points[-1]
        return float((last["launches"] - first["launches"]) * KERNEL_SECONDS / (last["t"] - first["t"]))


class LocalNode:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.state_dir = root / "node"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "LD_", "CUDA_"))}
        self.env.update(TF_SIM_STATE=str(root / "simgpu.state"), TF_STATE_DIR=str(self.state_dir))
        self.daemon: subprocess.Popen[str] | None = None
        self.url = ""
        self.log = root / "node.log"

    def start(self, *options: str) -> LocalNode:
        node_file = self.state_dir / "node.json"
        node_file.unlink(missing_ok=True)
        with self.log.open("a") as log:
            self.daemon = subprocess.Popen(
                [*CLI, "up", "--simulate", "--port", "0", *options], env=self.env, stdout=log, stderr=log, text=True
            )
        deadline = time.monotonic() + 30
        while not node_file.exists():
            if self.daemon.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"node did not start:\n{self.log.read_text()}")
            time.sleep(0.05)
        self.url = json.loads(node_file.read_text())["url"]
        return self

    def stop(self) -> int:
        assert self.daemon is not None
        self.daemon.send_signal(signal.SIGTERM)
        return self.daemon.wait(timeout=20)

    def __enter__(self) -> LocalNode:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.kill()
            self.daemon.wait()

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return json.loads(response.read())

    def run(
        self,
        name: str,
        request: float,
        limit: float = 0.0,
        phases: str = "busy:4",
        *extra: str,
        mode: str = "kernel",
        vram: str = "1Gi",
    ) -> Tenant:
        command = [*CLI, "run", "--name", name, "--tflops", tflops(request), "--vram", vram]
        if limit:
            command += ["--tflops-limit", tflops(limit)]
        command += [
            *extra,
            "--",
            sys.executable,
            "-m",
            "daemons.standalone.sample",
            "--phases",
            phases,
            "--mode",
            mode,
            "--grid",
            str(GRID),
            "--report",
            "0.1",
        ]
        process = subprocess.Popen(command, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return Tenant(name, process, [])

    def run_together(self, tenants: Sequence[tuple[str, float, float, str]], mode: str = "kernel") -> list[Tenant]:
        started = [self.run(name, request, limit, phases, mode=mode) for name, request, limit, phases in tenants]
        for tenant in started:
            code = tenant.collect()
            assert code == 0, (tenant.name, tenant.process.stderr.read() if tenant.process.stderr else "")
        return started
