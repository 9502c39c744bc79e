"""`tensor-fusion hypervisor` as a child process on the simulated GPU (two of them), reporting
as NODE to the Kubernetes API emulator: shared by the hypervisor's Kubernetes tests."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp

from tests.kubeapi.emulator import KubeEmulator

NODE = "node-a"
PATIENCE = 15.0  # seconds; generous for CI's two shared cores (reports come every 0.2 s)
UUID0 = "GPU-5153494d-0000-4000-8000-000000000000"
UUID1 = "GPU-5153494d-0000-4000-8000-000000000001"


class Hypervisor:
    """One `tensor-fusion hypervisor` process reporting as NODE to the emulator."""

    def __init__(self, root: Path, kube: KubeEmulator, *options: str, env: dict[str, str] | None = None) -> None:
        self.root = root
        self.extra_env = env or {}
        self.state_dir = root / "state"
        self.options = options
        self.kubeconfig = root / "kubeconfig"
        kube.write_kubeconfig(self.kubeconfig)
        self.process: asyncio.subprocess.Process | None = None
        self.log = root / "hypervisor.log"
        self.url = ""

    async def start(self) -> Hypervisor:
        node_file = self.state_dir / "node.json"
        node_file.unlink(missing_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "LD_", "CUDA_", "KUBERNETES_"))}
        env.pop("NODE_NAME", None)
        env.update(TF_SIM_GPU_COUNT="2", TF_SIM_STATE=str(self.root / "sim.state"), TF_STATE_DIR=str(self.state_dir))
        env.update(self.extra_env)
        command = [sys.executable, "-m", "daemons.cli", "hypervisor", "--simulate", "--port", "0"]
        command += ["--node-name", NODE, "--kubeconfig", str(self.kubeconfig), "--report-interval", "0.2"]
        with self.log.open("a") as log:
            self.process = await asyncio.create_subprocess_exec(
                *command, *self.options, env=env, stdout=log, stderr=log
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while not node_file.exists():
            if self.process.returncode is not None or loop.time() > deadline:
                raise AssertionError(f"hypervisor did not start:\n{self.log.read_text()}")
            await asyncio.sleep(0.05)
        self.url = json.loads(node_file.read_text())["url"]
        return self

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:  # generous: a loaded CI host can take seconds to run the graceful shutdown
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
            assert self.process.returncode == 0, self.log.read_text()

    async def create_worker(self, **body: Any) -> tuple[int, Any]:
        token = (self.state_dir / "token").read_text().strip()
        headers = {"Authorization": f"Bearer {token}"}
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{self.url}/api/v1/workers", json=body, headers=headers) as r,
        ):
            return r.status, await r.json()

    async def call(self, method: str, path: str, *, token: bool = True) -> tuple[int, Any]:
        """One call to the node API (with the bearer token unless token=False): (status, JSON or None)."""
        headers = {}
        if token:
            headers["Authorization"] = "Bearer " + (self.state_dir / "token").read_text().strip()
        async with aiohttp.ClientSession() as http, http.request(method, self.url + path, headers=headers) as r:
            body = await r.read()
            return r.status, json.loads(body) if body else None
