"""Merging the recommenders' results, per resource: the largest request wins, an open cron
rule is a floor, and a source that failed is reported and skipped, never blocking the others."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tfcore.autoscale.resources import Resources
from tfcore.autoscale.settings import RESOURCES, Resource


@dataclass(frozen=True, slots=True)
class SourceResult:
    name: str  # percentile, cron, external
    resources: Resources | None = None
    covers: frozenset[Resource] = frozenset(RESOURCES)  # the resources this source speaks for
    error: str | None = None
    floor: bool = False  # an open cron rule: nothing below it

    @property
    def usable(self) -> bool:
        return self.error is None and self.resources is not None and bool(self.covers)


@dataclass(frozen=True, slots=True)
class Merged:
    resources: Resources | None  # None: no source had anything to say
    winners: dict[str, str]  # resource -> source name
    errors: list[str]


def merge(current: Resources, sources: Sequence[SourceResult]) -> Merged:
    errors = [f"{s.name}: {s.error}" for s in sources if s.error]
    usable = [s for s in sources if s.usable]
    result = current
    winners: dict[str, str] = {}
    for resource in RESOURCES:
        speaking = [s for s in usable if resource in s.covers]
        if not speaking:
            continue
        best = max(speaking, key=lambda s: _get(s, resource)[0])
        request, limit = _get(best, resource)
        for floor in (s for s in speaking if s.floor):
            floor_request, floor_limit = _get(floor, resource)
            request, limit = max(request, floor_request), max(limit, floor_limit)
        result = result.with_(resource, request, max(limit, request))
        winners[resource] = best.name
    return Merged(result if winners else None, winners, errors)


def _get(source: SourceResult, resource: Resource) -> tuple[float, float]:
    assert source.resources is not None
    return source.resources.requests.get(resource), source.resources.limits.get(resource)
