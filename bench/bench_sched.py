"""Scheduling decisions per second in process: tfcore.sched vs a naive full scan.

Two fleets: 500 nodes x 6 GPUs (filling up from empty) and 1,000 nodes x 8 GPUs kept half
full. Each decision is one Framework.schedule() of a fractional pod (filter, score, pick GPUs,
allocate) followed by one release of an earlier pod, so the fleet keeps churning. The naive
baseline is the straightforward implementation of the same policy: every pod, every node,
every GPU, scores recomputed from scratch. Both see the same pods; the line also says whether
they made the same choices.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from tfcore.sched import Allocator, Framework, GPUSpec, NodeSpec, PodRequest, PoolInfo, default_registry
from tfcore.sched.framework import PluginUse
from tfcore.sched.plugins import GPUResourcesFitArgs, TopologyArgs

GiB = 1024**3
T = 1000
GPU_TFLOPS = 312 * T
GPU_VRAM = 80 * GiB
OVERSELL = 300
ARGS = GPUResourcesFitArgs()


def _fleet(nodes: int, gpus: int) -> Allocator:
    pool = PoolInfo("shared", tflops_oversell_ratio=OVERSELL, vram_expand_to_host_mem=0, vram_expand_to_host_disk=0)
    node_specs = [NodeSpec(f"node-{i:05d}", "shared") for i in range(nodes)]
    gpu_specs = [
        GPUSpec(
            f"gpu-{i:05d}-{j}", f"node-{i:05d}", GPU_TFLOPS, GPU_VRAM, index=j, model="NVIDIA A100", vendor="NVIDIA"
        )
        for i in range(nodes)
        for j in range(gpus)
    ]
    return Allocator.build([pool], node_specs, gpu_specs, default_pool="shared")


def _pods(count: int, seed: int) -> list[PodRequest]:
    rng = random.Random(seed)
    pods = []
    for n in range(count):
        tflops, vram = rng.randint(5, 120) * T, rng.randint(1, 24) * GiB
        pods.append(PodRequest(f"pod-{seed}-{n}", tflops=tflops, tflops_limit=tflops, vram=vram, vram_limit=vram))
    return pods


def _prefill(allocator: Allocator, fraction: float, seed: int) -> list[str]:
    """Fill every GPU to about `fraction` of its VRAM with random pods placed directly."""
    rng = random.Random(seed)
    keys = []
    for gpu in list(allocator.gpus.values()):
        n = 0
        while True:
            vram = rng.randint(1, 12) * GiB
            tflops = rng.randint(5, 120) * T
            pod = PodRequest(f"fill-{gpu.name}-{n}", tflops=tflops, tflops_limit=tflops, vram=vram, vram_limit=vram)
            n += 1
            if gpu.used_vram + vram > fraction * gpu.virtual_vram or allocator.check(pod, [gpu]) is not None:
                break
            allocator.allocate(pod, [gpu.name])
            keys.append(pod.key)
    return keys


# ---- the naive baseline ---------------------------------------------------------------------


@dataclass
class NaiveGPU:
    name: str
    node: str
    index: int
    virtual_tflops: int
    virtual_vram: int
    used_tflops: int = 0
    used_vram: int = 0


class NaiveScheduler:
    """Straightforward: per pod, scan every node and GPU and recompute every score."""

    def __init__(self, allocator: Allocator) -> None:
        self.nodes: dict[str, list[NaiveGPU]] = {}
        copies: dict[str, NaiveGPU] = {}
        for gpu in allocator.gpus.values():
            copy = copies[gpu.name] = NaiveGPU(
                gpu.name, gpu.node.name, gpu.spec.index, gpu.virtual_tflops, gpu.virtual_vram
            )
            copy.used_tflops, copy.used_vram = gpu.used_tflops, gpu.used_vram
            self.nodes.setdefault(gpu.node.name, []).append(copy)
        self.held: dict[str, tuple[NaiveGPU, int, int]] = {
            key: (copies[a.shares[0].gpu], a.shares[0].tflops, a.shares[0].vram)
            for key, a in allocator.allocations.items()
        }

    @staticmethod
    def _score(gpu: NaiveGPU, used: bool) -> int:
        vram = gpu.used_vram if used else gpu.virtual_vram - gpu.used_vram
        tflops = gpu.used_tflops if used else gpu.virtual_tflops - gpu.used_tflops
        value = (
            100.0 * vram / gpu.virtual_vram * ARGS.vram_weight
            + 100.0 * tflops / gpu.virtual_tflops * ARGS.tflops_weight
        )
        return max(0, min(100, int(value + 0.5)))

    def schedule(self, pod: PodRequest) -> tuple[str, str] | None:
        best: tuple[int, str] | None = None
        best_gpus: list[NaiveGPU] = []
        for name in sorted(self.nodes):
            gpus = self.nodes[name]
            fits = [
                g
                for g in gpus
                if g.virtual_tflops - g.used_tflops >= pod.tflops and g.virtual_vram - g.used_vram >= pod.vram
            ]
            if not fits:
                continue
            scores = [self._score(g, used=True) for g in gpus]
            score = (2 * sum(scores) + len(scores)) // (2 * len(scores))
            if best is None or score > best[0]:
                best, best_gpus = (score, name), fits
        if best is None:
            return None
        gpu = sorted(best_gpus, key=lambda g: (-self._score(g, used=False), g.index))[0]
        gpu.used_tflops += pod.tflops
        gpu.used_vram += pod.vram
        self.held[pod.key] = (gpu, pod.tflops, pod.vram)
        return best[1], gpu.name

    def release(self, key: str) -> None:
        held = self.held.pop(key, None)
        if held is not None:
            gpu, tflops, vram = held
            gpu.used_tflops -= tflops
            gpu.used_vram -= vram


# ---- the runs --------------------------------------------------------------------------------


Choice = tuple[str, str] | None


def _churn(
    schedule: Callable[[PodRequest], Choice],
    release: Callable[[str], object],
    pods: list[PodRequest],
    live: list[str] | None,
    seed: int,
) -> tuple[float, list[Choice]]:
    """Schedule each pod, then (with `live`) release one random live pod; return (decisions/s, choices)."""
    rng = random.Random(seed)
    choices = []
    start = time.perf_counter()
    for pod in pods:
        choices.append(schedule(pod))
        if live is None:
            continue
        if live:
            release(live.pop(rng.randrange(len(live))))
        if choices[-1] is not None:
            live.append(pod.key)
    return len(pods) / (time.perf_counter() - start), choices


def _framework(allocator: Allocator) -> Framework:
    uses = [PluginUse("GPUResourcesFit", ARGS), PluginUse("GPUNetworkTopologyAware", TopologyArgs())]
    return Framework(allocator, uses, default_registry())


def _run(label: str, nodes: int, gpus: int, *, fill: float, ours_pods: int, naive_pods: int) -> None:
    allocator = _fleet(nodes, gpus)
    live = _prefill(allocator, fill, seed=1) if fill else []
    naive = NaiveScheduler(allocator)
    framework = _framework(allocator)

    def ours(pod: PodRequest) -> Choice:
        result = framework.schedule(pod)
        return (result.node, result.gpus[0]) if result.ok and result.node else None

    pods = _pods(max(ours_pods, naive_pods), seed=2)
    # Same pods and releases for the first naive_pods decisions: compare the choices, then go on.
    churn = fill > 0  # a half-full fleet churns (one release per decision); an empty one fills up
    naive_rate, naive_choices = _churn(
        naive.schedule, naive.release, pods[:naive_pods], list(live) if churn else None, 3
    )
    ours_live = list(live) if churn else None
    _, ours_choices = _churn(ours, allocator.release, pods[:naive_pods], ours_live, seed=3)
    ours_rate, _ = _churn(ours, allocator.release, pods[naive_pods:ours_pods], ours_live, seed=4)
    used = sum(g.used_vram for g in allocator.gpus.values()) / sum(g.virtual_vram for g in allocator.gpus.values())
    print(
        json.dumps(
            {
                "bench": f"sched_decisions_{label}",
                "nodes": nodes,
                "gpus": nodes * gpus,
                "vram_used_fraction": round(used, 2),
                "ours_decisions_per_s": round(ours_rate),
                "naive_decisions_per_s": round(naive_rate),
                "ratio_ours_over_naive": round(ours_rate / naive_rate, 1),
                "same_choices_as_naive": ours_choices == naive_choices,
                "go_reference_laptop_per_s": 2346,
            }
        )
    )


def main() -> None:
    _run("500x6", 500, 6, fill=0.0, ours_pods=6000, naive_pods=300)
    _run("1000x8_half_full", 1000, 8, fill=0.5, ours_pods=6000, naive_pods=150)


if __name__ == "__main__":
    main()
