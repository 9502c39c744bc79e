"""The external recommender's wire format (pure; daemons/controller/external_scaler.py does HTTP).

Request: POST {workloadName, namespace, currentResources} with a bearer key.
Reply: {needScaleUp, needScaleDown, reason, recommendedResources}.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from tfcore.autoscale.resources import Resources, overlay
from tfcore.model.codec import decode_json, to_builtins
from tfcore.model.errors import ValidationError
from tfcore.model.meta import GPUResourceRequirements, GPUResources


class _Reply(msgspec.Struct, rename="camel"):
    need_scale_up: bool = False
    need_scale_down: bool = False
    reason: str = ""
    recommended_resources: GPUResourceRequirements | None = None


@dataclass(frozen=True, slots=True)
class ExternalAdvice:
    resources: Resources | None  # None: no change wanted
    reason: str


def request_body(workload: str, namespace: str, current: Resources) -> dict[str, Any]:
    return {
        "workloadName": workload,
        "namespace": namespace,
        "currentResources": to_builtins(current.to_api()),
    }


def parse_reply(body: bytes, current: Resources) -> ExternalAdvice:
    """The advice in a reply body; ValidationError names the bad field."""
    reply = decode_json(body, _Reply, where="externalScaler.reply")
    if not (reply.need_scale_up or reply.need_scale_down):
        return ExternalAdvice(None, reply.reason or "no change wanted")
    recommended = reply.recommended_resources
    if recommended is None:
        raise ValidationError.single(
            "externalScaler.reply.recommendedResources", "missing while a scale is needed", "requests and limits"
        )
    requests, limits = recommended.requests or GPUResources(), recommended.limits or GPUResources()
    for key, request, limit in (("tflops", requests.tflops, limits.tflops), ("vram", requests.vram, limits.vram)):
        if request is not None and limit is not None and limit < request:
            raise ValidationError.single(
                f"externalScaler.reply.recommendedResources.limits.{key}", "below the request", "limit >= request"
            )
    result = overlay(current, recommended)
    return ExternalAdvice(result, reply.reason or "external recommendation")
