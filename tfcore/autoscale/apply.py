"""Planning an in-place resize of a workload's workers without over-committing any GPU.

Allocations are integers (milli-TFLOPS, bytes) per GPU, as the scheduler accounts them. A
scale-up of a request is capped on each GPU at an equal share of the GPU's free room among
this workload's workers there that grow; room that shrinking workers give back is not
counted, so the GPU's total never exceeds its capacity after any step, in any order. Limits are not committed and are
only kept at or above the request. Each worker gets an annotation patch and the patch that
undoes it, applied in reverse when a later step fails.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from tfcore.autoscale.resources import MIB, Resources, tflops_quantity, vram_quantity
from tfcore.model.annotations import TFLOPS_LIMIT, TFLOPS_REQUEST, VRAM_LIMIT, VRAM_REQUEST


@dataclass(frozen=True, slots=True)
class Grant:
    """Per-GPU amounts of one worker, in allocation units."""

    tflops_milli: int
    vram_bytes: int
    tflops_limit_milli: int
    vram_limit_bytes: int

    @classmethod
    def of(cls, resources: Resources) -> Grant:
        return cls(
            round(resources.requests.tflops * 1000),
            int(vram_quantity(resources.requests.vram).to_int()),
            round(resources.limits.tflops * 1000),
            int(vram_quantity(resources.limits.vram).to_int()),
        )

    def annotations(self) -> dict[str, str]:
        return {
            TFLOPS_REQUEST: tflops_quantity(self.tflops_milli / 1000).canonical(),
            TFLOPS_LIMIT: tflops_quantity(self.tflops_limit_milli / 1000).canonical(),
            VRAM_REQUEST: vram_quantity(self.vram_bytes).canonical(),
            VRAM_LIMIT: vram_quantity(self.vram_limit_bytes).canonical(),
        }


@dataclass(frozen=True, slots=True)
class GPULedger:
    """One GPU: what it can give and what all its workers' requests hold now."""

    tflops_milli: int
    vram_bytes: int
    allocated_tflops_milli: int
    allocated_vram_bytes: int

    def fits(self) -> bool:
        return self.allocated_tflops_milli <= self.tflops_milli and self.allocated_vram_bytes <= self.vram_bytes


@dataclass(frozen=True, slots=True)
class WorkerGrant:
    key: str  # namespace/pod
    gpus: tuple[str, ...]
    grant: Grant


@dataclass(frozen=True, slots=True)
class WorkerChange:
    key: str
    gpus: tuple[str, ...]
    before: Grant
    after: Grant
    capped: bool  # the wanted request did not fit

    def patch(self) -> dict[str, str]:
        return _changed(self.before.annotations(), self.after.annotations())

    def rollback(self) -> dict[str, str]:
        return _changed(self.after.annotations(), self.before.annotations())


@dataclass(frozen=True, slots=True)
class ApplyPlan:
    changes: tuple[WorkerChange, ...]
    ledger: dict[str, GPULedger]  # after every change

    @property
    def capped(self) -> bool:
        return any(c.capped for c in self.changes)


def plan(ledger: Mapping[str, GPULedger], workers: Sequence[WorkerGrant], wanted: Grant) -> ApplyPlan:
    """Changes that bring every worker toward `wanted`. GPUs missing from the ledger are
    unknown: their workers' requests may not grow."""
    growing_tflops: Counter[str] = Counter()
    growing_vram: Counter[str] = Counter()
    for worker in workers:
        for gpu in worker.gpus:
            growing_tflops[gpu] += wanted.tflops_milli > worker.grant.tflops_milli
            growing_vram[gpu] += wanted.vram_bytes > worker.grant.vram_bytes
    after = dict(ledger)
    changes: list[WorkerChange] = []
    for worker in workers:
        before = worker.grant
        tflops = _capped(
            wanted.tflops_milli, before.tflops_milli, worker.gpus, ledger=ledger, growing=growing_tflops, kind="t"
        )
        vram = _capped(wanted.vram_bytes, before.vram_bytes, worker.gpus, ledger=ledger, growing=growing_vram, kind="v")
        new = Grant(tflops, vram, max(wanted.tflops_limit_milli, tflops), max(wanted.vram_limit_bytes, vram))
        if new == before:
            continue
        capped = tflops < wanted.tflops_milli or vram < wanted.vram_bytes
        for gpu in worker.gpus:
            if gpu in after:
                entry = after[gpu]
                after[gpu] = replace(
                    entry,
                    allocated_tflops_milli=entry.allocated_tflops_milli + tflops - before.tflops_milli,
                    allocated_vram_bytes=entry.allocated_vram_bytes + vram - before.vram_bytes,
                )
        changes.append(WorkerChange(worker.key, worker.gpus, before, new, capped))
    return ApplyPlan(tuple(changes), after)


def _capped(
    wanted: int,
    current: int,
    gpus: tuple[str, ...],
    *,
    ledger: Mapping[str, GPULedger],
    growing: Counter[str],
    kind: str,
) -> int:
    if wanted <= current:
        return wanted
    growth = wanted - current
    for gpu in gpus:
        entry = ledger.get(gpu)
        if entry is None:
            return current
        if kind == "t":
            free = entry.tflops_milli - entry.allocated_tflops_milli
        else:
            free = entry.vram_bytes - entry.allocated_vram_bytes
        growth = min(growth, max(0, free) // growing[gpu])
    if kind == "v" and current + growth != wanted:
        growth -= (current + growth) % MIB  # annotations are whole MiB: never round up past the cap
    return current + max(0, growth)


def _changed(old: Mapping[str, str], new: Mapping[str, str]) -> dict[str, str]:
    return {key: value for key, value in new.items() if old.get(key) != value}
