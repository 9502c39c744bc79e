"""NVIDIA GPU Operator coexistence end to end: the Kubernetes API emulator, a real
`tensor-fusion hypervisor --simulate` (two GPUs) reading FakeKubelet's pod-resources API, and
the scheduler extender watching the emulator through kubernetes-asyncio.

A native nvidia.com/gpu pod is placed on the node; no TensorFusion worker goes there until the
hypervisor has reported which GPU the device plugin gave it; the worker then gets the other GPU,
and the next native pod is kept off the node.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemons.hypervisor.fake_kubelet import FakeKubelet
from tests.daemons.hypervisor.process import NODE, UUID0, UUID1, Hypervisor
from tests.daemons.scheduler.cluster import gpu_pod, pool
from tests.e2e.extender import Extender, eventually, running_extender
from tests.kubeapi.emulator import KubeEmulator
from tfcore.k8s import request_json

GROUP = "/apis/tensor-fusion.ai/v1"


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


@pytest.fixture
async def extender(kube: KubeEmulator) -> AsyncIterator[Extender]:
    async with running_extender(kube, native_gpu_pods=True) as running:
        yield running


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
            native = await extender.create(native_pod("native-0"))
            assert (await extender.filter(native))["NodeNames"] == [NODE]
            assert await extender.bind(native) == {}

            worker = await extender.create(gpu_pod("tf-0", tflops="100", vram="8Gi"))
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

            second = await extender.create(native_pod("native-1"))
            kept_off = await extender.filter(second)
            assert kept_off["NodeNames"] == []
            assert "TensorFusion worker(s) hold GPUs on this node" in kept_off["FailedNodes"][NODE]
        finally:
            await hypervisor.stop()
