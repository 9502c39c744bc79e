"""The kubelet pod-resources client against FakeKubelet (a real gRPC server on a unix socket)."""

from __future__ import annotations

import socket
from pathlib import Path

import grpc  # type: ignore[import-untyped]
import pytest

from daemons.hypervisor.kubelet import KubeletUnavailable, PodResourcesClient, assignments_of, messages
from tests.daemons.hypervisor.fake_kubelet import FakeKubelet
from tfcore.hypervisor.deviceplugin import DeviceAssignment

UUID0 = "GPU-5153494d-0000-4000-8000-000000000000"


@pytest.fixture
def sock(tmp_path: Path) -> Path:
    return tmp_path / "kubelet.sock"


async def test_lists_every_containers_devices(sock: Path) -> None:
    async with FakeKubelet(sock) as kubelet:
        kubelet.assign("ml", "native-0", [UUID0, "1::3"])
        kubelet.assign("ml", "native-0", ["nic-7"], resource="example.com/nic", container="sidecar")
        kubelet.assign("ml", "no-devices", [])
        found = await PodResourcesClient(sock, timeout=2).list_assignments()
    assert sorted(found, key=lambda a: a.container) == [
        DeviceAssignment(
            namespace="ml", pod="native-0", container="main", resource="nvidia.com/gpu", device_ids=(UUID0, "1::3")
        ),
        DeviceAssignment(
            namespace="ml", pod="native-0", container="sidecar", resource="example.com/nic", device_ids=("nic-7",)
        ),
    ]
    assert kubelet.calls == 1


async def test_an_empty_node_lists_nothing(sock: Path) -> None:
    async with FakeKubelet(sock):
        assert await PodResourcesClient(sock, timeout=2).list_assignments() == []


async def test_a_missing_socket_says_so(sock: Path) -> None:
    with pytest.raises(KubeletUnavailable, match="no such socket"):
        await PodResourcesClient(sock, timeout=2).list_assignments()


async def test_a_stale_socket_nobody_listens_on_is_unavailable(sock: Path) -> None:
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(str(sock))  # bound, never listening: connect is refused
        with pytest.raises(KubeletUnavailable, match="UNAVAILABLE"):
            await PodResourcesClient(sock, timeout=2).list_assignments()


async def test_a_server_error_is_unavailable_with_its_code(sock: Path) -> None:
    async with FakeKubelet(sock) as kubelet:
        kubelet.fail = grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(KubeletUnavailable, match="PERMISSION_DENIED: fake kubelet told to fail"):
            await PodResourcesClient(sock, timeout=2).list_assignments()


async def test_a_stalled_kubelet_times_out(sock: Path) -> None:
    async with FakeKubelet(sock) as kubelet:
        kubelet.stall = 5.0
        with pytest.raises(KubeletUnavailable, match=r"no answer within 0\.2 s"):
            await PodResourcesClient(sock, timeout=0.2).list_assignments()


def test_unknown_fields_from_newer_kubelets_are_skipped() -> None:
    """A newer kubelet sends fields we do not declare (cpu_ids, memory, dynamic resources)."""
    wire = messages()
    devices = wire.ContainerDevices(resource_name="nvidia.com/gpu", device_ids=[UUID0]).SerializeToString()
    cpu_ids = bytes([0x1A, 0x02, 0x01, 0x02])  # field 3, packed varints: ContainerResources.cpu_ids
    container = bytes([0x0A, 0x01]) + b"c" + bytes([0x12, len(devices)]) + devices + cpu_ids
    pod = wire.PodResources(name="p", namespace="ns").SerializeToString() + bytes([0x1A, len(container)]) + container
    response = wire.ListPodResourcesResponse.FromString(bytes([0x0A, len(pod)]) + pod)
    assert assignments_of(response) == [
        DeviceAssignment(namespace="ns", pod="p", container="c", resource="nvidia.com/gpu", device_ids=(UUID0,))
    ]
