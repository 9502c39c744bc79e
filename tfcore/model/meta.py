"""Building blocks shared by every tensor-fusion.ai/v1 kind: object metadata, conditions,
GPU resource amounts, and the constrained string types (durations, cron expressions).

Every field is optional with a None default and every struct omits defaults, so a decoded
document encodes back to exactly the keys it had.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Final, Literal

import msgspec
from croniter import croniter

from tfcore.model.quantity import Quantity

API_GROUP: Final = "tensor-fusion.ai"
API_VERSION: Final = "v1"
GROUP_VERSION: Final = f"{API_GROUP}/{API_VERSION}"


class Model(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Base of all API structs: camelCase keys, unset fields left out on encode."""


# Go's time.ParseDuration grammar without the sign: the reference operator and users write
# "5m", "1h30m", "500ms"; "0" alone is also valid Go.
DURATION_PATTERN: Final = r"^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$"
Duration = Annotated[
    str, msgspec.Meta(pattern=DURATION_PATTERN, description="A Go-style duration, e.g. 30s, 5m, 1h30m.")
]

# Five cron fields or a descriptor. The pattern is the cheap structural check the API server
# can run; croniter does the full check (ranges, names) when a model is decoded.
CRON_PATTERN: Final = (
    r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|[0-9A-Za-z*/,?#-]+( +[0-9A-Za-z*/,?#-]+){4})$"
)
_CRON_RE: Final = re.compile(CRON_PATTERN)
Cron = Annotated[
    str, msgspec.Meta(pattern=CRON_PATTERN, description="A cron expression: 5 fields (m h dom mon dow) or @daily etc.")
]

_DURATION_UNITS: Final = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART: Final = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str) -> timedelta:
    """A Go-style duration ("5m", "1h30m") as a timedelta; ValueError if malformed."""
    if re.fullmatch(DURATION_PATTERN, text) is None:
        raise ValueError(f"invalid duration {text!r}, expected e.g. 30s, 5m, 1h30m")
    seconds = sum(float(number) * _DURATION_UNITS[unit] for number, unit in _DURATION_PART.findall(text))
    return timedelta(seconds=seconds)


def check_cron(expression: str) -> None:
    """Raise ValueError unless `expression` is a 5-field cron expression or a descriptor."""
    if _CRON_RE.fullmatch(expression) is None or not croniter.is_valid(expression):
        raise ValueError(
            f"{expression!r} is not a valid cron expression; expected 5 fields "
            "(minute hour day-of-month month day-of-week, e.g. '1 1 * * *') or @daily/@hourly/..."
        )


# Free-form JSON the API server must keep as written (pod templates, vendor parameters).
FreeForm = Annotated[dict[str, Any], msgspec.Meta(extra_json_schema={"x-kubernetes-preserve-unknown-fields": True})]

QoSLevel = Literal["low", "medium", "high", "critical"]
Phase = Literal["Pending", "Provisioning", "Running", "Updating", "Migrating", "Destroying", "Failed", "Unknown"]


class OwnerReference(Model):
    """Points at the object that owns this one (garbage collection)."""

    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    block_owner_deletion: bool | None = None


class ObjectMeta(Model):
    """The subset of Kubernetes ObjectMeta the system reads; other keys are ignored."""

    name: str | None = None
    generate_name: str | None = None
    namespace: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    deletion_grace_period_seconds: int | None = None
    finalizers: list[str] | None = None
    owner_references: list[OwnerReference] | None = None
    managed_fields: list[FreeForm] | None = None


class Condition(Model):
    """A standard Kubernetes status condition (metav1.Condition)."""

    type: str
    status: Literal["True", "False", "Unknown"]
    observed_generation: int | None = None
    last_transition_time: str | None = None
    reason: str | None = None
    message: str | None = None


class GPUResources(Model):
    """An amount of GPU: compute in TFLOPS and memory (VRAM) as quantities."""

    tflops: Quantity | None = None
    vram: Quantity | None = None


class GPUResourceRequirements(Model):
    """What a workload asks for (requests, guaranteed) and may burst to (limits)."""

    requests: GPUResources | None = None
    limits: GPUResources | None = None
