"""The NVIDIA device plugin's allocations mapped to this node's GPUs, and the GPU status built from them."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tfcore.hypervisor.deviceplugin import (
    DeviceAssignment,
    DeviceRef,
    check_resource_name,
    map_assignments,
    parse_device_id,
)
from tfcore.hypervisor.report import (
    DevicePluginView,
    GPUFacts,
    TensorFusionUse,
    desired_gpu,
    offer,
    status_patch,
    transition,
    vanished_status,
)
from tfcore.model.codec import decode
from tfcore.model.errors import ValidationError
from tfcore.model.node import GPU
from tfcore.sched.state import gpu_from_model

UUID0 = "GPU-5153494d-0000-4000-8000-000000000000"
UUID1 = "GPU-5153494d-0000-4000-8000-000000000001"
GPUS = {UUID0: 0, UUID1: 1}
H100 = GPUFacts(UUID1, 1, "NVIDIA H100 80GB HBM3", 80 << 30, 989_400)


def held(pod: str, *ids: str, resource: str = "nvidia.com/gpu", namespace: str = "ml") -> DeviceAssignment:
    return DeviceAssignment(namespace=namespace, pod=pod, container="main", resource=resource, device_ids=ids)


# ---- device IDs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("device_id", "ref"),
    [
        (UUID0, DeviceRef("uuid", UUID0)),
        (f"{UUID0}::3", DeviceRef("uuid", UUID0, 3)),
        ("0", DeviceRef("index", "0")),
        ("07::1", DeviceRef("index", "7", 1)),
        ("MIG-5153494d-0000-4000-8000-000000000000", DeviceRef("mig", "MIG-5153494d-0000-4000-8000-000000000000")),
        ("0:1", DeviceRef("mig", "0:1")),
    ],
)
def test_device_id_forms(device_id: str, ref: DeviceRef) -> None:
    assert parse_device_id(device_id) == ref


@pytest.mark.parametrize("device_id", ["", "GPU-", "GPU-xyz", "gpu0", "-1", "0::", "0::x", f"{UUID0}::1::2", " 0"])
def test_bad_device_ids_name_the_field_and_the_forms(device_id: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_device_id(device_id)
    (problem,) = caught.value.problems
    assert problem.field == "deviceID"
    assert problem.expected is not None


@given(st.text(alphabet=string.printable + "é∷", max_size=60))
def test_device_id_parser_only_raises_validation_errors(text: str) -> None:
    try:
        ref = parse_device_id(text)
    except ValidationError:
        return
    assert ref.kind in {"uuid", "index", "mig"}
    assert ref.value
    assert ref.value in text


@given(st.sampled_from([UUID0, UUID1, "0", "1", "12"]), st.none() | st.integers(0, 9999))
def test_device_ids_round_trip(base: str, replica: int | None) -> None:
    text = base if replica is None else f"{base}::{replica}"
    ref = parse_device_id(text)
    assert (ref.value, ref.replica) == (base, replica)


def test_resource_names() -> None:
    assert check_resource_name("nvidia.com/gpu") == "nvidia.com/gpu"
    assert check_resource_name("nvidia.com/gpu.shared") == "nvidia.com/gpu.shared"
    for bad in ("gpu", "nvidia.com/", "Nvidia.com/gpu", "nvidia.com/gpu/x", ""):
        with pytest.raises(ValidationError, match="--device-plugin-resource"):
            check_resource_name(bad)


# ---- mapping ------------------------------------------------------------------------------


def test_uuids_replicas_and_indices_map_to_gpus() -> None:
    holdings = map_assignments(
        [held("b", f"{UUID1}::0"), held("a", f"GPU-{UUID1[4:].upper()}::1"), held("c", "0"), held("a", "1::2")], GPUS
    )
    assert holdings.holders == {UUID0: ("ml/c",), UUID1: ("ml/a", "ml/b")}
    assert holdings.unknown == ()


def test_other_resources_are_ignored_unless_asked_for() -> None:
    assignments = [
        held("nic", "0", resource="example.com/nic"),
        held("shared", UUID0, resource="nvidia.com/gpu.shared"),
    ]
    assert map_assignments(assignments, GPUS).holders == {}
    both = map_assignments(assignments, GPUS, resources=frozenset({"nvidia.com/gpu", "nvidia.com/gpu.shared"}))
    assert both.holders == {UUID0: ("ml/shared",)}


def test_unknown_ids_are_reported_not_dropped() -> None:
    other = "GPU-99999999-0000-4000-8000-000000000000"
    holdings = map_assignments(
        [held("p", other, "5", "MIG-abc", "garbage", UUID0), held("q", "0:0", resource="nvidia.com/gpu")], GPUS
    )
    assert holdings.holders == {UUID0: ("ml/p",)}
    reasons = {u.device_id: u.reason for u in holdings.unknown}
    assert set(reasons) == {other, "5", "MIG-abc", "garbage", "0:0"}
    assert "no GPU of this node has UUID" in reasons[other]
    assert "index 5" in reasons["5"]
    assert "MIG" in reasons["MIG-abc"]
    assert "MIG" in reasons["0:0"]
    assert "not a GPU device ID" in reasons["garbage"]
    assert {u.holder for u in holdings.unknown} == {"ml/p", "ml/q"}


@given(st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from([UUID0, UUID1, "0", "1", "9", "x"])), max_size=12))
def test_every_watched_id_is_either_mapped_or_reported(pairs: list[tuple[str, str]]) -> None:
    holdings = map_assignments([held(pod, device) for pod, device in pairs], GPUS)
    mapped = {(holder, uuid) for uuid, holders in holdings.holders.items() for holder in holders}
    for pod, device in pairs:
        uuid = {UUID0: UUID0, UUID1: UUID1, "0": UUID0, "1": UUID1}.get(device)
        if uuid is None:
            assert any(u.device_id == device and u.holder == f"ml/{pod}" for u in holdings.unknown)
        else:
            assert (f"ml/{pod}", uuid) in mapped


# ---- the GPU object -----------------------------------------------------------------------


def _schedulable(body: dict[str, object]) -> bool:
    return gpu_from_model(decode(body, GPU)).schedulable


def test_a_free_gpu_is_tensor_fusions_with_its_full_capacity() -> None:
    body = desired_gpu(H100, "node-a", TensorFusionUse(), DevicePluginView(), progressive=True)
    assert body["metadata"] == {"name": UUID1.lower(), "labels": {"kubernetes.io/hostname": "node-a"}}
    status = body["status"]
    assert status["usedBy"] == "tensor-fusion"
    assert status["phase"] == "Running"
    assert status["capacity"] == {"tflops": "989400m", "vram": "80Gi"}
    assert status["available"] == status["capacity"]
    assert status["nodeSelector"] == {"kubernetes.io/hostname": "node-a"}
    assert (status["uuid"], status["index"], status["vendor"]) == (UUID1, 1, "NVIDIA")
    spec = gpu_from_model(decode(body, GPU))
    assert (spec.node, spec.tflops_milli, spec.vram_bytes, spec.schedulable) == ("node-a", 989_400, 80 << 30, True)


def test_available_is_capacity_minus_tensor_fusion_requests_never_negative() -> None:
    use = TensorFusionUse(400_000, 30 << 30, ("w1", "w2"))
    status = desired_gpu(H100, "n", use, DevicePluginView(), progressive=False)["status"]
    assert status["available"] == {"tflops": "589400m", "vram": "50Gi"}
    assert [a["name"] for a in status["runningApps"]] == ["w1", "w2"]
    oversold = desired_gpu(
        H100, "n", TensorFusionUse(2_000_000, 90 << 30, ("w",)), DevicePluginView(), progressive=False
    )
    assert oversold["status"]["available"] == {"tflops": "0", "vram": "0"}


def test_a_gpu_the_device_plugin_holds_is_not_schedulable_and_names_the_pods() -> None:
    view = DevicePluginView(("ml/native-0", "ml/native-1"))
    body = desired_gpu(H100, "n", TensorFusionUse(), view, progressive=True)
    status = body["status"]
    assert status["usedBy"] == "nvidia-device-plugin"
    assert status["available"] == {"tflops": "0", "vram": "0"}
    assert "ml/native-0, ml/native-1" in status["message"]
    assert [(a["namespace"], a["name"], a["pods"][0]["isExternal"]) for a in status["runningApps"]] == [
        ("ml", "native-0", True),
        ("ml", "native-1", True),
    ]
    assert not _schedulable(body)


def test_a_conflict_with_tensor_fusion_workers_is_flagged() -> None:
    verdict = offer(TensorFusionUse(1000, 1 << 30, ("w",)), DevicePluginView(("ml/native-0",)), progressive=True)
    assert (verdict.used_by, verdict.offered) == ("nvidia-device-plugin", False)
    assert "CONFLICT" in verdict.message
    assert "w" in verdict.message


def test_an_unreadable_kubelet_withholds_gpus_tensor_fusion_does_not_use() -> None:
    error = DevicePluginView(error="kubelet pod-resources API at /x: no such socket")
    body = desired_gpu(H100, "n", TensorFusionUse(), error, progressive=True)
    assert body["status"]["phase"] == "Unknown"
    assert "cannot be read" in body["status"]["message"]
    assert "no such socket" in body["status"]["message"]
    assert not _schedulable(body)
    used = desired_gpu(H100, "n", TensorFusionUse(1000, 1 << 30, ("w",)), error, progressive=True)
    assert used["status"]["phase"] == "Running"
    assert used["status"]["usedBy"] == "tensor-fusion"
    assert "no such socket" in used["status"]["message"]
    assert _schedulable(used)
    last_known = desired_gpu(H100, "n", TensorFusionUse(), DevicePluginView(("ml/p",), "down"), progressive=True)
    assert last_known["status"]["usedBy"] == "nvidia-device-plugin"


def test_outside_progressive_mode_the_device_plugin_is_not_consulted() -> None:
    body = desired_gpu(H100, "n", TensorFusionUse(), DevicePluginView(("ml/p",), "down"), progressive=False)
    assert (body["status"]["usedBy"], body["status"]["phase"]) == ("tensor-fusion", "Running")
    assert _schedulable(body)


def test_status_patch_sends_only_changes_and_nulls_dropped_keys() -> None:
    desired = desired_gpu(H100, "n", TensorFusionUse(), DevicePluginView(), progressive=True)["status"]
    assert status_patch(desired, desired) == {}
    assert status_patch(None, desired) == desired
    before = {**desired, "runningApps": [{"name": "gone"}], "available": {"tflops": "1", "vram": "1"}}
    assert status_patch(before, desired) == {"runningApps": None, "available": desired["available"]}


def test_vanished_gpus_become_unknown_once() -> None:
    patch = vanished_status({"phase": "Running"}, "n")
    assert patch["phase"] == "Unknown"
    assert "no longer sees" in patch["message"]
    assert vanished_status({**patch}, "n") == {}


def test_transitions() -> None:
    assert transition("tensor-fusion", "nvidia-device-plugin") == "taken"
    assert transition(None, "nvidia-device-plugin") == "taken"
    assert transition("nvidia-device-plugin", "tensor-fusion") == "released"
    assert transition("tensor-fusion", "tensor-fusion") is None
    assert transition(None, "tensor-fusion") is None
