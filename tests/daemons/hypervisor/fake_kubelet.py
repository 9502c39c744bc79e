"""FakeKubelet: a stand-in for the kubelet's pod-resources v1 gRPC server (a test double).

A real grpc.aio server on a unix socket that implements `v1.PodResourcesLister/List` with the
same run-time built messages the hypervisor's client uses; tests set which devices each pod
holds, make it fail or stall, and count the calls.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc  # type: ignore[import-untyped]

from daemons.hypervisor.kubelet import SERVICE, messages


class FakeKubelet:
    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path
        # (namespace, pod) -> [(container, resource, device ids)]
        self.pods: dict[tuple[str, str], list[tuple[str, str, list[str]]]] = {}
        self.calls = 0
        self.fail: grpc.StatusCode | None = None
        self.stall = 0.0
        self._server: grpc.aio.Server | None = None

    def assign(
        self, namespace: str, pod: str, device_ids: list[str], resource: str = "nvidia.com/gpu", container: str = "main"
    ) -> None:
        self.pods.setdefault((namespace, pod), []).append((container, resource, device_ids))

    def remove(self, namespace: str, pod: str) -> None:
        self.pods.pop((namespace, pod), None)

    async def _list(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        self.calls += 1
        if self.stall:
            await asyncio.sleep(self.stall)
        if self.fail is not None:
            await context.abort(self.fail, "fake kubelet told to fail")
        wire = messages()
        pods = []
        for (namespace, name), containers in sorted(self.pods.items()):
            by_container: dict[str, list[Any]] = {}
            for container, resource, ids in containers:
                by_container.setdefault(container, []).append(
                    wire.ContainerDevices(resource_name=resource, device_ids=ids)
                )
            pods.append(
                wire.PodResources(
                    name=name,
                    namespace=namespace,
                    containers=[wire.ContainerResources(name=c, devices=d) for c, d in by_container.items()],
                )
            )
        return wire.ListPodResourcesResponse(pod_resources=pods)

    async def start(self) -> FakeKubelet:
        wire = messages()
        handler = grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "List": grpc.unary_unary_rpc_method_handler(
                    self._list,
                    request_deserializer=wire.ListPodResourcesRequest.FromString,
                    response_serializer=wire.ListPodResourcesResponse.SerializeToString,
                )
            },
        )
        self._server = grpc.aio.server()
        self._server.add_generic_rpc_handlers((handler,))
        self._server.add_insecure_port(f"unix://{self.socket_path}")
        await self._server.start()
        return self

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(0)
            self._server = None

    async def __aenter__(self) -> FakeKubelet:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
