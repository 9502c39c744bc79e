"""A pool's gpuRequirements (Karpenter-style key/operator/values) read as what may be provisioned.

Keys understood: node.kubernetes.io/instance-type, karpenter.sh/capacity-type (on-demand, spot,
reserved: Karpenter's spelling), topology.kubernetes.io/region and /zone. Other keys (kubernetes.io/os,
arch, custom labels) do not narrow the catalogue; they are passed on to Karpenter and to node labels.
When both spot and on-demand are allowed, spot is asked for (as Karpenter does); with no
capacity-type requirement, on-demand (Karpenter's default). Prices rank by the on-demand list
price, the most a spot instance is billed by default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from tfcore.fleet.catalogue import InstanceType
from tfcore.model.errors import Problem, ValidationError
from tfcore.model.pool import Requirement

INSTANCE_TYPE: Final = "node.kubernetes.io/instance-type"
CAPACITY_TYPE: Final = "karpenter.sh/capacity-type"
REGION: Final = "topology.kubernetes.io/region"
ZONE: Final = "topology.kubernetes.io/zone"
CapacityType = Literal["spot", "on-demand", "reserved"]
CAPACITY_TYPES: Final[tuple[CapacityType, ...]] = ("spot", "on-demand", "reserved")  # preference order
CLAIM_CAPACITY_TYPE: Final[dict[CapacityType, str]] = {"spot": "Spot", "on-demand": "OnDemand", "reserved": "Reserved"}


@dataclass(frozen=True, slots=True)
class Offer:
    instance: InstanceType
    capacity_type: CapacityType
    region: str | None
    zones: tuple[str, ...]  # empty: any zone of the region

    def key(self) -> tuple[str, str]:
        return (self.instance.name, self.capacity_type)

    def zone_for(self, index: int) -> str | None:
        """Zones taken in turn so successive claims spread over the allowed zones."""
        return self.zones[index % len(self.zones)] if self.zones else None


def _allows(requirements: Sequence[Requirement], key: str, value: str) -> bool:
    for req in requirements:
        if req.key != key:
            continue
        values = set(req.values or ())
        op = req.operator or "In"
        if (op == "In" and value not in values) or (op == "NotIn" and value in values) or op == "DoesNotExist":
            return False
    return True


def _listed(requirements: Sequence[Requirement], key: str) -> list[str]:
    found: list[str] = []
    for req in requirements:
        if req.key == key and (req.operator or "In") == "In":
            found.extend(v for v in req.values or () if v not in found)
    return found


def check(requirements: Sequence[Requirement], field: str = "nodeProvisioner.gpuRequirements") -> None:
    """ValidationError for requirements that can never match (missing key, unknown capacity type)."""
    problems: list[Problem] = []
    for index, req in enumerate(requirements):
        here = f"{field}[{index}]"
        if not req.key:
            problems.append(Problem(f"{here}.key", "missing", "a label key such as node.kubernetes.io/instance-type"))
        if req.operator in ("In", "NotIn") and not req.values:
            problems.append(Problem(f"{here}.values", f"empty for operator {req.operator}", "at least one value"))
        if req.key == CAPACITY_TYPE:
            bad = [v for v in req.values or () if v not in CAPACITY_TYPES]
            if bad:
                problems.append(
                    Problem(f"{here}.values", f"unknown capacity type {bad[0]!r}", "on-demand, spot or reserved")
                )
    if problems:
        raise ValidationError(problems)


def offers(
    requirements: Sequence[Requirement], catalogue: Sequence[InstanceType], *, default_region: str | None = None
) -> list[Offer]:
    """Every catalogue type the requirements allow, each with the preferred allowed capacity type."""
    check(requirements)
    regions = _listed(requirements, REGION)
    region = regions[0] if regions else default_region
    zones = tuple(z for z in _listed(requirements, ZONE) if _allows(requirements, ZONE, z))
    capacity: CapacityType | None = "on-demand"  # unmentioned: on-demand, Karpenter's default too
    if any(r.key == CAPACITY_TYPE for r in requirements):
        capacity = next((c for c in CAPACITY_TYPES if _allows(requirements, CAPACITY_TYPE, c)), None)
    if capacity is None:
        return []
    return [
        Offer(instance, capacity, region, zones)
        for instance in catalogue
        if _allows(requirements, INSTANCE_TYPE, instance.name)
    ]
