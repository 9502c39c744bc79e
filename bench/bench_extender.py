"""kube-scheduler extender over real HTTP at 1,000 nodes x 8 GPUs: reused decisions vs a naive full scan.

The daemon's extender app runs in a child process (uvloop, in-memory cluster, half full:
one 100-TFLOPS/40-GiB pod per GPU); this process plays kube-scheduler with one keep-alive
connection: per pod, POST /filter with all 1,000 node names, POST /prioritize with the
feasible ones, POST /bind on the best-scored node, one pod after the other (kube-scheduler's
cycle is sequential). Latency is that whole cycle, the client's encoding and decoding
included. The client is a minimal blocking HTTP/1.1 client with msgspec, so that what is
measured is the daemon (kube-scheduler is Go; an aiohttp client costs more than our server).
"naive" is the same daemon and HTTP layer with decision reuse off: every filter and prioritize
runs every plugin on every node. The API server is not part of this (bind writes to the in-memory cluster).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import socket
import subprocess
import sys
import time
from operator import attrgetter
from typing import Any

import msgspec
import uvloop

from daemons.scheduler.heap import settle_heap
from daemons.scheduler.http import extender_app
from daemons.scheduler.memory import MemoryCluster
from daemons.scheduler.mirror import ClusterMirror
from daemons.scheduler.service import SchedulerService
from tfcore.sched import Allocator, pod_request
from tfcore.web.app import Listener, start

NODES, GPUS, PODS, WARMUP = 1000, 8, 1000, 50


def fleet(nodes: int = NODES, gpus: int = GPUS) -> list[dict[str, Any]]:
    """One pool of `nodes` GPUNodes with `gpus` A100s each (node-0000, node-0000-gpu-0, ...)."""
    over = {"tflopsOversellRatio": 300, "vramExpandToHostMem": 0, "vramExpandToHostDisk": 0}
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "tensor-fusion.ai/v1",
            "kind": "GPUPool",
            "metadata": {"name": "shared"},
            "spec": {"capacityConfig": {"oversubscription": over}},
        }
    ]
    for i in range(nodes):
        name = f"node-{i:04d}"
        labels = {"tensor-fusion.ai/gpupool": "shared"}
        objects.append(
            {"apiVersion": "tensor-fusion.ai/v1", "kind": "GPUNode", "metadata": {"name": name, "labels": labels}}
        )
        for j in range(gpus):
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
    settle_heap()
    served = await start([(extender_app(service, cluster), Listener("127.0.0.1", port))])
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes stdin
    await served.close()


# ---- the kube-scheduler side ------------------------------------------------------------------


class HostScore(msgspec.Struct, rename="pascal", gc=False):
    host: str
    score: int


class FilterReply(msgspec.Struct, rename="pascal"):
    node_names: list[str] | None = None
    error: str = ""


class BindReply(msgspec.Struct, rename="pascal"):
    error: str = ""


class Connection:
    """One keep-alive HTTP/1.1 connection with TCP_NODELAY, as Go's net/http client opens it.

    Deliberately minimal (blocking socket, Content-Length bodies only) so that the client's own
    overhead stays small next to the daemon's, as kube-scheduler's (Go) does.
    """

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = bytearray(1 << 20)  # replies are read into this, never reallocated
        self.view = memoryview(self.buffer)
        self.filled = 0  # bytes of self.buffer holding data not consumed yet

    def post(self, path: str, body: bytes) -> bytes:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.sock.sendall(head.encode() + body)
        while (end := self.buffer.find(b"\r\n\r\n", 0, self.filled)) < 0:
            self._receive()
        headers = bytes(self.view[:end]).decode("latin-1").split("\r\n")
        if headers[0].split(" ", 2)[1] != "200":
            raise RuntimeError(f"{path}: {headers[0]}")
        length = next(int(h.split(":", 1)[1]) for h in headers[1:] if h.lower().startswith("content-length:"))
        start = end + 4
        while self.filled < start + length:
            self._receive()
        reply = bytes(self.view[start : start + length])
        rest = self.filled - start - length
        self.buffer[:rest] = self.view[start + length : self.filled]
        self.filled = rest
        return reply

    def _receive(self) -> None:
        received = self.sock.recv_into(self.view[self.filled :])
        if not received:
            raise ConnectionError("the daemon closed the connection")
        self.filled += received

    def close(self) -> None:
        self.sock.close()


def _drive(port: int) -> dict[str, float]:
    names = [f"node-{i:04d}" for i in range(NODES)]
    filter_reply, scores_reply, bind_reply = (
        msgspec.json.Decoder(FilterReply),
        msgspec.json.Decoder(list[HostScore]),
        msgspec.json.Decoder(BindReply),
    )
    encode = msgspec.json.encode
    by_score = attrgetter("score")
    latencies: list[float] = []
    gc.collect()
    gc.freeze()  # the client's own collections are not what is measured
    connection = Connection(port)
    started = 0.0
    try:
        for i in range(PODS + WARMUP):
            if i == WARMUP:
                started = time.perf_counter()
            t0 = time.perf_counter()
            p = pod(f"p{i}", "10", "2Gi")
            filtered = filter_reply.decode(
                connection.post("/filter", encode({"Pod": p, "Nodes": None, "NodeNames": names}))
            )
            if filtered.error or not filtered.node_names:
                raise RuntimeError(f"filter: {filtered.error or 'no node fits'}")
            scores = scores_reply.decode(
                connection.post("/prioritize", encode({"Pod": p, "Nodes": None, "NodeNames": filtered.node_names}))
            )
            best = max(scores, key=by_score).host  # one node gets 10: ours
            meta = p["metadata"]
            binding = {"PodName": meta["name"], "PodNamespace": "bench", "PodUID": meta["uid"], "Node": best}
            result = bind_reply.decode(connection.post("/bind", encode(binding)))
            if result.error:
                raise RuntimeError(result.error)
            if i >= WARMUP:
                latencies.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - started
    finally:
        connection.close()
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
        return _drive(port)
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
