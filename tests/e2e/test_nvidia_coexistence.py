"""NVIDIA GPU Operator coexistence end to end: the Kubernetes API emulator, a real
`tensor-fusion hypervisor --simulate` (two GPUs) reading FakeKubelet's pod-resources API, and
the scheduler extender watching the emulator through kubernetes-asyncio.

A native nvidia.com/gpu pod is placed on the node; no TensorFusion worker goes there until the
hypervisor has reported which GPU the device plugin gave it; the worker then gets the other GPU,
and the next native pod is kept off the node.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from daemons.scheduler.http import extender_app
from daemons.scheduler.kube import KubeCluster
from daemons.scheduler.mirror import ClusterMirror
from daemons.scheduler.service import SchedulerService
from tests.daemons.hypervisor.fake_kubelet import FakeKubelet
from tests.daemons.hypervisor.process import NODE, UUID0, UUID1, Hypervisor
from tests.daemons.scheduler.cluster import binding_args, extender_args, gpu_pod, pool
from tests.kubeapi.emulator import KubeEmulator
from tfcore.k8s import request_json
from tfcore.sched import Allocator

GROUP = "/apis/tensor-fusion.ai/v1"
PATIENCE = 20.0  # seconds: the hypervisor reports every 0.2 s; CI has two shared cores


async def eventually(check: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PATIENCE
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.05)


def native_pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "schedulerName": "tensor-fusion-scheduler",
            "containers": [{"name": "main", "image": "cuda", "resources": {"limits": {"nvidia.com/gpu": "1"}}}],
        },
    }


class Extender:
    """The scheduler extender on the emulator, as kube-scheduler calls it."""

    def __init__(self, service: SchedulerService, client: TestClient[Any, Any]) -> None:
        self.service = service
        self.client = client

    async def create(self, kube: KubeEmulator, pod: dict[str, Any]) -> dict[str, Any]:
        created: dict[str, Any] = await request_json(
            kube.api_client(), "POST", "/api/v1/namespaces/default/pods", body=pod
        )
        uid = created["metadata"]["uid"]
        await eventually(lambda: uid in self.service.pending, f"the scheduler sees pod {pod['metadata']['name']}")
        return created

    async def filter(self, pod: dict[str, Any]) -> dict[str, Any]:
        reply: dict[str, Any] = await (await self.client.post("/filter", json=extender_args(pod, [NODE]))).json()
        return reply

    async def bind(self, pod: dict[str, Any]) -> dict[str, Any]:
        reply: dict[str, Any] = await (await self.client.post("/bind", json=binding_args(pod, NODE))).json()
        return reply


@pytest.fixture
async def extender(kube: KubeEmulator) -> AsyncIterator[Extender]:
    api = kube.api_client()
    service = SchedulerService(Allocator(), native_gpu_pods=True)
    cluster = KubeCluster(api, ClusterMirror(service), watch_timeout=5)
    task = asyncio.create_task(cluster.run())
    try:
        async with TestClient(TestServer(extender_app(service, cluster))) as client:
            yield Extender(service, client)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_native_pods_and_workers_never_share_a_gpu(
    kube: KubeEmulator, extender: Extender, tmp_path: Path
) -> None:
    api = kube.api_client()
    await request_json(api, "POST", f"{GROUP}/gpupools", body=pool())
    await request_json(api, "POST", "/api/v1/nodes", body={"metadata": {"name": NODE}})
    gpunode = {"metadata": {"name": NODE, "labels": {"tensor-fusion.ai/gpupool": "shared"}}}
    await request_json(
        api, "POST", f"{GROUP}/gpunodes", body={"apiVersion": "tensor-fusion.ai/v1", "kind": "GPUNode", **gpunode}
    )
    sock = tmp_path / "kubelet.sock"
    async with FakeKubelet(sock) as kubelet:
        hypervisor = Hypervisor(
            tmp_path, kube, "--nvidia-progressive-migration", "--kubelet-pod-resources-socket", str(sock)
        )
        await hypervisor.start()
        try:
            allocator = extender.service.allocator
            await eventually(
                lambda: NODE in allocator.nodes and len(allocator.nodes[NODE].gpus) == 2, "the hypervisor's GPUs arrive"
            )
            native = await extender.create(kube, native_pod("native-0"))
            assert (await extender.filter(native))["NodeNames"] == [NODE]
            assert await extender.bind(native) == {}

            worker = await extender.create(kube, gpu_pod("tf-0", tflops="100", vram="8Gi"))
            refused = await extender.filter(worker)
            assert refused["NodeNames"] == []
            assert "has not yet reported which" in refused["FailedNodes"][NODE]

            kubelet.assign("default", "native-0", [UUID1])  # the device plugin's choice
            await eventually(lambda: allocator.nodes[NODE].native_unsettled == 0, "the hypervisor reports GPU 1")
            assert (await extender.filter(worker))["NodeNames"] == [NODE]
            assert await extender.bind(worker) == {}
            stored = await request_json(api, "GET", "/api/v1/namespaces/default/pods/tf-0")
            assert stored["metadata"]["annotations"]["tensor-fusion.ai/gpu-ids"] == UUID0.lower()
            assert stored["spec"]["nodeName"] == NODE

            second = await extender.create(kube, native_pod("native-1"))
            kept_off = await extender.filter(second)
            assert kept_off["NodeNames"] == []
            assert "TensorFusion worker(s) hold GPUs on this node" in kept_off["FailedNodes"][NODE]
        finally:
            await hypervisor.stop()
