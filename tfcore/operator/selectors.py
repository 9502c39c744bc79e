"""Kubernetes NodeSelector matching (a GPUPool's nodeManagerConfig.nodeSelector against a Node)."""

from __future__ import annotations

from collections.abc import Mapping

from tfcore.model.pool import NodeSelector, NodeSelectorRequirement


def node_matches(selector: NodeSelector, labels: Mapping[str, str], fields: Mapping[str, str]) -> bool:
    """True when any term matches; a term matches when all its expressions do (Kubernetes rules).

    A term with no expressions matches nothing, as in Kubernetes; `fields` holds metadata.name.
    """
    for term in selector.node_selector_terms:
        expressions = [*(term.match_expressions or ()), *(term.match_fields or ())]
        if not expressions:
            continue
        label_ok = all(_matches(r, labels) for r in term.match_expressions or ())
        field_ok = all(_matches(r, fields) for r in term.match_fields or ())
        if label_ok and field_ok:
            return True
    return False


def _matches(requirement: NodeSelectorRequirement, values: Mapping[str, str]) -> bool:
    present = requirement.key in values
    value = values.get(requirement.key)
    wanted = requirement.values or []
    match requirement.operator:
        case "In":
            return present and value in wanted
        case "NotIn":
            return not present or value not in wanted
        case "Exists":
            return present
        case "DoesNotExist":
            return not present
        case "Gt" | "Lt":
            if not present or len(wanted) != 1:
                return False
            try:
                have, bound = int(value or ""), int(wanted[0])
            except ValueError:
                return False
            return have > bound if requirement.operator == "Gt" else have < bound
