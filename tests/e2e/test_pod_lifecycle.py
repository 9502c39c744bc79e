"""A TensorFusion pod's whole life in Kubernetes, every component real except the API server
(the emulator) and the GPU (the simulator):

admission webhook (validate, inject) -> the scheduler extender watching the cluster (filter,
bind with gpu-ids) -> the node's `tensor-fusion hypervisor` process (creates the pod's region)
-> the injected init container's command (installs the shim, waits for the region) -> the
workload container's environment and mounts, resolved as the kubelet would, running a
driver-API program under the shim: held to the VRAM limit written in the pod's annotations.
Deleting the pod removes its region.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from daemons.webhook.server import Webhook
from tests.daemons.hypervisor.process import NODE, UUID0, Hypervisor
from tests.daemons.hypervisor.test_pod_regions import parse_kv, vram  # noqa: F401  (vram: a fixture)
from tests.daemons.scheduler.cluster import pool
from tests.e2e.extender import Extender, eventually, running_extender
from tests.kubeapi.emulator import KubeEmulator
from tests.unit.admission.pods import cluster as cluster_defaults
from tfcore.admission import InjectionConfig, PodReview
from tfcore.admission.patch import apply_patch
from tfcore.ipc import limits_path
from tfcore.k8s import request_json
from tfcore.native import library_paths

GROUP = "/apis/tensor-fusion.ai/v1"
MIB = 1 << 20


class Kubelet:
    """Resolves a container's mounts and environment to paths on this machine, as the kubelet
    would: hostPath volumes are host directories, emptyDirs fresh ones, subPathExpr expands
    $(VAR) from the container's environment (downward API: the pod's name and namespace)."""

    def __init__(self, pod: dict[str, Any], scratch: Path) -> None:
        self.pod = pod
        self.volumes: dict[str, Path] = {}
        for volume in pod["spec"]["volumes"]:
            if "hostPath" in volume:
                self.volumes[volume["name"]] = Path(volume["hostPath"]["path"])
            else:
                self.volumes[volume["name"]] = scratch / volume["name"]
                self.volumes[volume["name"]].mkdir(parents=True, exist_ok=True)

    def environment(self, container: dict[str, Any]) -> dict[str, str]:
        fields = {
            "metadata.name": self.pod["metadata"]["name"],
            "metadata.namespace": self.pod["metadata"]["namespace"],
        }
        env: dict[str, str] = {}
        for entry in container.get("env", []):
            if "value" in entry:
                env[entry["name"]] = entry["value"]
            elif (ref := entry.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")) in fields:
                env[entry["name"]] = fields[ref]
        return env

    def resolve(self, container: dict[str, Any], path: str) -> str:
        """The host path behind `path` inside the container (the longest mount that holds it)."""
        env = self.environment(container)
        mounts = sorted(container.get("volumeMounts", []), key=lambda m: -len(m["mountPath"]))
        for mount in mounts:
            inside = mount["mountPath"]
            if path == inside or path.startswith(inside.rstrip("/") + "/"):
                sub = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], mount.get("subPathExpr", ""))
                base = self.volumes[mount["name"]] / sub if sub else self.volumes[mount["name"]]
                return str(base) + path[len(inside) :]
        return path


@pytest.fixture
async def extender(kube: KubeEmulator) -> AsyncIterator[Extender]:
    async with running_extender(kube) as running:
        yield running


async def test_a_pod_from_admission_to_its_program_held_to_the_limit(
    kube: KubeEmulator,
    extender: Extender,
    tmp_path: Path,
    vram: Path,  # noqa: F811
) -> None:
    api = kube.api_client()
    service = extender.service
    await request_json(api, "POST", f"{GROUP}/gpupools", body=pool("prod-shared"))
    await request_json(api, "POST", "/api/v1/nodes", body={"metadata": {"name": NODE}})
    gpunode = {"name": NODE, "labels": {"tensor-fusion.ai/gpupool": "prod-shared"}}
    await request_json(api, "POST", f"{GROUP}/gpunodes", body={"kind": "GPUNode", "metadata": gpunode})
    (tmp_path / "node").mkdir()
    hypervisor = Hypervisor(tmp_path / "node", kube)
    await hypervisor.start()
    try:
        await eventually(lambda: len(getattr(service.allocator.nodes.get(NODE), "gpus", [])) == 2, "GPUs reported")

        # 1. The user's pod, as the spec writes it (nvidia.com/gpu kept), through admission.
        config = InjectionConfig(
            shim_source=str(library_paths()["shim"]), region_host_dir=str(hypervisor.state_dir / "workers")
        )
        user_pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "train-0",
                "namespace": "default",
                "labels": {"tensor-fusion.ai/enabled": "true"},
                "annotations": {"tensor-fusion.ai/tflops-limit": "100", "tensor-fusion.ai/vram-limit": "1Gi"},
            },
            "spec": {
                "containers": [{"name": "main", "image": "cuda", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]
            },
        }
        verdict = await Webhook(config, cluster_defaults).review(PodReview("req-1", "CREATE", "default", user_pod))
        assert verdict.allowed, verdict.message
        pod = await request_json(
            api, "POST", "/api/v1/namespaces/default/pods", body=apply_patch(user_pod, verdict.patch or [])
        )
        uid = pod["metadata"]["uid"]

        # 2. The scheduler extender places it (kube-scheduler's calls).
        await eventually(lambda: uid in service.pending, "the scheduler sees the pod")
        filtered = await extender.filter(pod)
        assert filtered["NodeNames"] == [NODE]
        assert await extender.bind(pod) == {}
        bound = await request_json(api, "GET", "/api/v1/namespaces/default/pods/train-0")
        assert bound["spec"]["nodeName"] == NODE
        assert bound["metadata"]["annotations"]["tensor-fusion.ai/gpu-ids"] == UUID0.lower()

        # 3. The init container's command, with its paths resolved as the kubelet mounts them.
        kubelet = Kubelet(bound, tmp_path / "volumes")
        init = bound["spec"]["initContainers"][0]
        command = [kubelet.resolve(init, arg) if arg.startswith("/") else arg for arg in init["command"]]
        assert command[0] == "tensor-fusion"
        command = [sys.executable, "-m", "daemons.cli", *command[1:]]
        installed = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=120)
        assert installed.returncode == 0, installed.stderr
        main = bound["spec"]["containers"][0]
        region = Path(kubelet.resolve(main, "/run/tensor-fusion/worker/shm"))
        assert region == hypervisor.state_dir / "workers" / "default" / "train-0" / "shm"
        assert limits_path(region).exists()

        # 4. The workload container: its environment, paths resolved, on the simulated driver.
        env = kubelet.environment(main)
        env = {k: kubelet.resolve(main, v) if v.startswith("/") else v for k, v in env.items()}
        assert "nvidia.com/gpu" not in main["resources"].get("limits", {})
        env.update(
            PATH="/usr/bin:/bin",
            LD_LIBRARY_PATH=str(library_paths()["simcuda"].parent),
            TF_SIM_STATE=str(hypervisor.root / "sim.state"),
        )
        done = subprocess.run(
            [str(vram), "family", "alloc", "600"], env=env, capture_output=True, text=True, check=False
        )
        assert parse_kv(done.stdout)["result"] == "0,2,0,0,0", done.stdout + done.stderr  # 2nd 600 MiB refused

        # 5. The pod goes: so does its region.
        await request_json(api, "DELETE", "/api/v1/namespaces/default/pods/train-0")
        await eventually(lambda: not region.exists(), "the region is removed")
    finally:
        await hypervisor.stop()
