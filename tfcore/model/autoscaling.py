"""`autoScalingConfig` of a WorkloadProfile / TensorFusionWorkload and the autoscaling status.

Numbers are strings, as in the reference CRD (`"0.95"`, `"0.15"`): the schema checks their
form, tfcore.autoscale.settings checks their range and fills the defaults.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec

from tfcore.model.meta import Cron, Duration, GPUResourceRequirements, Model, check_cron
from tfcore.model.pool import NodeSelectorRequirement

DECIMAL_PATTERN: Final = r"^[0-9]+(\.[0-9]+)?$"
Decimal = Annotated[str, msgspec.Meta(pattern=DECIMAL_PATTERN, description="A decimal number as a string, e.g. 0.95.")]
TargetResource = Literal["compute", "vram", "all", ""]


class AutoSetResources(Model):
    """Vertical scaling from measured usage (a decaying histogram per workload)."""

    enable: bool | None = None
    # What gets applied; "" (or unset) recommends only.
    target_resource: TargetResource | None = None
    target_compute_percentile: Decimal | None = None
    lower_bound_compute_percentile: Decimal | None = None
    upper_bound_compute_percentile: Decimal | None = None
    target_vram_percentile: Decimal | None = msgspec.field(default=None, name="targetVRAMPercentile")
    lower_bound_vram_percentile: Decimal | None = msgspec.field(default=None, name="lowerBoundVRAMPercentile")
    upper_bound_vram_percentile: Decimal | None = msgspec.field(default=None, name="upperBoundVRAMPercentile")
    margin_fraction: Decimal | None = None
    update_threshold: Decimal | None = None
    history_data_period: Duration | None = None
    min_vram_resources_ratio: Decimal | None = msgspec.field(default=None, name="minVRAMResourcesRatio")
    max_vram_resources_ratio: Decimal | None = msgspec.field(default=None, name="maxVRAMResourcesRatio")
    min_compute_resources_ratio: Decimal | None = None
    max_compute_resources_ratio: Decimal | None = None
    initial_delay_period: Duration | None = None
    interval: Duration | None = None


class CronScalingRule(Model):
    """Desired resources while the window [start, end) is open (both cron expressions)."""

    enable: bool | None = None
    name: str | None = None
    start: Cron | None = None
    end: Cron | None = None
    desired_resources: GPUResourceRequirements | None = None

    def __post_init__(self) -> None:
        for key, expression in (("start", self.start), ("end", self.end)):
            if expression is not None:
                try:
                    check_cron(expression)
                except ValueError as exc:
                    raise ValueError(f"{key}: {exc}") from None


class SecretKeyRef(Model):
    """A Secret holding the external scaler's API key (field apiKey, token or key)."""

    name: str
    namespace: str | None = None


class ExternalScaler(Model):
    """An HTTP service asked for recommendations (POST, bearer key)."""

    enable: bool | None = None
    url: Annotated[str, msgspec.Meta(pattern=r"^https?://\S+$", description="http(s) URL to POST to.")] | None = None
    api_key_secret_ref: SecretKeyRef | None = None
    initial_delay_period: Duration | None = None
    interval: Duration | None = None


class AutoScalingConfig(Model):
    """Vertical autoscaling of one workload: percentile, cron and external recommenders."""

    auto_set_resources: AutoSetResources | None = None
    cron_scaling_rules: list[CronScalingRule] | None = None
    external_scaler: ExternalScaler | None = None


class LabelSelector(Model):
    """Kubernetes LabelSelector: all matchLabels and all matchExpressions must hold."""

    match_labels: dict[str, str] | None = None
    match_expressions: list[NodeSelectorRequirement] | None = None


class VerticalScalingRule(Model):
    """Pool-level autoscaling for the workloads whose labels match `selector`."""

    selector: LabelSelector | None = None
    auto_scaling: AutoScalingConfig | None = None
