"""Where a workload's autoscaling config comes from: its own spec, a pool rule, or the pod
annotations `tensor-fusion.ai/autoscale: "true"` and `tensor-fusion.ai/autoscale-target`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from tfcore.model.annotations import AUTOSCALE, AUTOSCALE_TARGET
from tfcore.model.autoscaling import (
    AutoScalingConfig,
    AutoSetResources,
    LabelSelector,
    TargetResource,
    VerticalScalingRule,
)
from tfcore.model.errors import ValidationError

TARGETS: Final[Mapping[str, TargetResource]] = {"compute": "compute", "vram": "vram", "all": "all"}


def from_annotations(annotations: Mapping[str, str]) -> AutoScalingConfig | None:
    """The config the annotations ask for; None without `autoscale: "true"`."""
    enabled = annotations.get(AUTOSCALE)
    if enabled is None or enabled == "false":
        return None
    if enabled != "true":
        where = f"metadata.annotations[{AUTOSCALE}]"
        raise ValidationError.single(where, f"{enabled!r}", 'the string "true" or "false"')
    target = annotations.get(AUTOSCALE_TARGET, "all")
    if target not in TARGETS:
        raise ValidationError.single(f"metadata.annotations[{AUTOSCALE_TARGET}]", f"{target!r}", "compute, vram or all")
    return AutoScalingConfig(auto_set_resources=AutoSetResources(enable=True, target_resource=TARGETS[target]))


def from_rules(rules: Sequence[VerticalScalingRule], labels: Mapping[str, str]) -> AutoScalingConfig | None:
    """The first pool rule whose selector matches the workload's labels."""
    for rule in rules:
        if rule.auto_scaling is not None and selects(rule.selector, labels):
            return rule.auto_scaling
    return None


def selects(selector: LabelSelector | None, labels: Mapping[str, str]) -> bool:
    """Kubernetes LabelSelector semantics; an empty selector selects everything."""
    if selector is None:
        return True
    if any(labels.get(k) != v for k, v in (selector.match_labels or {}).items()):
        return False
    for requirement in selector.match_expressions or ():
        values = requirement.values or []
        present = requirement.key in labels
        match requirement.operator:
            case "In":
                ok = present and labels[requirement.key] in values
            case "NotIn":
                ok = not present or labels[requirement.key] not in values
            case "Exists":
                ok = present
            case "DoesNotExist":
                ok = not present
            case _:
                ok = False  # Gt/Lt are node-selector only
        if not ok:
            return False
    return True
