"""Which region a pod on this node should have, and what a listing or an event changes."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tfcore.hypervisor.podworkers import (
    Limits,
    NodeGPU,
    NoWorker,
    PodWorker,
    check_pod_worker_name,
    decide,
    plan,
    pod_worker_name,
    split_pod_worker_name,
)
from tfcore.hypervisor.workerspec import WorkerSpec
from tfcore.model.errors import ValidationError

NODE = "gpu-node-1"
UUID0 = "GPU-5153494d-0000-4000-8000-000000000000"
UUID1 = "GPU-5153494d-0000-4000-8000-000000000001"
GPUS = [NodeGPU(UUID0, 989.4, 80 << 30), NodeGPU(UUID1, 989.4, 80 << 30)]
GIB = 1 << 30


def tf_pod(
    annotations: dict[str, str] | None = None,
    *,
    name: str = "train-0",
    uid: str = "uid-1",
    node: str | None = NODE,
    phase: str = "Running",
    labels: dict[str, str] | None = None,
    containers: list[dict[str, Any]] | None = None,
    security: dict[str, Any] | None = None,
) -> dict[str, Any]:
    base = {
        "tensor-fusion.ai/tflops-request": "100",
        "tensor-fusion.ai/tflops-limit": "200",
        "tensor-fusion.ai/vram-request": "4Gi",
        "tensor-fusion.ai/vram-limit": "8Gi",
        "tensor-fusion.ai/gpu-ids": UUID0.lower(),
    }
    spec: dict[str, Any] = {"containers": containers or [{"name": "main", "image": "x"}]}
    if node is not None:
        spec["nodeName"] = node
    if security is not None:
        spec["securityContext"] = security
    return {
        "metadata": {
            "name": name,
            "namespace": "ml",
            "uid": uid,
            "labels": {"tensor-fusion.ai/enabled": "true"} if labels is None else labels,
            "annotations": base if annotations is None else annotations,
        },
        "spec": spec,
        "status": {"phase": phase},
    }


def test_a_bound_pod_gets_its_limits_on_the_named_gpu() -> None:
    decision = decide(tf_pod(), NODE, GPUS)
    assert decision == PodWorker(
        "ml",
        "train-0",
        "uid-1",
        WorkerSpec(
            "ml/train-0",
            vram_limit_bytes=8 * GIB,
            tflops_request_milli=100_000,
            tflops_limit_milli=200_000,
            vram_request_bytes=4 * GIB,
            gpus=(UUID0,),
            pod_uid="uid-1",
        ),
    )
    assert decision.name == "ml/train-0"


def test_gpu_ids_match_case_insensitively_and_keep_their_order() -> None:
    annotations = {"tensor-fusion.ai/vram-limit": "1Gi", "tensor-fusion.ai/gpu-ids": f"{UUID1.lower()},{UUID0.lower()}"}
    decision = decide(tf_pod(annotations), NODE, GPUS)
    assert isinstance(decision, PodWorker)
    assert decision.spec.gpus == (UUID1, UUID0)
    assert (decision.spec.vram_request_bytes, decision.spec.vram_limit_bytes) == (GIB, GIB)  # request = limit
    assert (decision.spec.tflops_request_milli, decision.spec.tflops_limit_milli) == (0, 0)  # best effort


def test_compute_percent_becomes_tflops_of_the_gpus_rating() -> None:
    annotations = {
        "tensor-fusion.ai/compute-percent-request": "10",
        "tensor-fusion.ai/compute-percent-limit": "12.5",
        "tensor-fusion.ai/vram-limit": "1Gi",
        "tensor-fusion.ai/gpu-ids": UUID0.lower(),
    }
    decision = decide(tf_pod(annotations), NODE, GPUS)
    assert isinstance(decision, PodWorker)
    assert (decision.spec.tflops_request_milli, decision.spec.tflops_limit_milli) == (98_940, 123_675)


def test_a_dedicated_gpu_without_vram_gets_the_whole_gpu() -> None:
    annotations = {"tensor-fusion.ai/dedicated-gpu": "true", "tensor-fusion.ai/gpu-ids": UUID0.lower()}
    decision = decide(tf_pod(annotations), NODE, GPUS)
    assert isinstance(decision, PodWorker)
    assert decision.spec.vram_limit_bytes == 80 << 30


@pytest.mark.parametrize(
    ("pod", "message"),
    [
        (tf_pod(labels={}), "not labelled"),
        (tf_pod(labels={"tensor-fusion.ai/enabled": "false"}), "not labelled"),
        (tf_pod(node=None), "not bound to node"),
        (tf_pod(node="other"), "not bound to node"),
        (tf_pod(phase="Succeeded"), "finished (Succeeded)"),
        (tf_pod(phase="Failed"), "finished (Failed)"),
    ],
)
def test_pods_that_are_not_ours_or_finished_have_no_region_and_no_event(pod: dict[str, Any], message: str) -> None:
    decision = decide(pod, NODE, GPUS)
    assert isinstance(decision, NoWorker)
    assert message in decision.message
    assert decision.event == ""


@pytest.mark.parametrize(
    ("annotations", "event", "words"),
    [
        ({"tensor-fusion.ai/vram-limit": "1Gi"}, "NoGPUAssigned", ["tensor-fusion.ai/gpu-ids"]),
        (
            {"tensor-fusion.ai/vram-limit": "lots", "tensor-fusion.ai/gpu-ids": UUID0.lower()},
            "InvalidGPURequest",
            ["tensor-fusion.ai/vram-limit", "lots"],
        ),
        (
            {
                "tensor-fusion.ai/vram-request": "2Gi",
                "tensor-fusion.ai/vram-limit": "1Gi",
                "tensor-fusion.ai/gpu-ids": "g",
            },
            "InvalidGPURequest",
            ["tensor-fusion.ai/vram-request"],
        ),
        ({"tensor-fusion.ai/gpu-ids": UUID0.lower()}, "InvalidGPURequest", ["vram-limit", "vram-request"]),
        (
            {"tensor-fusion.ai/vram-limit": "1Gi", "tensor-fusion.ai/gpu-ids": "gpu-elsewhere"},
            "UnknownGPU",
            ["gpu-elsewhere", NODE, UUID0.lower()],
        ),
        (
            {"tensor-fusion.ai/vram-limit": "1Gi", "tensor-fusion.ai/gpu-ids": f"{UUID0.lower()},{UUID0.lower()}"},
            "UnknownGPU",
            ["twice"],
        ),
    ],
)
def test_bad_requests_are_explained_with_an_event(annotations: dict[str, str], event: str, words: list[str]) -> None:
    decision = decide(tf_pod(annotations), NODE, GPUS)
    assert isinstance(decision, NoWorker)
    assert decision.event == event
    for word in words:
        assert word in decision.message


def test_the_tenant_uid_is_the_injected_containers_run_as_user() -> None:
    assert decide(tf_pod(security={"runAsUser": 1000}), NODE, GPUS).spec.tenant_uid == 1000  # type: ignore[union-attr]
    own = [{"name": "main", "securityContext": {"runAsUser": 2000}}]
    decided = decide(tf_pod(containers=own, security={"runAsUser": 1000}), NODE, GPUS)
    assert isinstance(decided, PodWorker)
    assert decided.spec.tenant_uid == 2000
    two: list[dict[str, Any]] = [{"name": "main", "securityContext": {"runAsUser": 3000}}, {"name": "side"}]
    annotations = dict(tf_pod()["metadata"]["annotations"], **{"tensor-fusion.ai/inject-container": "main"})
    decided = decide(tf_pod(annotations, containers=two), NODE, GPUS)
    assert isinstance(decided, PodWorker)
    assert decided.spec.tenant_uid == 3000
    for odd in ("1000", True, -1, None):
        decided = decide(tf_pod(security={"runAsUser": odd}), NODE, GPUS)
        assert isinstance(decided, PodWorker)
        assert decided.spec.tenant_uid is None


def test_names_of_pod_workers_never_collide_with_api_worker_names() -> None:
    assert split_pod_worker_name(pod_worker_name("ml", "train-0.a")) == ("ml", "train-0.a")
    for bad in ("plain", "ml/", "/p", "ml/a/b", "ML/p", "ml/..", "ml/a..b", "ml/-x"):
        assert split_pod_worker_name(bad) is None, bad
    with pytest.raises(ValidationError) as caught:
        check_pod_worker_name("ml/a/b")
    assert caught.value.problems[0].field == "name"


@given(st.dictionaries(st.sampled_from(list(tf_pod()["metadata"]["annotations"])), st.text(max_size=20)))
def test_any_annotation_values_give_a_decision_not_an_exception(annotations: dict[str, str]) -> None:
    decision = decide(tf_pod(annotations), NODE, GPUS)
    assert isinstance(decision, (PodWorker, NoWorker))
    if isinstance(decision, PodWorker):
        assert 0 < decision.spec.vram_request_bytes <= decision.spec.vram_limit_bytes


@given(
    st.recursive(
        st.none() | st.integers() | st.text(max_size=5), lambda c: st.lists(c) | st.dictionaries(st.text(max_size=8), c)
    )
)
def test_any_object_shape_gives_a_decision(obj: Any) -> None:
    pod = obj if isinstance(obj, dict) else {"metadata": obj, "spec": obj}
    assert isinstance(decide(pod, NODE, GPUS), (PodWorker, NoWorker))


def _wanted(uid: str = "uid-1", name: str = "train-0") -> PodWorker:
    decision = decide(tf_pod(name=name, uid=uid), NODE, GPUS)
    assert isinstance(decision, PodWorker)
    return decision


def test_plan_creates_missing_and_keeps_existing_regions() -> None:
    assert plan({}, [_wanted()], complete=True).create == (_wanted(),)
    same = plan({"ml/train-0": "uid-1"}, [_wanted()], complete=True)
    assert (same.remove, same.create) == ((), ())


def test_a_new_uid_under_the_same_name_gets_a_fresh_region() -> None:
    changes = plan({"ml/train-0": "uid-old"}, [_wanted("uid-new")], complete=False)
    assert changes.remove == ("ml/train-0",)
    assert changes.create == (_wanted("uid-new"),)


def test_finished_pods_lose_their_region_but_bad_edits_do_not() -> None:
    finished = decide(tf_pod(phase="Succeeded"), NODE, GPUS)
    assert plan({"ml/train-0": "uid-1"}, [finished], complete=False).remove == ("ml/train-0",)
    broken = decide(tf_pod({"tensor-fusion.ai/vram-limit": "x"}), NODE, GPUS)
    assert isinstance(broken, NoWorker)
    assert broken.event
    kept = plan({"ml/train-0": "uid-1"}, [broken], complete=True)
    assert (kept.remove, kept.create) == ((), ())
    # ...unless the broken pod is a successor: the old pod's region goes, none is made.
    successor = decide(tf_pod({"tensor-fusion.ai/vram-limit": "x"}, uid="uid-2"), NODE, GPUS)
    assert plan({"ml/train-0": "uid-1"}, [successor], complete=True).remove == ("ml/train-0",)


def test_a_listing_removes_regions_of_pods_that_are_gone_an_event_does_not() -> None:
    current = {"ml/train-0": "uid-1", "ml/gone": "uid-9"}
    assert plan(current, [_wanted()], complete=True).remove == ("ml/gone",)
    assert plan(current, [_wanted()], complete=False).remove == ()
    assert plan(current, [], complete=True).remove == ("ml/gone", "ml/train-0")


def test_changed_limit_annotations_resize_the_live_region_in_place() -> None:
    wanted = _wanted()
    granted = {"ml/train-0": wanted.limits}
    unchanged = plan({"ml/train-0": "uid-1"}, [wanted], complete=True, granted=granted)
    assert (unchanged.remove, unchanged.create, unchanged.resize) == ((), (), ())
    spec = wanted.spec
    smaller = Limits(spec.tflops_request_milli * 2, spec.tflops_limit_milli * 2, 1, spec.vram_limit_bytes * 2)
    resized = plan({"ml/train-0": "uid-1"}, [wanted], complete=True, granted={"ml/train-0": smaller})
    assert (resized.remove, resized.create, resized.resize) == ((), (), (wanted,))
    # A broken edit keeps the region and its limits; a successor pod gets a fresh region, not a resize.
    broken = decide(tf_pod({"tensor-fusion.ai/vram-limit": "x"}), NODE, GPUS)
    assert plan({"ml/train-0": "uid-1"}, [broken], complete=True, granted={"ml/train-0": smaller}).resize == ()
    successor = plan({"ml/train-0": "uid-0"}, [wanted], complete=True, granted={"ml/train-0": smaller})
    assert (successor.remove, successor.create, successor.resize) == (("ml/train-0",), (wanted,), ())


@pytest.mark.parametrize(
    ("extra", "qos", "tiering"),
    [({}, "medium", True), ({"tensor-fusion.ai/vram-tiering": "false", "tensor-fusion.ai/qos": "low"}, "low", False)],
)
def test_qos_and_the_tiering_opt_out_reach_the_worker(extra: dict[str, str], qos: str, tiering: bool) -> None:
    annotations = {"tensor-fusion.ai/vram-limit": "1Gi", "tensor-fusion.ai/gpu-ids": UUID0.lower(), **extra}
    decision = decide(tf_pod(annotations), NODE, GPUS)
    assert isinstance(decision, PodWorker)
    assert (decision.spec.qos, decision.spec.vram_tiering) == (qos, tiering)


def test_a_bad_tiering_annotation_is_explained() -> None:
    annotations = {"tensor-fusion.ai/vram-limit": "1Gi", "tensor-fusion.ai/gpu-ids": UUID0.lower()}
    decision = decide(tf_pod({**annotations, "tensor-fusion.ai/vram-tiering": "no"}), NODE, GPUS)
    assert not isinstance(decision, PodWorker)
    assert "vram-tiering" in decision.message
