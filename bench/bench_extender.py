"""kube-scheduler extender over real HTTP at 1,000 nodes x 8 GPUs: reused decisions vs a naive full scan.

The daemon's extender app runs in a child process (uvloop, in-memory cluster, half full:
one 100-TFLOPS/40-GiB pod per GPU); this process plays kube-scheduler with one keep-alive
connection: per pod, POST /filter with all 1,000 node names, POST /prioritize with the
feasible ones, POST /bind on the best-scored node, one pod after the other (kube-scheduler's
cycle is sequential). Latency is that whole cycle. "naive" is the same daemon and HTTP layer
with decision reuse off: every filter and prioritize runs every plugin on every node.
The API server is not part of this (bind writes to the in-memory cluster).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from typing import Any

import aiohttp
import uvloop

from daemons.scheduler.http import extender_app
from daemons.scheduler.memory import MemoryCluster
from daemons.scheduler.mirror import ClusterMirror
from daemons.scheduler.service import SchedulerService
from tfcore.sched import Allocator, pod_request
from tfcore.web.app import Listener, start

NODES, GPUS, PODS, WARMUP = 1000, 8, 1000, 50


def fleet() -> list[dict[str, Any]]:
    over = {"tflopsOversellRatio": 300, "vramExpandToHostMem": 0, "vramExpandToHostDisk": 0}
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "tensor-fusion.ai/v1",
            "kind": "GPUPool",
            "metadata": {"name": "shared"},
            "spec": {"capacityConfig": {"oversubscription": over}},
        }
    ]
    for i in range(NODES):
        name = f"node-{i:04d}"
        labels = {"tensor-fusion.ai/gpupool": "shared"}
        objects.append(
            {"apiVersion": "tensor-fusion.ai/v1", "kind": "GPUNode", "metadata": {"name": name, "labels": labels}}
        )
        for j in range(GPUS):
            status = {
                "phase": "Running",
                "gpuModel": "NVIDIA A100",
                "vendor": "NVIDIA",
                "index": j,
                "capacity": {"tflops": "312", "vram": "80Gi"},
                "nodeSelector": {"kubernetes.io/hostname": name},
            }
            meta = {"name": f"{name}-gpu-{j}", "labels": labels}
            objects.append({"apiVersion": "tensor-fusion.ai/v1", "kind": "GPU", "metadata": meta, "status": status})
    return objects


def pod(name: str, tflops: str, vram: str) -> dict[str, Any]:
    annotations = {
        "tensor-fusion.ai/tflops-request": tflops,
        "tensor-fusion.ai/vram-request": vram,
        "tensor-fusion.ai/tflops-limit": tflops,
        "tensor-fusion.ai/vram-limit": vram,
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "bench", "uid": f"uid-{name}", "annotations": annotations},
        "spec": {"schedulerName": "tensor-fusion-scheduler", "containers": [{"name": "c", "image": "cuda"}]},
    }


# ---- the daemon side (child process) ---------------------------------------------------------


async def _serve(port: int, reuse: bool) -> None:
    service = SchedulerService(Allocator(), reuse_decisions=reuse)
    cluster = MemoryCluster(fleet())
    cluster.attach(ClusterMirror(service))
    for i in range(NODES * GPUS):  # half full: one 100 TFLOPS / 40 GiB pod per GPU
        gpu = f"node-{i // GPUS:04d}-gpu-{i % GPUS}"
        service.allocator.allocate(pod_request(pod(f"fill-{i}", "100", "40Gi")), [gpu])
    for i in range(PODS + WARMUP):
        cluster.apply(pod(f"p{i}", "10", "2Gi"))
    served = await start([(extender_app(service, cluster), Listener("127.0.0.1", port))])
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes stdin
    await served.close()


# ---- the kube-scheduler side ------------------------------------------------------------------


async def _drive(port: int) -> dict[str, float]:
    names = [f"node-{i:04d}" for i in range(NODES)]
    base = f"http://127.0.0.1:{port}"
    latencies: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:

        async def call(verb: str, body: Any) -> Any:
            async with session.post(
                f"{base}/{verb}", data=json.dumps(body), headers={"Content-Type": "application/json"}
            ) as r:
                return await r.json()

        started = 0.0
        for i in range(PODS + WARMUP):
            if i == WARMUP:
                started = time.perf_counter()
            t0 = time.perf_counter()
            p = pod(f"p{i}", "10", "2Gi")
            filtered = await call("filter", {"Pod": p, "Nodes": None, "NodeNames": names})
            feasible = filtered["NodeNames"]
            scores = await call("prioritize", {"Pod": p, "Nodes": None, "NodeNames": feasible})
            best = max(scores, key=lambda s: s["Score"])["Host"]  # one node gets 10: ours
            meta = p["metadata"]
            result = await call(
                "bind", {"PodName": meta["name"], "PodNamespace": "bench", "PodUID": meta["uid"], "Node": best}
            )
            if result.get("Error"):
                raise RuntimeError(result["Error"])
            if i >= WARMUP:
                latencies.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "pods_per_s": round(PODS / elapsed, 1),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 3),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 3),
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _measure(reuse: bool) -> dict[str, float]:
    port = _free_port()
    env = dict(os.environ, PYTHONHASHSEED="0")
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.bench_extender", "--serve", str(port), "reuse" if reuse else "naive"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        return asyncio.run(_drive(port))
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)


def main() -> None:
    reuse = _measure(True)
    naive = _measure(False)
    line = {
        "bench": "extender_http",
        "nodes": NODES,
        "gpus_per_node": GPUS,
        "pods": PODS,
        "reuse": reuse,
        "naive": naive,
        "throughput_ratio": round(reuse["pods_per_s"] / naive["pods_per_s"], 2),
        "targets_met": reuse["pods_per_s"] >= 1000 and reuse["p99_ms"] < 5.0,
    }
    print(json.dumps(line))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        uvloop.run(_serve(int(sys.argv[2]), sys.argv[3] == "reuse"))
    else:
        main()
