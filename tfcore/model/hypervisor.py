"""SchedulingConfigTemplate.spec.hypervisor: what a pool's hypervisors do beyond placement.

`autoFreezeAndResume.autoFreeze` sets, per QoS level, after how long idle a worker is frozen
to host memory (`freezeToMemTTL`) and to disk (`freezeToDiskTTL`); the hypervisor applies it
(tfcore.hypervisor.freezeconfig). `intelligenceWarmup` and `multiProcessQueuing` are accepted
as the reference operator defines them and not acted on (docs/hypervisor.md says so).
"""

from __future__ import annotations

import re
from typing import Annotated, Final

import msgspec

from tfcore.model.meta import Duration, Model, QoSLevel

# Go's time.ParseDuration grammar plus days and weeks (the chart and the issue write 1d, 1w).
TTL_PATTERN: Final = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h|d|w))+$"
TTL_FORM: Final = "a positive duration such as 90s, 2m, 1h30m, 1d or 1w (units ns us ms s m h d w)"
# Longer than any idle time worth waiting for; it also keeps the seconds a finite float.
MAX_TTL_SECONDS: Final = 10 * 365 * 86400.0
_TTL_RE: Final = re.compile(TTL_PATTERN)
_TTL_PART: Final = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h|d|w)")
_UNIT_SECONDS: Final = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}

# The pattern goes to the CRD schema (the API server checks it) but not to msgspec: the model's own
# check (AutoFreeze.__post_init__) says what form is expected instead of quoting a regex.
FreezeTTL = Annotated[
    str, msgspec.Meta(description=f"Idle time: {TTL_FORM}.", extra_json_schema={"pattern": TTL_PATTERN})
]


def parse_ttl(text: str) -> float:
    """A freeze TTL in seconds; ValueError saying the expected form when malformed, zero or
    longer than ten years."""
    if _TTL_RE.fullmatch(text) is None:
        raise ValueError(f"{text!r} is not a duration; expected {TTL_FORM}")
    seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _TTL_PART.findall(text))
    if not 0 < seconds <= MAX_TTL_SECONDS:
        raise ValueError(f"{text!r} is {'zero' if seconds <= 0 else 'over ten years'}; expected {TTL_FORM}")
    return seconds


class AutoFreeze(Model):
    """When idle workers of one QoS level are frozen; enable false: never; an unset TTL: never to that tier."""

    qos: QoSLevel
    enable: bool | None = None
    freeze_to_mem_ttl: FreezeTTL | None = msgspec.field(default=None, name="freezeToMemTTL")
    freeze_to_disk_ttl: FreezeTTL | None = msgspec.field(default=None, name="freezeToDiskTTL")

    def __post_init__(self) -> None:
        seconds: dict[str, float] = {}
        for key, text in (("freezeToMemTTL", self.freeze_to_mem_ttl), ("freezeToDiskTTL", self.freeze_to_disk_ttl)):
            if text is not None:
                try:
                    seconds[key] = parse_ttl(text)
                except ValueError as exc:
                    raise ValueError(f"{key}: {exc}") from None
        mem, disk = seconds.get("freezeToMemTTL"), seconds.get("freezeToDiskTTL")
        if mem is not None and disk is not None and disk < mem:
            raise ValueError(
                f"freezeToDiskTTL: {self.freeze_to_disk_ttl} is shorter than freezeToMemTTL "
                f"{self.freeze_to_mem_ttl}; expected freezeToDiskTTL >= freezeToMemTTL, disk being the colder tier"
            )

    def ttls(self) -> tuple[float | None, float | None]:
        """(to host memory after, to disk after) in seconds; None = never."""
        if self.enable is False:
            return (None, None)
        mem = parse_ttl(self.freeze_to_mem_ttl) if self.freeze_to_mem_ttl is not None else None
        disk = parse_ttl(self.freeze_to_disk_ttl) if self.freeze_to_disk_ttl is not None else None
        return (mem, disk)


class SmartSchedulerModelInput(Model):
    """A prediction model's inputs (reserved: accepted, not acted on)."""

    enable: bool | None = None
    model: str | None = None
    history_data_period: Duration | None = None
    prediction_period: Duration | None = None


class AutoFreezeAndResume(Model):
    """Idle workers frozen to host memory, then disk; resumed on their next CUDA call."""

    auto_freeze: list[AutoFreeze] | None = None
    intelligence_warmup: SmartSchedulerModelInput | None = None

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for index, rule in enumerate(self.auto_freeze or ()):
            if rule.qos in seen:
                raise ValueError(
                    f"autoFreeze[{index}].qos: {rule.qos!r} appears twice; expected one entry per QoS level"
                )
            seen.add(rule.qos)


class MultiProcessQueuing(Model):
    """Queueing of co-scheduled CUDA calls (reserved: accepted, not acted on; see docs/hypervisor.md)."""

    enable: bool | None = None
    interval: Duration | None = None
    queue_level_time_slices: list[str] | None = None


class HypervisorScheduling(Model):
    """What the pool's hypervisors do on their own: freeze idle workers (and, reserved, queue)."""

    auto_freeze_and_resume: AutoFreezeAndResume | None = None
    multi_process_queuing: MultiProcessQueuing | None = None
