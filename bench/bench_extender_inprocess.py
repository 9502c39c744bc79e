"""The extender's verbs in process, per pod: filter, prioritize and bind, as bench_extender drives them.

Same fleet and pods as bench/bench_extender.py (1,000 nodes x 8 GPUs half full, one pod after
another: filter with all node names, prioritize with the feasible ones, bind on the best), but
the service's methods are called directly: no HTTP, no second process. On a shared machine the
HTTP figures swing by 2x with other people's jobs; per-verb medians and minimums in process
move by a few percent, so this is where a change of a few microseconds shows.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from typing import Any

import msgspec

from bench.bench_extender import GPUS, NODES, fleet, pod
from daemons.scheduler.memory import MemoryCluster
from daemons.scheduler.mirror import ClusterMirror
from daemons.scheduler.service import SchedulerService
from tfcore.sched import Allocator, pod_request
from tfcore.sched.extender.wire import binding_decoder, encoded_args_decoder

VERBS = ("filter", "prioritize", "bind")


async def _measure(reuse: bool, pods: int, warmup: int) -> dict[str, Any]:
    service = SchedulerService(Allocator(), reuse_decisions=reuse)
    cluster = MemoryCluster(fleet())
    cluster.attach(ClusterMirror(service))
    for i in range(NODES * GPUS):
        gpu = f"node-{i // GPUS:04d}-gpu-{i % GPUS}"
        service.allocator.allocate(pod_request(pod(f"fill-{i}", "100", "40Gi")), [gpu])
    for i in range(pods + warmup):
        cluster.apply(pod(f"p{i}", "10", "2Gi"))
    names = [f"node-{i:04d}" for i in range(NODES)]
    encode = msgspec.json.encode
    timings: dict[str, list[float]] = {verb: [] for verb in VERBS}
    gc.collect()
    gc.freeze()
    for i in range(pods + warmup):
        p = pod(f"p{i}", "10", "2Gi")
        body = encode({"Pod": p, "Nodes": None, "NodeNames": names})
        t0 = time.perf_counter()
        filtered = service.filter_reply(encoded_args_decoder.decode(body))
        t1 = time.perf_counter()
        fits = msgspec.json.decode(filtered.body)["NodeNames"]
        body = encode({"Pod": p, "Nodes": None, "NodeNames": fits})
        t2 = time.perf_counter()
        scores = msgspec.json.decode(service.prioritize(encoded_args_decoder.decode(body)))
        t3 = time.perf_counter()
        best = max(scores, key=lambda s: s["Score"])["Host"]
        meta = p["metadata"]
        binding = {"PodName": meta["name"], "PodNamespace": "bench", "PodUID": meta["uid"], "Node": best}
        result = await service.bind(binding_decoder.decode(encode(binding)), cluster)
        t4 = time.perf_counter()
        if result.error:
            raise RuntimeError(result.error)
        if i >= warmup:
            for verb, seconds in zip(VERBS, (t1 - t0, t3 - t2, t4 - t3), strict=True):
                timings[verb].append(seconds)
    gc.unfreeze()
    out: dict[str, Any] = {}
    for verb, values in timings.items():
        values.sort()
        out[verb] = {"p50_us": round(values[len(values) // 2] * 1e6, 1), "min_us": round(values[0] * 1e6, 1)}
    return out


def main() -> None:
    line = {
        "bench": "extender_inprocess",
        "nodes": NODES,
        "gpus_per_node": GPUS,
        "reuse": asyncio.run(_measure(True, pods=500, warmup=100)),
        "naive": asyncio.run(_measure(False, pods=120, warmup=40)),
    }
    print(json.dumps(line))


if __name__ == "__main__":
    main()
