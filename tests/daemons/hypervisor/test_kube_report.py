"""`tensor-fusion hypervisor` reporting to Kubernetes: the real process on the simulated GPU (two
of them), the API emulator, and FakeKubelet serving the pod-resources API on a unix socket.

GPU objects appear with usedBy tensor-fusion; the NVIDIA device plugin taking a GPU flips it
(with an Event) and TensorFusion refuses it; a restarted hypervisor learns the same from the
kubelet; an unreadable kubelet withholds the GPUs; without progressive mode it is never asked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes_asyncio import client

from tests.daemons.hypervisor.fake_kubelet import FakeKubelet
from tests.daemons.hypervisor.process import NODE, PATIENCE, UUID0, UUID1, Hypervisor
from tests.kubeapi.emulator import KubeEmulator
from tests.kubeapi.objects import eventually as _eventually
from tfcore.model.codec import decode
from tfcore.model.node import GPU
from tfcore.sched.state import gpu_from_model

LOST_UUID = "GPU-99999999-0000-4000-8000-000000000009"
GROUP, VERSION = "tensor-fusion.ai", "v1"
T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], timeout: float = PATIENCE) -> T:
    return await _eventually(probe, done, timeout=timeout)


async def _gpus(kube: KubeEmulator) -> dict[str, dict[str, Any]]:
    listed = await client.CustomObjectsApi(kube.api_client()).list_cluster_custom_object(GROUP, VERSION, "gpus")
    return {g["status"]["uuid"]: g for g in listed["items"] if g.get("status", {}).get("uuid")}


def _used_by(expected: dict[str, str]) -> Any:
    def done(gpus: dict[str, dict[str, Any]]) -> bool:
        return all(uuid in gpus and gpus[uuid]["status"].get("usedBy") == who for uuid, who in expected.items())

    return done


async def _reasons(kube: KubeEmulator) -> list[str]:
    events = await client.CoreV1Api(kube.api_client()).list_namespaced_event("default")
    return [e.reason for e in events.items if e.involved_object.kind == "GPU"]


async def _first_report(kube: KubeEmulator) -> None:
    """Both GPUs are TensorFusion's and schedulable; the GPUNode has nodeInfo and a heartbeat."""
    gpus = await eventually(lambda: _gpus(kube), _used_by({UUID0: "tensor-fusion", UUID1: "tensor-fusion"}))
    for uuid, gpu in gpus.items():
        assert gpu["metadata"]["name"] == uuid.lower()
        assert gpu["metadata"]["labels"]["kubernetes.io/hostname"] == NODE
        assert gpu["status"]["phase"] == "Running"
        assert gpu["status"]["capacity"] == {"tflops": "989400m", "vram": "80Gi"}
        assert gpu_from_model(decode(gpu, GPU)).schedulable  # the scheduler's reading of it
    gpunode = await eventually(
        lambda: client.CustomObjectsApi(kube.api_client()).get_cluster_custom_object(GROUP, VERSION, "gpunodes", NODE),
        lambda g: "hypervisorStatus" in g.get("status", {}),
    )
    assert gpunode["status"]["hypervisorStatus"]["hypervisorState"] == "Running"
    assert gpunode["status"]["nodeInfo"]["gpuCount"] == 2
    assert gpunode["status"]["nodeInfo"]["ramSize"]


async def test_device_plugin_gpus_flip_are_refused_and_are_relearned_after_a_restart(
    kube: KubeEmulator, hypervisors: list[Hypervisor], tmp_path: Path
) -> None:
    custom = client.CustomObjectsApi(kube.api_client())
    await custom.create_cluster_custom_object(
        GROUP, VERSION, "gpunodes", {"apiVersion": f"{GROUP}/{VERSION}", "kind": "GPUNode", "metadata": {"name": NODE}}
    )
    sock = tmp_path / "kubelet.sock"
    options = ("--nvidia-progressive-migration", "--kubelet-pod-resources-socket", str(sock))
    async with FakeKubelet(sock) as kubelet:
        first = Hypervisor(tmp_path, kube, *options)
        hypervisors.append(first)
        await first.start()
        await _first_report(kube)

        kubelet.assign("ml", "native-0", [f"{UUID1}::0"])  # a time-sliced replica of GPU 1
        gpus = await eventually(lambda: _gpus(kube), _used_by({UUID1: "nvidia-device-plugin"}))
        assert "ml/native-0" in gpus[UUID1]["status"]["message"]
        assert gpus[UUID1]["status"]["available"] == {"tflops": "0", "vram": "0"}
        assert not gpu_from_model(decode(gpus[UUID1], GPU)).schedulable
        assert gpus[UUID0]["status"]["usedBy"] == "tensor-fusion"
        assert "DevicePluginAllocated" in await eventually(
            lambda: _reasons(kube), lambda r: "DevicePluginAllocated" in r
        )

        status, answer = await first.create_worker(name="pinned", vram="1Gi", gpus=[UUID1])
        assert status == 409
        assert "NVIDIA device plugin" in answer["error"]
        assert "ml/native-0" in answer["error"]
        status, answer = await first.create_worker(name="both", vram="1Gi", gpu_count=2)
        assert status == 409
        assert "ml/native-0" in answer["error"]
        status, answer = await first.create_worker(name="kept", vram="8Gi", tflops_request="100")
        assert status == 201, answer
        assert [g["uuid"] for g in answer["gpus"]] == [UUID0]  # placement skipped GPU 1
        gpus = await eventually(
            lambda: _gpus(kube), lambda g: g[UUID0]["status"]["available"] == {"tflops": "889400m", "vram": "72Gi"}
        )

        kubelet.remove("ml", "native-0")
        await eventually(lambda: _gpus(kube), _used_by({UUID1: "tensor-fusion"}))
        await eventually(lambda: _reasons(kube), lambda r: "DevicePluginReleased" in r)
        await first.stop()

        # While the hypervisor is down the device plugin hands GPU 1 out again: the next one
        # must learn it from the kubelet (the GPU object still says tensor-fusion).
        kubelet.assign("ml", "native-0", [UUID1])
        second = Hypervisor(tmp_path, kube, *options)
        hypervisors.append(second)
        await second.start()
        status, answer = await second.create_worker(name="pinned", vram="1Gi", gpus=[UUID1])
        assert status == 409, answer  # refused from the first moment (unlisted or held)
        gpus = await eventually(lambda: _gpus(kube), _used_by({UUID1: "nvidia-device-plugin"}))
        status, answer = await second.create_worker(name="pinned", vram="1Gi", gpus=[UUID1])
        assert status == 409
        assert "ml/native-0" in answer["error"]
        assert gpus[UUID0]["status"]["available"] == {"tflops": "889400m", "vram": "72Gi"}  # "kept" re-adopted
        await eventually(lambda: _reasons(kube), lambda r: r.count("DevicePluginAllocated") == 2)
        assert kubelet.calls > 0


async def test_an_unreadable_kubelet_withholds_the_gpus_until_it_answers(
    kube: KubeEmulator, hypervisors: list[Hypervisor], tmp_path: Path
) -> None:
    sock = tmp_path / "kubelet.sock"
    hypervisor = Hypervisor(
        tmp_path, kube, "--nvidia-progressive-migration", "--kubelet-pod-resources-socket", str(sock)
    )
    hypervisors.append(hypervisor)
    await hypervisor.start()
    gpus = await eventually(
        lambda: _gpus(kube),
        lambda g: len(g) == 2 and all(x["status"]["phase"] == "Unknown" for x in g.values()),
    )
    for gpu in gpus.values():
        assert "kubelet pod-resources API cannot be read" in gpu["status"]["message"]
        assert "no such socket" in gpu["status"]["message"]
        assert not gpu_from_model(decode(gpu, GPU)).schedulable
    status, answer = await hypervisor.create_worker(name="w", vram="1Gi")
    assert status == 409
    assert "cannot be read" in answer["error"]
    async with FakeKubelet(sock):
        await eventually(lambda: _gpus(kube), lambda g: all(x["status"]["phase"] == "Running" for x in g.values()))
        status, answer = await hypervisor.create_worker(name="w", vram="1Gi")
        assert status == 201, answer


async def test_without_progressive_mode_the_kubelet_is_never_asked_and_lost_gpus_are_marked(
    kube: KubeEmulator, hypervisors: list[Hypervisor], tmp_path: Path
) -> None:
    lost = LOST_UUID.lower()
    custom = client.CustomObjectsApi(kube.api_client())
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "GPU",
        "metadata": {"name": lost, "labels": {"kubernetes.io/hostname": NODE}},
    }
    await custom.create_cluster_custom_object(GROUP, VERSION, "gpus", body)
    await custom.patch_cluster_custom_object_status(
        GROUP,
        VERSION,
        "gpus",
        lost,
        {"status": {"phase": "Running", "uuid": LOST_UUID}},
        _content_type="application/merge-patch+json",  # type: ignore[call-arg]
    )
    sock = tmp_path / "kubelet.sock"
    async with FakeKubelet(sock) as kubelet:
        kubelet.assign("ml", "native-0", [UUID1])
        hypervisor = Hypervisor(tmp_path, kube, "--kubelet-pod-resources-socket", str(sock))
        hypervisors.append(hypervisor)
        await hypervisor.start()
        gpus = await eventually(
            lambda: _gpus(kube),
            lambda g: (
                _used_by({UUID0: "tensor-fusion", UUID1: "tensor-fusion"})(g)
                and g[LOST_UUID]["status"]["phase"] == "Unknown"
            ),
            timeout=15,
        )
        assert "no longer sees" in gpus[LOST_UUID]["status"]["message"]
        await eventually(lambda: _reasons(kube), lambda r: "GPUGone" in r)  # written after the status
        await asyncio.sleep(0.5)  # a few more reports
        assert kubelet.calls == 0
    assert "no GPUNode node-a yet" in hypervisor.log.read_text()


async def test_a_disk_tier_below_the_free_space_guidance_is_a_condition_and_an_event(
    kube: KubeEmulator, hypervisors: list[Hypervisor], tmp_path: Path
) -> None:
    custom = client.CustomObjectsApi(kube.api_client())
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "GPUNode", "metadata": {"name": NODE}}
    await custom.create_cluster_custom_object(GROUP, VERSION, "gpunodes", body)
    tier_dir = tmp_path / "tier"
    tier_dir.mkdir()
    flags = ("--vram-expand-to-host-mem", "40", "--vram-expand-to-host-disk", "20", "--tier-dir", str(tier_dir))
    hypervisor = Hypervisor(tmp_path, kube, *flags, "--tier-min-free-disk", "1P")  # more than any disk has
    hypervisors.append(hypervisor)
    await hypervisor.start()
    gpunode = await eventually(
        lambda: custom.get_cluster_custom_object(GROUP, VERSION, "gpunodes", NODE),
        lambda g: bool(g.get("status", {}).get("conditions")),
    )
    (condition,) = gpunode["status"]["conditions"]
    assert (condition["type"], condition["status"], condition["reason"]) == (
        "DiskTierAvailable",
        "False",
        "FreeDiskBelowGuidance",
    )
    assert "no disk tier is sold" in condition["message"]
    assert gpunode["status"]["nodeInfo"]["dataDiskSize"] == "0"  # the scheduler sells no disk tier here
    events = await eventually(
        lambda: client.CoreV1Api(kube.api_client()).list_namespaced_event("default"),
        lambda e: any(x.involved_object.kind == "GPUNode" for x in e.items),
    )
    (event,) = [e for e in events.items if e.involved_object.kind == "GPUNode"]
    assert (event.type, event.reason) == ("Warning", "FreeDiskBelowGuidance")


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["--report-interval", "0"], "--report-interval"),
        (["--report-interval", "nan"], "--report-interval"),
        (["--kubeconfig", "/k"], "--node-name"),
        (["--node-name", " "], "--node-name"),
        (["--node-name", "n", "--device-plugin-resource", "gpu"], "--device-plugin-resource"),
    ],
)
def test_bad_kubernetes_flags_name_the_flag(argv: list[str], field: str) -> None:
    import argparse

    from daemons.hypervisor.options import add_node_arguments
    from daemons.hypervisor.options import check_kube_arguments as _check_kube_arguments
    from tfcore.model.errors import ValidationError

    parser = argparse.ArgumentParser()
    add_node_arguments(parser, environ={})
    with pytest.raises(ValidationError) as caught:
        _check_kube_arguments(parser.parse_args(argv))
    assert caught.value.problems[0].field == field


def test_kubernetes_flags_default_from_the_charts_environment() -> None:
    import argparse

    from daemons.hypervisor.options import add_node_arguments, node_argv

    parser = argparse.ArgumentParser()
    add_node_arguments(parser, environ={"NODE_NAME": "gpu-7", "TF_NVIDIA_OPERATOR_PROGRESSIVE_MIGRATION": "true"})
    args = parser.parse_args([])
    assert (args.node_name, args.nvidia_progressive_migration, args.report_interval) == ("gpu-7", True, 10.0)
    assert str(args.kubelet_pod_resources_socket) == "/var/lib/kubelet/pod-resources/kubelet.sock"
    plain = argparse.ArgumentParser()
    add_node_arguments(plain, environ={"TF_NVIDIA_OPERATOR_PROGRESSIVE_MIGRATION": "false"})
    given = plain.parse_args(["--kubeconfig", "/k", "--node-name", "n", "--device-plugin-resource", "nvidia.com/gpu"])
    assert (given.node_name, given.nvidia_progressive_migration) == ("n", False)
    assert plain.parse_args(node_argv(given)) == given
