"""Where a workload's autoscaling config comes from: annotations and pool rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tfcore.autoscale.config import from_annotations, from_rules, selects
from tfcore.model.autoscaling import VerticalScalingRule
from tfcore.model.codec import decode
from tfcore.model.errors import ValidationError


def test_annotations_enable_autoscaling_with_a_target() -> None:
    assert from_annotations({}) is None
    assert from_annotations({"tensor-fusion.ai/autoscale": "false"}) is None
    config = from_annotations({"tensor-fusion.ai/autoscale": "true"})
    assert config is not None
    assert config.auto_set_resources is not None
    assert (config.auto_set_resources.enable, config.auto_set_resources.target_resource) == (True, "all")
    vram_only = from_annotations({"tensor-fusion.ai/autoscale": "true", "tensor-fusion.ai/autoscale-target": "vram"})
    assert vram_only is not None
    assert vram_only.auto_set_resources is not None
    assert vram_only.auto_set_resources.target_resource == "vram"


@pytest.mark.parametrize(
    ("annotations", "field"),
    [
        ({"tensor-fusion.ai/autoscale": "yes"}, "tensor-fusion.ai/autoscale]"),
        ({"tensor-fusion.ai/autoscale": "true", "tensor-fusion.ai/autoscale-target": "gpu"}, "autoscale-target"),
    ],
)
def test_bad_annotations_name_themselves(annotations: dict[str, str], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        from_annotations(annotations)
    assert field in caught.value.problems[0].field


@given(st.dictionaries(st.sampled_from(["tensor-fusion.ai/autoscale", "tensor-fusion.ai/autoscale-target"]), st.text()))
def test_annotation_parser_fuzz(annotations: dict[str, str]) -> None:
    try:
        from_annotations(annotations)
    except ValidationError as exc:
        problems = exc.problems
    else:
        return
    assert problems[0].field.startswith("metadata.annotations[tensor-fusion.ai/autoscale")


def test_pool_rules_pick_the_first_matching_selector() -> None:
    rules = [
        decode(rule, VerticalScalingRule)
        for rule in (
            {
                "selector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["batch"]}]},
                "autoScaling": {"autoSetResources": {"enable": True, "targetResource": "compute"}},
            },
            {"selector": {"matchLabels": {"team": "ml"}}, "autoScaling": {"autoSetResources": {"enable": True}}},
        )
    ]
    batch = from_rules(rules, {"tier": "batch", "team": "ml"})
    assert batch is not None
    assert batch.auto_set_resources is not None
    assert batch.auto_set_resources.target_resource == "compute"
    other = from_rules(rules, {"team": "ml"})
    assert other is not None
    assert other.auto_set_resources is not None
    assert other.auto_set_resources.target_resource is None
    assert from_rules(rules, {"team": "web"}) is None
    assert selects(None, {})
