"""NVIDIA GPU Operator coexistence (--nvidia-progressive-migration): native nvidia.com/gpu pods
and TensorFusion workers never end up on the same GPU, through the extender verbs."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from daemons.scheduler.http import extender_app
from daemons.scheduler.memory import MemoryCluster
from daemons.scheduler.mirror import ClusterMirror
from daemons.scheduler.service import SchedulerService
from tests.daemons.scheduler.cluster import binding_args, extender_args, fleet, gpu, gpu_pod
from tfcore.sched import Allocator

Client = TestClient[web.Request, web.Application]
NODES = ["node-0", "node-1", "node-2"]


class Coexisting:
    def __init__(self, objects: list[dict[str, Any]] | None = None) -> None:
        self.service = SchedulerService(Allocator(), native_gpu_pods=True)
        self.cluster = MemoryCluster(objects if objects is not None else fleet(3, 2))
        self.cluster.attach(ClusterMirror(self.service))


@pytest_asyncio.fixture
async def setup() -> Coexisting:
    return Coexisting()


@pytest_asyncio.fixture
async def extender(setup: Coexisting) -> AsyncIterator[Client]:
    async with TestClient(TestServer(extender_app(setup.service, setup.cluster))) as client:
        yield client


def native_pod(name: str, gpus: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
        "spec": {
            "schedulerName": "tensor-fusion-scheduler",
            "containers": [{"name": "c", "image": "cuda", "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}],
        },
    }


def device_plugin_took(setup: Coexisting, node: str, index: int) -> None:
    """What the node's hypervisor reports once the kubelet says the device plugin gave a GPU away."""
    taken = gpu(node, index)
    taken["status"]["usedBy"] = "nvidia-device-plugin"
    setup.cluster.apply(taken)


async def filter_names(extender: Client, pod: dict[str, Any]) -> dict[str, Any]:
    reply: dict[str, Any] = await (await extender.post("/filter", json=extender_args(pod, NODES))).json()
    return reply


async def bind(extender: Client, pod: dict[str, Any], node: str) -> dict[str, Any]:
    reply: dict[str, Any] = await (await extender.post("/bind", json=binding_args(pod, node))).json()
    return reply


async def test_native_gpu_pods_avoid_nodes_with_tensor_fusion_workers(extender: Client, setup: Coexisting) -> None:
    worker = gpu_pod("tf", uid="uid-tf", tflops="10", vram="1Gi")
    setup.cluster.apply(worker)
    assert await bind(extender, worker, "node-0") == {}
    native = native_pod("native")
    setup.cluster.apply(native)
    reply = await filter_names(extender, native)
    assert reply["NodeNames"] == ["node-1", "node-2"]
    assert "TensorFusion worker(s) hold GPUs on this node" in reply["FailedNodes"]["node-0"]
    assert await bind(extender, native, "node-1") == {}
    assert setup.service.allocator.native_pods == {"uid-native": ("node-1", 1)}


async def test_tensor_fusion_waits_until_the_device_plugins_choice_is_reported(
    extender: Client, setup: Coexisting
) -> None:
    native = native_pod("native")
    setup.cluster.apply(native)
    assert await bind(extender, native, "node-1") == {}
    worker = gpu_pod("tf", uid="uid-tf", tflops="10", vram="1Gi")
    setup.cluster.apply(worker)
    reply = await filter_names(extender, worker)
    assert reply["NodeNames"] == ["node-0", "node-2"]
    assert "hypervisor has not yet reported which" in reply["FailedNodes"]["node-1"]
    refused = await bind(extender, worker, "node-1")
    assert "hypervisor has not yet reported which" in refused["Error"]
    device_plugin_took(setup, "node-1", 0)
    assert (await filter_names(extender, worker))["NodeNames"] == NODES
    assert await bind(extender, worker, "node-1") == {}
    stored = setup.cluster.pod("default", "tf")
    assert stored is not None
    assert stored["metadata"]["annotations"]["tensor-fusion.ai/gpu-ids"] == "node-1-gpu-1"  # never the native one


async def test_a_native_bind_loses_to_a_worker_placed_since_filter(extender: Client, setup: Coexisting) -> None:
    native = native_pod("native")
    setup.cluster.apply(native)
    assert (await filter_names(extender, native))["NodeNames"] == NODES
    worker = gpu_pod("tf", uid="uid-tf", tflops="10", vram="1Gi")
    setup.cluster.apply(worker)
    assert await bind(extender, worker, "node-2") == {}
    refused = await bind(extender, native, "node-2")
    assert "TensorFusion worker(s) hold GPUs" in refused["Error"]
    assert setup.cluster.pod("default", "native")["spec"].get("nodeName") is None  # type: ignore[index]
    assert setup.service.allocator.native_pods == {}


async def test_finished_or_deleted_native_pods_free_the_node(extender: Client, setup: Coexisting) -> None:
    for name, node in (("done", "node-0"), ("gone", "node-1")):
        pod = native_pod(name)
        setup.cluster.apply(pod)
        assert await bind(extender, pod, node) == {}
    worker = gpu_pod("tf", uid="uid-tf", tflops="10", vram="1Gi")
    assert (await filter_names(extender, worker))["NodeNames"] == ["node-2"]
    done = copy.deepcopy(setup.cluster.pod("default", "done"))
    assert done is not None
    done["status"] = {"phase": "Succeeded"}
    setup.cluster.apply(done)
    setup.cluster.remove("Pod", "uid-gone")
    assert (await filter_names(extender, worker))["NodeNames"] == NODES
    assert setup.service.allocator.native_pods == {}


async def test_a_restarted_scheduler_rebuilds_the_native_ledger_from_the_cluster() -> None:
    objects = fleet(3, 2)
    native = native_pod("native", gpus=2)
    native["spec"]["nodeName"] = "node-2"
    native["spec"]["schedulerName"] = "default-scheduler"  # bound before the migration began: counts too
    taken = gpu("node-2", 0)
    taken["status"]["usedBy"] = "nvidia-device-plugin"
    objects = [o for o in objects if o["metadata"]["name"] != "node-2-gpu-0"] + [taken, native]
    restarted = Coexisting(objects)
    assert restarted.service.allocator.native_pods == {"uid-native": ("node-2", 2)}
    node = restarted.service.allocator.nodes["node-2"]
    assert (node.native_requested, node.native_unsettled) == (2, 1)  # one of its two GPUs not reported yet
    async with TestClient(TestServer(extender_app(restarted.service, restarted.cluster))) as client:
        reply = await filter_names(client, gpu_pod("tf", uid="uid-tf", tflops="10", vram="1Gi"))
        assert reply["NodeNames"] == ["node-0", "node-1"]


async def test_switched_off_native_pods_are_not_tracked() -> None:
    setup = Coexisting()
    setup.service.native_gpu_pods = False
    pod = native_pod("native")
    setup.cluster.apply(pod)
    async with TestClient(TestServer(extender_app(setup.service, setup.cluster))) as client:
        assert await bind(client, pod, "node-0") == {}
    assert setup.service.allocator.native_pods == {}
