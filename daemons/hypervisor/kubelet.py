"""The kubelet's pod-resources API (v1): which devices each container was given.

gRPC over the kubelet's unix socket, service `v1.PodResourcesLister`, method `List`.  The
message classes are built at run time from a descriptor of the subset of
k8s.io/kubelet/pkg/apis/podresources/v1/api.proto we read (fields we do not declare are
skipped by the decoder), so no generated code ties us to one protobuf version.

The kubelet is the source of truth: nothing is cached here, so a restarted hypervisor learns
every allocation at its first listing.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import grpc  # type: ignore[import-untyped]
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory  # type: ignore[import-untyped]

from tfcore.hypervisor.deviceplugin import DeviceAssignment

DEFAULT_SOCKET: Final = Path("/var/lib/kubelet/pod-resources/kubelet.sock")
SERVICE: Final = "v1.PodResourcesLister"
LIST_METHOD: Final = f"/{SERVICE}/List"
MAX_MESSAGE_BYTES: Final = 16 * 1024 * 1024  # as the kubelet's own client allows
_PACKAGE: Final = "v1"


class KubeletUnavailable(Exception):
    """The pod-resources API could not be read: socket missing, refused, failed or too slow."""


@dataclass(frozen=True, slots=True)
class PodResourcesMessages:
    """The message classes of the pod-resources v1 API (built once per process)."""

    ListPodResourcesRequest: Any
    ListPodResourcesResponse: Any
    PodResources: Any
    ContainerResources: Any
    ContainerDevices: Any
    TopologyInfo: Any
    NUMANode: Any


def _field(message: Any, name: str, number: int, kind: int, *, repeated: bool = False, type_name: str = "") -> None:
    field = message.field.add()
    field.name = name
    field.json_name = name
    field.number = number
    field.type = kind
    field.label = (
        descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
        if repeated
        else descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
    )
    if type_name:
        field.type_name = f".{_PACKAGE}.{type_name}"


@functools.cache
def messages() -> PodResourcesMessages:
    """Builds the file descriptor in a private pool (no clash with anything else in the process)."""
    F = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name="tensor_fusion/kubelet_podresources_v1.proto", package=_PACKAGE)
    proto.syntax = "proto3"
    proto.message_type.add(name="ListPodResourcesRequest")
    response = proto.message_type.add(name="ListPodResourcesResponse")
    _field(response, "pod_resources", 1, F.TYPE_MESSAGE, repeated=True, type_name="PodResources")
    pod = proto.message_type.add(name="PodResources")
    _field(pod, "name", 1, F.TYPE_STRING)
    _field(pod, "namespace", 2, F.TYPE_STRING)
    _field(pod, "containers", 3, F.TYPE_MESSAGE, repeated=True, type_name="ContainerResources")
    container = proto.message_type.add(name="ContainerResources")
    _field(container, "name", 1, F.TYPE_STRING)
    _field(container, "devices", 2, F.TYPE_MESSAGE, repeated=True, type_name="ContainerDevices")
    devices = proto.message_type.add(name="ContainerDevices")
    _field(devices, "resource_name", 1, F.TYPE_STRING)
    _field(devices, "device_ids", 2, F.TYPE_STRING, repeated=True)
    _field(devices, "topology", 3, F.TYPE_MESSAGE, type_name="TopologyInfo")
    topology = proto.message_type.add(name="TopologyInfo")
    _field(topology, "nodes", 1, F.TYPE_MESSAGE, repeated=True, type_name="NUMANode")
    numa = proto.message_type.add(name="NUMANode")
    _field(numa, "ID", 1, F.TYPE_INT64)
    service = proto.service.add(name="PodResourcesLister")
    method = service.method.add(name="List")
    method.input_type = f".{_PACKAGE}.ListPodResourcesRequest"
    method.output_type = f".{_PACKAGE}.ListPodResourcesResponse"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    classes = {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))
        for name in PodResourcesMessages.__dataclass_fields__
    }
    return PodResourcesMessages(**classes)


def assignments_of(response: Any) -> list[DeviceAssignment]:
    """Every (pod, container, resource) with devices in a ListPodResourcesResponse."""
    found = []
    for pod in response.pod_resources:
        for container in pod.containers:
            for devices in container.devices:
                if devices.device_ids:
                    found.append(
                        DeviceAssignment(
                            namespace=pod.namespace,
                            pod=pod.name,
                            container=container.name,
                            resource=devices.resource_name,
                            device_ids=tuple(devices.device_ids),
                        )
                    )
    return found


class PodResourcesClient:
    """Lists device assignments through the kubelet's socket; every call bounded by `timeout`."""

    def __init__(self, socket_path: Path = DEFAULT_SOCKET, *, timeout: float = 5.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self.calls = 0

    async def list_assignments(self) -> list[DeviceAssignment]:
        """KubeletUnavailable says why when the socket is missing or the call fails or times out."""
        self.calls += 1
        where = f"kubelet pod-resources API at {self.socket_path}"
        if not os.path.exists(self.socket_path):  # noqa: ASYNC240 - one stat, cheaper and clearer than a failed connect
            raise KubeletUnavailable(f"{where}: no such socket (is /var/lib/kubelet/pod-resources mounted?)")
        wire = messages()
        target = f"unix://{self.socket_path.absolute()}"
        options = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES), ("grpc.enable_retries", 0)]
        try:
            async with grpc.aio.insecure_channel(target, options=options) as channel:
                call = channel.unary_unary(
                    LIST_METHOD,
                    request_serializer=wire.ListPodResourcesRequest.SerializeToString,
                    response_deserializer=wire.ListPodResourcesResponse.FromString,
                )
                response = await call(wire.ListPodResourcesRequest(), timeout=self.timeout)
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise KubeletUnavailable(f"{where}: no answer within {self.timeout:g} s") from None
            raise KubeletUnavailable(f"{where}: {code.name}: {exc.details() or 'no details'}") from None
        return assignments_of(response)
