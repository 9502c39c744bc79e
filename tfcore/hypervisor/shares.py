"""TFLOPS request/limit -> shares of one GPU (fractions of its busy time).

A share is what the controller holds a tenant to: request 0.3 means "at least 30% of the
GPU's time whenever it wants it", limit 0.5 "never more than 50%".  Shares of the rated
TFLOPS, because a tenant running the GPU flat out for 30% of the time gets 30% of whatever
throughput its kernels reach: time is the resource the GPU actually multiplexes.
"""

from __future__ import annotations

from dataclasses import dataclass

from tfcore.model.errors import ValidationError


@dataclass(frozen=True, slots=True)
class TenantShare:
    """A tenant's guaranteed (request) and maximum (limit) share of one GPU, 0 < ... <= 1."""

    request: float
    limit: float


def share_of(request_milli: int, limit_milli: int, rated_tflops: float) -> TenantShare:
    """Converts milli-TFLOPS into shares of a GPU rated `rated_tflops`.

    A missing limit (0) means the request is also the limit; a missing request with a limit
    means best effort up to the limit; neither means best effort up to the whole GPU.
    Shares above the whole GPU are capped at 1.
    """
    if rated_tflops <= 0:
        raise ValidationError.single("rated_tflops", f"must be positive, got {rated_tflops}", "> 0")
    if request_milli < 0 or limit_milli < 0:
        raise ValidationError.single("tflops", "request and limit must not be negative", ">= 0")
    if limit_milli and request_milli > limit_milli:
        raise ValidationError.single(
            "tflops", f"request {request_milli}m is above the limit {limit_milli}m", "request <= limit"
        )
    full = rated_tflops * 1000.0
    request = min(1.0, request_milli / full)
    limit = (request if request_milli else 1.0) if limit_milli == 0 else min(1.0, limit_milli / full)
    return TenantShare(request, limit)
