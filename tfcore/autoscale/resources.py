"""GPU amounts as plain numbers (TFLOPS, bytes) and their conversion to and from the API form."""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Final

from tfcore.autoscale.settings import Resource
from tfcore.model.meta import GPUResourceRequirements, GPUResources
from tfcore.model.quantity import Quantity

MIB: Final = 1024**2


@dataclass(frozen=True, slots=True)
class Amounts:
    tflops: float
    vram: float  # bytes

    def get(self, resource: Resource) -> float:
        return self.tflops if resource == "compute" else self.vram

    def with_(self, resource: Resource, value: float) -> Amounts:
        return replace(self, tflops=value) if resource == "compute" else replace(self, vram=value)


@dataclass(frozen=True, slots=True)
class Resources:
    requests: Amounts
    limits: Amounts

    def with_(self, resource: Resource, request: float, limit: float) -> Resources:
        return Resources(self.requests.with_(resource, request), self.limits.with_(resource, limit))

    @classmethod
    def of(cls, spec: GPUResourceRequirements | None) -> Resources | None:
        """Numbers of a spec; a missing limit is the request. None when a request is missing."""
        requests = spec.requests if spec else None
        if requests is None or requests.tflops is None or requests.vram is None:
            return None
        limits = spec.limits if spec and spec.limits else GPUResources()
        tflops_limit = limits.tflops if limits.tflops is not None else requests.tflops
        vram_limit = limits.vram if limits.vram is not None else requests.vram
        return cls(
            Amounts(float(requests.tflops), float(requests.vram)),
            Amounts(float(tflops_limit), float(vram_limit)),
        )

    def to_api(self) -> GPUResourceRequirements:
        return GPUResourceRequirements(
            requests=GPUResources(tflops=tflops_quantity(self.requests.tflops), vram=vram_quantity(self.requests.vram)),
            limits=GPUResources(tflops=tflops_quantity(self.limits.tflops), vram=vram_quantity(self.limits.vram)),
        )


def tflops_quantity(value: float) -> Quantity:
    """TFLOPS to the milli-unit (what the scheduler accounts in)."""
    return Quantity.from_value(Fraction(max(0, round(value * 1000)), 1000))


def vram_quantity(value: float) -> Quantity:
    """Bytes rounded up to a whole MiB, written in binary units (1536Mi, 2Gi)."""
    mib = max(0, -(-int(value) // MIB))
    return Quantity.from_value(mib * MIB, binary=True)


def overlay(base: Resources, spec: GPUResourceRequirements | None) -> Resources:
    """`base` with what `spec` sets; a request alone lifts the limit to at least itself, a
    limit below its request is raised to the request."""
    requests = (spec.requests if spec else None) or GPUResources()
    limits = (spec.limits if spec else None) or GPUResources()
    result = base
    pairs: tuple[tuple[Resource, Quantity | None, Quantity | None], ...] = (
        ("compute", requests.tflops, limits.tflops),
        ("vram", requests.vram, limits.vram),
    )
    for resource, request, limit in pairs:
        if request is None and limit is None:
            continue
        want_request = float(request) if request is not None else base.requests.get(resource)
        want_limit = float(limit) if limit is not None else max(want_request, base.limits.get(resource))
        result = result.with_(resource, want_request, max(want_limit, want_request))
    return result
