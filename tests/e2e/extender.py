"""The scheduler extender for end-to-end tests: watching the API emulator through
kubernetes-asyncio (KubeCluster), called over HTTP as kube-scheduler calls it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from daemons.scheduler.http import extender_app
from daemons.scheduler.kube import KubeCluster
from daemons.scheduler.mirror import ClusterMirror
from daemons.scheduler.service import SchedulerService
from tests.daemons.hypervisor.process import NODE
from tests.daemons.scheduler.cluster import binding_args, extender_args
from tests.kubeapi.emulator import KubeEmulator
from tfcore.k8s import request_json
from tfcore.sched import Allocator

PATIENCE = 20.0  # seconds: hypervisors report every 0.2 s; CI has two shared cores


async def eventually(check: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PATIENCE
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.05)


class Extender:
    def __init__(self, kube: KubeEmulator, service: SchedulerService, client: TestClient[Any, Any]) -> None:
        self.kube = kube
        self.service = service
        self.client = client

    async def create(self, pod: dict[str, Any]) -> dict[str, Any]:
        """Create the pod in the emulator and wait until the scheduler's watch has it."""
        created: dict[str, Any] = await request_json(
            self.kube.api_client(), "POST", "/api/v1/namespaces/default/pods", body=pod
        )
        uid = created["metadata"]["uid"]
        await eventually(lambda: uid in self.service.pending, f"the scheduler sees pod {pod['metadata']['name']}")
        return created

    async def filter(self, pod: dict[str, Any], nodes: tuple[str, ...] = (NODE,)) -> dict[str, Any]:
        reply: dict[str, Any] = await (await self.client.post("/filter", json=extender_args(pod, list(nodes)))).json()
        return reply

    async def bind(self, pod: dict[str, Any], node: str = NODE) -> dict[str, Any]:
        reply: dict[str, Any] = await (await self.client.post("/bind", json=binding_args(pod, node))).json()
        return reply


@contextlib.asynccontextmanager
async def running_extender(kube: KubeEmulator, *, native_gpu_pods: bool = False) -> AsyncIterator[Extender]:
    service = SchedulerService(Allocator(), native_gpu_pods=native_gpu_pods)
    cluster = KubeCluster(kube.api_client(), ClusterMirror(service), watch_timeout=5)
    task = asyncio.create_task(cluster.run())
    try:
        async with TestClient(TestServer(extender_app(service, cluster))) as client:
            yield Extender(kube, service, client)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
