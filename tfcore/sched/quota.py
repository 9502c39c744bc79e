"""A QuotaPolicy from GPUResourceQuota objects: per-namespace totals and per-worker maximum."""

from __future__ import annotations

from collections.abc import Iterable

from tfcore.model.meta import GPUResources
from tfcore.model.workload import GPUResourceQuota
from tfcore.sched.allocator import Usage
from tfcore.sched.units import bytes_text, capacity_bytes, capacity_milli_tflops, tflops_text


class GPUResourceQuotaPolicy:
    """Refuses an allocation that would take a namespace past its GPUResourceQuota."""

    def __init__(self, quotas: Iterable[GPUResourceQuota] = ()) -> None:
        self.quotas: dict[str, GPUResourceQuota] = {}
        for quota in quotas:
            self.set(quota)

    def set(self, quota: GPUResourceQuota) -> None:
        namespace = quota.metadata.namespace if quota.metadata and quota.metadata.namespace else "default"
        self.quotas[namespace] = quota

    def remove(self, namespace: str) -> None:
        self.quotas.pop(namespace, None)

    def check(self, namespace: str, used: Usage, adding: Usage) -> str | None:
        quota = self.quotas.get(namespace)
        if quota is None or quota.spec is None:
            return None
        after = used.plus(adding)
        total, single = quota.spec.total, quota.spec.single
        if total is not None:
            if total.max_workers is not None and after.workers > total.max_workers:
                return f"namespace {namespace} would have {after.workers} workers, quota allows {total.max_workers}"
            for what, limit, tflops, vram in (
                ("requests", total.requests, after.tflops, after.vram),
                ("limits", total.limits, after.tflops_limit, after.vram_limit),
            ):
                reason = _over(f"namespace {namespace} total {what}", limit, tflops, vram)
                if reason:
                    return reason
        if single is not None and single.max is not None:
            return _over(f"namespace {namespace} per-worker maximum", single.max, adding.tflops, adding.vram)
        return None


def _over(what: str, limit: GPUResources | None, tflops: int, vram: int) -> str | None:
    if limit is None:
        return None
    if limit.tflops is not None and tflops > capacity_milli_tflops(limit.tflops):
        return f"{what} TFLOPS would be {tflops_text(tflops)}, quota is {limit.tflops}"
    if limit.vram is not None and vram > capacity_bytes(limit.vram):
        return f"{what} VRAM would be {bytes_text(vram)}, quota is {limit.vram}"
    return None
