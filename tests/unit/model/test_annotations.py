"""Pod labels and annotations -> WorkloadRequest: the spec's blocks, validation, fuzzing."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tfcore.model import annotations as ann
from tfcore.model.annotations import WorkloadRequest, parse_pod, parse_request
from tfcore.model.errors import ValidationError
from tfcore.model.quantity import Quantity

ENABLED = {ann.LABEL_ENABLED: "true"}

# Every pod annotation block of production-deployment.en.md, as the user writes it.
SPEC_BLOCKS: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "simulate-schedule pod": (
        ENABLED,
        {
            "tensor-fusion.ai/tflops-request": "100",
            "tensor-fusion.ai/vram-request": "16Gi",
            "tensor-fusion.ai/tflops-limit": "100",
            "tensor-fusion.ai/vram-limit": "16Gi",
        },
    ),
    "conservative burst ratio": (
        ENABLED,
        {
            "tensor-fusion.ai/tflops-request": "100",
            "tensor-fusion.ai/tflops-limit": "200",
            "tensor-fusion.ai/vram-request": "3Gi",
            "tensor-fusion.ai/vram-limit": "3Gi",
        },
    ),
    "canary 3 of 10": (ENABLED, {"tensor-fusion.ai/enabled-replicas": "3"}),
    "rollback": ({ann.LABEL_ENABLED: "false"}, {"tensor-fusion.ai/enabled-replicas": "0"}),
}


@pytest.mark.parametrize("name", list(SPEC_BLOCKS))
def test_spec_blocks_parse_and_round_trip(name: str) -> None:
    labels, annotations = SPEC_BLOCKS[name]
    request = parse_request(labels=labels, annotations=annotations, container_names=["main"])
    assert request.warnings == ()
    assert request.to_annotations() == annotations
    assert request.to_labels() == labels
    assert parse_request(labels=request.to_labels(), annotations=request.to_annotations()) == request


def test_spec_values_are_typed() -> None:
    labels, annotations = SPEC_BLOCKS["conservative burst ratio"]
    request = parse_request(labels=labels, annotations=annotations)
    assert request.enabled
    assert request.tflops_request == Quantity("100")
    assert request.tflops_limit == Quantity("200")
    assert request.vram_limit is not None
    assert request.vram_limit.value == 3 * 1024**3
    assert parse_request(labels=ENABLED, annotations=SPEC_BLOCKS["canary 3 of 10"][1]).enabled_replicas == 3
    rollback = parse_request(labels={ann.LABEL_ENABLED: "false"}, annotations={ann.ENABLED_REPLICAS: "0"})
    assert not rollback.enabled
    assert rollback.enabled_replicas == 0


def test_every_field_parses() -> None:
    annotations = {
        ann.COMPUTE_PERCENT_REQUEST: "25",
        ann.COMPUTE_PERCENT_LIMIT: "50.5",
        ann.VRAM_LIMIT: "40Gi",
        ann.GPU_COUNT: "8",
        ann.GPU_MODEL: "H100",
        ann.VENDOR: "NVIDIA",
        ann.GPU_POOL: "shared",
        ann.QOS: "critical",
        ann.IS_LOCAL_GPU: "true",
        ann.WORKLOAD_PROFILE: "llm-serving",
        ann.INJECT_CONTAINER: "python",
        ann.ENABLED_REPLICAS: "7",
        ann.GPU_IDS: "gpu-a,gpu-b",
        ann.INDEX: "0,3",
    }
    labels = {**ENABLED, ann.LABEL_WORKLOAD: "my-model"}
    request = parse_request(labels=labels, annotations=annotations, container_names=["python", "sidecar"])
    assert request == WorkloadRequest(
        enabled=True,
        compute_percent_request=Quantity("25"),
        compute_percent_limit=Quantity("50.5"),
        vram_request=Quantity("40Gi"),
        vram_limit=Quantity("40Gi"),
        gpu_count=8,
        gpu_model="H100",
        vendor="NVIDIA",
        pool="shared",
        qos="critical",
        is_local_gpu=True,
        workload_profile="llm-serving",
        inject_container="python",
        enabled_replicas=7,
        workload="my-model",
        gpu_ids=("gpu-a", "gpu-b"),
        gpu_indices=(0, 3),
    )
    assert parse_request(labels=request.to_labels(), annotations=request.to_annotations()) == request


@pytest.mark.parametrize(
    ("given_", "missing", "value"),
    [
        ({ann.TFLOPS_LIMIT: "80"}, "tflops_request", "80"),
        ({ann.TFLOPS_REQUEST: "80"}, "tflops_limit", "80"),
        ({ann.VRAM_LIMIT: "2Gi"}, "vram_request", "2Gi"),
        ({ann.COMPUTE_PERCENT_LIMIT: "30"}, "compute_percent_request", "30"),
    ],
)
def test_missing_side_defaults_to_the_other(given_: dict[str, str], missing: str, value: str) -> None:
    assert getattr(parse_request(labels=ENABLED, annotations=given_), missing) == Quantity(value)


BAD: list[tuple[dict[str, str], str, str]] = [
    ({ann.TFLOPS_REQUEST: "300", ann.TFLOPS_LIMIT: "200"}, ann.TFLOPS_REQUEST, "greater than"),
    ({ann.VRAM_REQUEST: "4Gi", ann.VRAM_LIMIT: "3Gi"}, ann.VRAM_REQUEST, "greater than"),
    ({ann.TFLOPS_LIMIT: "0"}, ann.TFLOPS_LIMIT, "greater than 0"),
    ({ann.TFLOPS_LIMIT: "-5"}, ann.TFLOPS_LIMIT, "greater than 0"),
    ({ann.TFLOPS_LIMIT: "lots"}, ann.TFLOPS_LIMIT, "invalid quantity"),
    ({ann.VRAM_LIMIT: "1.5"}, ann.VRAM_LIMIT, "whole number of bytes"),
    ({ann.VRAM_LIMIT: "16GB"}, ann.VRAM_LIMIT, "invalid quantity"),
    ({ann.COMPUTE_PERCENT_LIMIT: "101"}, ann.COMPUTE_PERCENT_LIMIT, "more than 100"),
    ({ann.TFLOPS_LIMIT: "10", ann.COMPUTE_PERCENT_LIMIT: "10"}, ann.COMPUTE_PERCENT_LIMIT, "mutually exclusive"),
    ({ann.GPU_COUNT: "0"}, ann.GPU_COUNT, "out of range"),
    ({ann.GPU_COUNT: "129"}, ann.GPU_COUNT, "out of range"),
    ({ann.GPU_COUNT: "two"}, ann.GPU_COUNT, "invalid integer"),
    ({ann.GPU_COUNT: "1.0"}, ann.GPU_COUNT, "invalid integer"),
    ({ann.QOS: "ultra"}, ann.QOS, "unknown qos"),
    ({ann.QOS: "High"}, ann.QOS, "unknown qos"),
    ({ann.IS_LOCAL_GPU: "yes"}, ann.IS_LOCAL_GPU, "invalid boolean"),
    ({ann.DEDICATED_GPU: "true", ann.TFLOPS_LIMIT: "10"}, ann.DEDICATED_GPU, "whole device"),
    ({ann.GPU_POOL: "Shared_Pool"}, ann.GPU_POOL, "invalid name"),
    ({ann.ENABLED_REPLICAS: "-1"}, ann.ENABLED_REPLICAS, "invalid integer"),
    ({ann.INJECT_CONTAINER: "nope"}, ann.INJECT_CONTAINER, "no container named"),
    ({}, ann.INJECT_CONTAINER, "required when the pod has several containers"),
]


@pytest.mark.parametrize(("annotations", "key", "message"), BAD)
def test_bad_annotations_name_the_annotation_and_the_form(annotations: dict[str, str], key: str, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_request(labels=ENABLED, annotations=annotations, container_names=["main", "sidecar"])
    problem = next(p for p in caught.value.problems if p.field == key)
    assert message in problem.message
    assert problem.expected
    assert key in str(caught.value)


def test_all_problems_are_reported_together() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_request(labels={ann.LABEL_ENABLED: "True"}, annotations={ann.GPU_COUNT: "0", ann.QOS: "x"})
    assert {p.field for p in caught.value.problems} == {ann.LABEL_ENABLED, ann.GPU_COUNT, ann.QOS}


def test_unknown_keys_under_our_prefix_warn_with_a_suggestion() -> None:
    request = parse_request(labels=ENABLED, annotations={"tensor-fusion.ai/tflops-limt": "1", "other.io/x": "y"})
    assert request.warnings == (
        "unknown annotation tensor-fusion.ai/tflops-limt is ignored; did you mean tensor-fusion.ai/tflops-limit?",
    )


def test_parse_pod_reads_metadata_and_containers() -> None:
    pod: dict[str, Any] = {
        "metadata": {"labels": ENABLED, "annotations": {ann.TFLOPS_LIMIT: "10"}},
        "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
    }
    with pytest.raises(ValidationError, match="inject-container"):
        parse_pod(pod)
    pod["metadata"]["annotations"][ann.INJECT_CONTAINER] = "b"
    assert parse_pod(pod).inject_container == "b"
    with pytest.raises(ValidationError, match=r"metadata\.annotations"):
        parse_pod({"metadata": {"annotations": ["x"]}})
    assert not parse_pod({}).enabled


def test_non_string_values_are_rejected() -> None:
    with pytest.raises(ValidationError, match="must be a string"):
        parse_request(labels=ENABLED, annotations={ann.GPU_COUNT: 2})  # type: ignore[dict-item]


_keys = st.sampled_from([*sorted(ann.KNOWN_ANNOTATIONS), "tensor-fusion.ai/unknown", "other/x"])


@given(
    st.dictionaries(_keys, st.text(max_size=30), max_size=8),
    st.one_of(st.none(), st.text(max_size=10)),
    st.lists(st.text(max_size=10), max_size=3),
)
def test_random_annotations_parse_or_raise_validation_error(
    annotations: dict[str, str], enabled: str | None, containers: list[str]
) -> None:
    labels = {} if enabled is None else {ann.LABEL_ENABLED: enabled}
    try:
        request = parse_request(labels=labels, annotations=annotations, container_names=containers)
    except ValidationError as exc:
        problems = exc.problems
        assert all(p.field and p.message for p in problems)
        return
    again = parse_request(labels=request.to_labels(), annotations=request.to_annotations())
    assert again == _without_warnings(request)


def _without_warnings(request: WorkloadRequest) -> WorkloadRequest:
    import msgspec

    return msgspec.structs.replace(request, warnings=())
