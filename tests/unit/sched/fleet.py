"""Small fleets for scheduler tests, built directly from specs."""

from __future__ import annotations

from typing import Any

from tfcore.sched import Allocator, Framework, GPUSpec, NodeSpec, PodRequest, PoolInfo, default_registry
from tfcore.sched.framework import PluginUse
from tfcore.sched.plugins import GPUResourcesFitArgs, TopologyArgs

GiB = 1024**3
T = 1000  # milli-TFLOPS per TFLOPS


def plain_pool(name: str = "shared") -> PoolInfo:
    """No oversubscription: virtual capacity equals physical."""
    return PoolInfo(name, tflops_oversell_ratio=100, vram_expand_to_host_mem=0, vram_expand_to_host_disk=0)


def fleet(
    nodes: int = 3,
    gpus: int = 2,
    *,
    tflops: int = 100,
    vram_gib: int = 40,
    pool: PoolInfo | None = None,
    **node_fields: Any,
) -> Allocator:
    pool = pool or plain_pool()
    node_specs = [NodeSpec(f"node-{i}", pool.name, **node_fields) for i in range(nodes)]
    gpu_specs = [
        GPUSpec(f"gpu-{i}-{j}", f"node-{i}", tflops * T, vram_gib * GiB, index=j, model="NVIDIA A100", vendor="NVIDIA")
        for i in range(nodes)
        for j in range(gpus)
    ]
    return Allocator.build([pool], node_specs, gpu_specs, default_pool=pool.name)


def framework(
    allocator: Allocator,
    fit: GPUResourcesFitArgs | None = None,
    topology: TopologyArgs | None = None,
) -> Framework:
    uses = [
        PluginUse("GPUResourcesFit", fit or GPUResourcesFitArgs()),
        PluginUse("GPUNetworkTopologyAware", topology or TopologyArgs()),
    ]
    return Framework(allocator, uses, default_registry())


def pod(key: str, tflops: int = 10, vram_gib: int = 4, **fields: Any) -> PodRequest:
    amounts: dict[str, Any] = {"tflops": tflops * T, "tflops_limit": tflops * T}
    amounts |= {"vram": vram_gib * GiB, "vram_limit": vram_gib * GiB}
    return PodRequest(key, name=key, **(amounts | fields))
