from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.sched.fleet import GiB, T
from tfcore.model.errors import ValidationError
from tfcore.sched import pod_request


def _pod(annotations: dict[str, str], spec: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "labels": {"tensor-fusion.ai/enabled": "true"}, "annotations": annotations, **meta},
        "spec": {"containers": [{"name": "main"}], **(spec or {})},
    }


def test_the_specs_simulate_pod_parses() -> None:
    request = pod_request(
        _pod(
            {
                "tensor-fusion.ai/tflops-request": "100",
                "tensor-fusion.ai/vram-request": "16Gi",
                "tensor-fusion.ai/tflops-limit": "100",
                "tensor-fusion.ai/vram-limit": "16Gi",
            },
            namespace="default",
        )
    )
    assert request.key == "default/p"
    assert (request.tflops, request.vram, request.tflops_limit, request.vram_limit) == (
        100 * T,
        16 * GiB,
        100 * T,
        16 * GiB,
    )


def test_fractional_tflops_round_up_and_percent_is_parts_per_million() -> None:
    assert (
        pod_request(_pod({"tensor-fusion.ai/tflops-request": "1.0005", "tensor-fusion.ai/vram-request": "1Gi"})).tflops
        == 1001
    )
    request = pod_request(
        _pod({"tensor-fusion.ai/compute-percent-request": "12.5", "tensor-fusion.ai/vram-request": "1Gi"})
    )
    assert request.percent_ppm == 125_000
    assert request.tflops == 0


def test_uid_node_selector_and_affinity() -> None:
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]
            }
        }
    }
    request = pod_request(
        _pod({"tensor-fusion.ai/vram-request": "1Gi"}, {"nodeSelector": {"gpu": "yes"}, "affinity": affinity}, uid="u1")
    )
    assert request.key == "u1"
    assert request.node_selector == {"gpu": "yes"}
    assert request.matches_node_labels({"gpu": "yes", "zone": "a"})
    assert not request.matches_node_labels({"gpu": "yes", "zone": "b"})


@pytest.mark.parametrize(
    ("pod", "field"),
    [
        (_pod({}), "metadata.annotations"),
        (_pod({"tensor-fusion.ai/vram-request": "1Gi"}, {"nodeSelector": {"a": 1}}), "spec.nodeSelector"),
        (_pod({"tensor-fusion.ai/vram-request": "1Gi"}, {"nodeName": 5}), "spec.nodeName"),
        (_pod({"tensor-fusion.ai/vram-request": "x"}), "tensor-fusion.ai/vram-request"),
        (
            _pod(
                {"tensor-fusion.ai/vram-request": "1Gi"},
                {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [{"key": "k", "operator": "Near"}]}]}}}},
            ),
            "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]"
            ".matchExpressions[0].operator",
        ),
    ],
)  # fmt: skip
def test_bad_pods_name_the_field(pod: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        pod_request(pod)
    assert info.value.problems[0].field == field


@given(
    st.recursive(
        st.none() | st.text(max_size=5) | st.integers(),
        lambda c: st.lists(c) | st.dictionaries(st.text(max_size=8), c),
        max_leaves=12,
    )
)
def test_any_spec_or_metadata_gives_a_request_or_a_validation_error(junk: Any) -> None:
    for pod in (
        {"metadata": junk, "spec": {}},
        {"metadata": {"name": "p"}, "spec": junk},
        _pod({"tensor-fusion.ai/vram-request": "1Gi"}, {"affinity": junk}),
    ):
        with contextlib.suppress(ValidationError):
            pod_request(pod)
