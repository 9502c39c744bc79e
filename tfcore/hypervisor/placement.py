"""The local allocator of standalone mode: one node, its GPUs, the tfcore.sched Allocator.

Placement picks the GPUs with the most free compute that fit the request, and when nothing
fits says exactly what is short (compute, memory or GPUs), with the best figures on offer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tfcore.sched import Allocation, AllocationError, Allocator, GPUSpec, NodeSpec, PodRequest, PoolInfo
from tfcore.sched.state import GPUState
from tfcore.sched.units import bytes_text

NODE = "local"
POOL = "local"


@dataclass(frozen=True, slots=True)
class LocalGPU:
    uuid: str
    index: int
    name: str
    tflops_milli: int
    vram_bytes: int


class DoesNotFit(ValueError):
    """A request the node cannot hold; the message names what is short."""


def local_allocator(gpus: Sequence[LocalGPU], *, tflops_oversell_percent: int = 100) -> Allocator:
    """Requests may add up to the physical TFLOPS (times the oversell ratio) and VRAM: no host
    tiers here, so a guarantee on this node is a real one by default."""
    pool = PoolInfo(
        POOL, tflops_oversell_ratio=tflops_oversell_percent, vram_expand_to_host_mem=0, vram_expand_to_host_disk=0
    )
    specs = [
        GPUSpec(g.uuid, NODE, g.tflops_milli, g.vram_bytes, index=g.index, model=g.name, uuid=g.uuid) for g in gpus
    ]
    return Allocator.build([pool], [NodeSpec(NODE, POOL)], specs, default_pool=POOL)


def place(allocator: Allocator, request: PodRequest, gpus: Sequence[str] = ()) -> Allocation:
    """Allocates `request` on the named GPUs, or on the best-fitting ones; DoesNotFit says why not."""
    if gpus:
        try:
            return allocator.allocate(request, list(gpus))
        except AllocationError as exc:
            raise DoesNotFit(str(exc)) from exc
    candidates = [g for g in allocator.gpus.values() if g.spec.schedulable and not g.dedicated]
    if len(candidates) < request.gpu_count:
        raise DoesNotFit(f"asked for {request.gpu_count} GPU(s); this node has {len(candidates)}")
    fitting = []
    for gpu in candidates:
        tflops, vram, _, _ = request.amounts_on(gpu)
        if tflops <= gpu.free_tflops and vram <= gpu.free_vram:
            fitting.append(gpu)
    if len(fitting) < request.gpu_count:
        raise DoesNotFit(_shortage(request, candidates, len(fitting)))
    fitting.sort(key=lambda g: (-g.free_tflops, -g.free_vram, g.spec.index))
    chosen = sorted(fitting[: request.gpu_count], key=lambda g: g.spec.index)
    try:
        return allocator.allocate(request, [g.name for g in chosen])
    except AllocationError as exc:
        raise DoesNotFit(str(exc)) from exc


def tflops_text(milli: int) -> str:
    """Milli-TFLOPS for people: "989.4", "100"."""
    return f"{milli / 1000:.3f}".rstrip("0").rstrip(".")


def _shortage(request: PodRequest, states: Sequence[GPUState], fitting: int) -> str:
    best_tflops = max(states, key=lambda g: g.free_tflops)
    best_vram = max(states, key=lambda g: g.free_vram)
    tflops, vram, _, _ = request.amounts_on(best_tflops)
    short = []
    if tflops > best_tflops.free_tflops:
        short.append(
            f"compute: asked {tflops_text(tflops)} TFLOPS per GPU, the most free on one GPU is "
            f"{tflops_text(max(0, best_tflops.free_tflops))} TFLOPS (GPU {best_tflops.spec.index}, "
            f"{tflops_text(best_tflops.virtual_tflops)} TFLOPS in all)"
        )
    if vram > best_vram.free_vram:
        short.append(
            f"memory: asked {bytes_text(vram)} VRAM per GPU, the most free on one GPU is "
            f"{bytes_text(max(0, best_vram.free_vram))} (GPU {best_vram.spec.index}, "
            f"{bytes_text(best_vram.virtual_vram)} in all)"
        )
    if not short:
        short.append(
            f"GPUs: asked for {request.gpu_count} GPU(s) with {tflops_text(tflops)} TFLOPS and {bytes_text(vram)} "
            f"free each; {fitting} have that much"
        )
    return "does not fit on this node: " + "; ".join(short)
