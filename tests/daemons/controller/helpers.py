"""Running controller replicas against the API emulator, and writing what hypervisors write."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypedDict

import yaml
from kubernetes_asyncio import client

from daemons.controller.daemon import ControllerDaemon, Options
from tests.kubeapi.emulator import KubeEmulator
from tests.kubeapi.objects import eventually

SPEC = Path(__file__).parents[2] / "fixtures" / "spec"
GROUP, VERSION = "tensor-fusion.ai", "v1"
GPU_SELECTOR = {"nodeSelectorTerms": [{"matchExpressions": [{"key": "gpu", "operator": "In", "values": ["true"]}]}]}


# Short leases so hand-overs take about a second (production: 15 s / 10 s / 2 s).
class Leases(TypedDict):
    lease_duration: float
    renew_deadline: float
    retry_period: float


FAST: Leases = {"lease_duration": 1.0, "renew_deadline": 0.6, "retry_period": 0.1}


def spec_cluster(name: str = "cluster-conservative-oversubscription.yaml") -> dict[str, Any]:
    """The spec's TensorFusionCluster document, its pools selecting nodes labelled gpu=true."""
    cluster: dict[str, Any] = yaml.safe_load((SPEC / name).read_text(encoding="utf-8"))
    for pool in cluster["spec"]["gpuPools"]:
        template = pool.setdefault("specTemplate", {})
        template.setdefault("nodeManagerConfig", {})["nodeSelector"] = GPU_SELECTOR
    return cluster


class Replica:
    """One controller process: its own ApiClient, run as a task; stop() or crash() ends it."""

    def __init__(self, kube: KubeEmulator, name: str, *, leader_elect: bool = True) -> None:
        kube.api_client()  # the shared client is the first one made: not ours to close
        self.api = kube.new_api_client()
        options = Options(leader_elect=leader_elect, lease_namespace="default", identity=name, **FAST)
        self.daemon = ControllerDaemon(self.api, options, watch_timeout=30)
        self.task: asyncio.Task[None] | None = None

    def start(self) -> Replica:
        self.task = asyncio.create_task(self.daemon.run())
        return self

    def is_leader(self) -> bool:
        return self.daemon.is_leader()

    async def stop(self) -> None:
        """SIGTERM: leader work stops and the lease is released."""
        await self._cancel()

    async def crash(self) -> None:
        """SIGKILL: the process is gone without a word to the API server."""
        if self.daemon.elector is not None:
            self.daemon.elector.release_on_cancel = False
        await self._cancel()

    async def _cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None
        await self.api.close()


@contextlib.asynccontextmanager
async def replicas(kube: KubeEmulator, *names: str, leader_elect: bool = True) -> AsyncIterator[list[Replica]]:
    started = [Replica(kube, name, leader_elect=leader_elect).start() for name in names]
    try:
        yield started
    finally:
        for replica in started:
            await replica._cancel()


class Cluster:
    """Typed access to the emulator for the test's own reads and writes."""

    def __init__(self, kube: KubeEmulator) -> None:
        self.custom = client.CustomObjectsApi(kube.api_client())
        self.core = client.CoreV1Api(kube.api_client())
        self.coordination = client.CoordinationV1Api(kube.api_client())
        self.apps = client.AppsV1Api(kube.api_client())

    async def create(self, plural: str, body: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        if namespace:
            return await self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)  # type: ignore[no-any-return]
        return await self.custom.create_cluster_custom_object(GROUP, VERSION, plural, body)  # type: ignore[no-any-return]

    async def get(self, plural: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        try:
            if namespace:
                return await self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)  # type: ignore[no-any-return]
            return await self.custom.get_cluster_custom_object(GROUP, VERSION, plural, name)  # type: ignore[no-any-return]
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def list(self, plural: str) -> list[dict[str, Any]]:
        found = await self.custom.list_cluster_custom_object(GROUP, VERSION, plural)
        return list(found["items"])

    async def patch_status(self, plural: str, name: str, status: dict[str, Any]) -> None:
        await self.custom.patch_cluster_custom_object_status(
            GROUP,
            VERSION,
            plural,
            name,
            {"status": status},
            _content_type="application/merge-patch+json",  # type: ignore[call-arg]
        )

    async def node(self, name: str, labels: dict[str, str]) -> None:
        body = client.V1Node(metadata=client.V1ObjectMeta(name=name, labels=labels))
        await self.core.create_node(body)

    async def hypervisor_reports(
        self, node: str, gpus: int, *, tflops: str = "121", vram: str = "24Gi", ram: str = "128Gi", disk: str = "500Gi"
    ) -> None:
        """What a node's hypervisor writes: one GPU object per device, and the node's RAM and disk."""
        for index in range(gpus):
            name = f"{node}-gpu-{index}"
            await self.create("gpus", {"apiVersion": f"{GROUP}/{VERSION}", "kind": "GPU", "metadata": {"name": name}})
            status = {
                "phase": "Running",
                "uuid": f"GPU-{node}-{index}",
                "gpuModel": "NVIDIA L4",
                "vendor": "NVIDIA",
                "index": index,
                "capacity": {"tflops": tflops, "vram": vram},
                "available": {"tflops": tflops, "vram": vram},
                "usedBy": "tensor-fusion",
                "nodeSelector": {"kubernetes.io/hostname": node},
            }
            await self.patch_status("gpus", name, status)
        gpunode = await eventually(lambda: self.get("gpunodes", node), lambda n: n is not None, timeout=5)
        assert gpunode is not None
        await self.node_info(node, ram, disk)

    async def node_info(self, node: str, ram: str = "128Gi", disk: str = "500Gi") -> None:
        await self.patch_status(
            "gpunodes", node, {"nodeInfo": {"hostname": node, "ramSize": ram, "dataDiskSize": disk}}
        )

    async def hypervisor_reports_without_controller(self, node: str, gpus: int) -> None:
        """As hypervisor_reports, when no controller creates the GPUNode: the hypervisor does."""
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "GPUNode", "metadata": {"name": node}}
        await self.create("gpunodes", body)
        await self.hypervisor_reports(node, gpus)

    async def events(self, reason: str) -> builtins.list[Any]:
        found = await self.core.list_event_for_all_namespaces(field_selector=f"reason={reason}")
        return list(found.items)


async def wait_for(probe: Any, done: Any, timeout: float = 5.0) -> Any:
    return await eventually(probe, done, timeout=timeout)
