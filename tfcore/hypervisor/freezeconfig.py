"""Which freeze TTLs a node applies: its `--freeze-ttl` flags over its pool's
SchedulingConfigTemplate over the built-in defaults, one QoS level at a time (pure logic).

The template's `spec.hypervisor` reaches the node either live (the hypervisor watches its
GPUNode's pool and that pool's template) or, as the reference operator passes it, in
`TF_HYPERVISOR_SCHEDULING_CONFIG`; the live template wins over the environment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tfcore.hypervisor.tiering import DEFAULT_FREEZE_TTLS
from tfcore.model.annotations import GPU_POOL
from tfcore.model.codec import decode
from tfcore.model.hypervisor import HypervisorScheduling

FreezeTTLs = dict[str, tuple[float | None, float | None]]


def template_ttls(scheduling: HypervisorScheduling | None) -> FreezeTTLs:
    """The TTLs a template's autoFreeze entries set: only the QoS levels it names."""
    rules = scheduling.auto_freeze_and_resume if scheduling is not None else None
    if rules is None:
        return {}
    return {rule.qos: rule.ttls() for rule in rules.auto_freeze or ()}


def resolve_freeze_ttls(flags: Mapping[str, tuple[float | None, float | None]], *templates: FreezeTTLs) -> FreezeTTLs:
    """Defaults, then each template in turn (later wins), then the flags, per QoS level."""
    return resolve_with_sources(flags, [("", t) for t in templates])[0]


def resolve_with_sources(
    flags: Mapping[str, tuple[float | None, float | None]], layers: Sequence[tuple[str, FreezeTTLs]]
) -> tuple[FreezeTTLs, dict[str, str]]:
    """The TTLs per QoS level and where each came from: `default`, a layer's label (later
    layers win) or `--freeze-ttl`."""
    ttls = dict(DEFAULT_FREEZE_TTLS)
    sources = dict.fromkeys(ttls, "default")
    for label, layer in [*layers, ("--freeze-ttl", dict(flags))]:
        ttls.update(layer)
        sources.update(dict.fromkeys(layer, label))
    return ttls, sources


def scheduling_of(template: Mapping[str, Any] | None, *, where: str) -> HypervisorScheduling | None:
    """A SchedulingConfigTemplate object's spec.hypervisor, checked; ValidationError names the field."""
    if template is None:
        return None
    raw = (template.get("spec") or {}).get("hypervisor")
    return None if raw is None else decode(raw, HypervisorScheduling, where=f"{where}.spec.hypervisor")


def pool_template_name(gpunode: Mapping[str, Any] | None, pools: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The SchedulingConfigTemplate this node's pool names (its GPUNode's pool label), if any."""
    if gpunode is None:
        return None
    labels = (gpunode.get("metadata") or {}).get("labels") or {}
    pool = pools.get(str(labels.get(GPU_POOL) or ""))
    if pool is None:
        return None
    name = (pool.get("spec") or {}).get("schedulingConfigTemplate")
    return str(name) if name else None
