"""Extender filter latency while the admin API parses large bodies: inline vs offloaded.

The scheduler daemon (admin API and extender on one event loop) runs in a child process.
This process sends sequential extender /filter calls (100 node names) while 8 threads keep
POSTing 1 MiB YAML pods to /api/simulate-schedule. "inline" parses admin bodies on the event
loop (the behaviour before issue 13); "offload" is the daemon as shipped (large bodies parsed
in a worker process, bounded). Reported: median and p95 filter latency idle and under load,
and the ratio of loaded p50, inline over offload.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import msgspec

from bench.bench_extender import Connection
from bench.bench_extender import fleet as extender_fleet

NODES, GPUS, ADMIN_THREADS, SAMPLES = 100, 2, 8, 60


def fleet() -> list[dict[str, Any]]:
    return extender_fleet(NODES, GPUS)


def big_pod_yaml(size: int = 1024**2 - 4096) -> bytes:
    """A Pod of about 1 MiB as YAML: many annotations, as a careless operator might send."""
    head = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: big\n  annotations:\n"
    line = "    note-{:06d}: " + "x" * 80 + "\n"
    lines = [head]
    total, i = len(head), 0
    while total + len(line) + 40 < size:
        lines.append(line.format(i))
        total += len(line) + 2
        i += 1
    lines.append("spec:\n  containers:\n  - name: main\n    image: busybox\n")
    return "".join(lines).encode()


# ---- the daemon side (child process) ---------------------------------------------------------


async def _serve(mode: str) -> None:
    from daemons.scheduler.http import admin_app, extender_app  # noqa: PLC0415
    from daemons.scheduler.memory import MemoryCluster  # noqa: PLC0415
    from daemons.scheduler.mirror import ClusterMirror  # noqa: PLC0415
    from daemons.scheduler.service import SchedulerService  # noqa: PLC0415
    from tfcore.sched import Allocator  # noqa: PLC0415
    from tfcore.web.app import Listener, start  # noqa: PLC0415
    from tfcore.web.offload import Offload  # noqa: PLC0415

    service = SchedulerService(Allocator())
    cluster = MemoryCluster(fleet())
    cluster.attach(ClusterMirror(service))
    offload = Offload(inline_below=1 << 62) if mode == "inline" else Offload()
    served = await start(
        [
            (admin_app(service, offload=offload), Listener("127.0.0.1", 0)),
            (extender_app(service, cluster), Listener("127.0.0.1", 0)),
        ]
    )
    admin_port, extender_port = (a[1] for a in served.addresses())
    print(json.dumps({"admin": admin_port, "extender": extender_port}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes stdin
    await served.close()


# ---- the clients ------------------------------------------------------------------------------


def _filter_latencies(port: int, samples: int) -> list[float]:
    names = [f"node-{i:04d}" for i in range(NODES)]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "q", "namespace": "b", "uid": "u"}, "spec": {}}
    body = msgspec.json.encode({"Pod": pod, "Nodes": None, "NodeNames": names})
    connection = Connection(port)
    out: list[float] = []
    try:
        for _ in range(samples):
            t0 = time.perf_counter()
            connection.post("/filter", body)
            out.append(time.perf_counter() - t0)
            time.sleep(0.01)
    finally:
        connection.close()
    return out


def _admin_load(port: int, body: bytes, stop: threading.Event) -> None:
    while not stop.is_set():
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/simulate-schedule", data=body, headers={"Content-Type": "application/yaml"}
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            exc.close()  # 429 when the bound is reached: the load keeps coming


def _measure(mode: str) -> dict[str, float]:
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.bench_admin_isolation", "serve", mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdin is not None
    ports = json.loads(child.stdout.readline())
    try:
        idle = _filter_latencies(ports["extender"], SAMPLES // 2)
        stop = threading.Event()
        body = big_pod_yaml()
        threads = [
            threading.Thread(target=_admin_load, args=(ports["admin"], body, stop)) for _ in range(ADMIN_THREADS)
        ]
        for thread in threads:
            thread.start()
        time.sleep(1.0)  # the load is on
        loaded = _filter_latencies(ports["extender"], SAMPLES)
        stop.set()
        for thread in threads:
            thread.join()
    finally:
        child.stdin.close()
        child.wait(timeout=60)
    loaded.sort()
    return {
        "idle_p50_ms": round(statistics.median(idle) * 1000, 2),
        "loaded_p50_ms": round(statistics.median(loaded) * 1000, 2),
        "loaded_p95_ms": round(loaded[int(len(loaded) * 0.95) - 1] * 1000, 2),
    }


def main() -> None:
    inline, offload = _measure("inline"), _measure("offload")
    print(
        json.dumps(
            {
                "bench": "admin_isolation_filter_latency",
                "admin_load": f"{ADMIN_THREADS} concurrent 1 MiB YAML simulate-schedule",
                **{f"inline_{k}": v for k, v in inline.items()},
                **{f"offload_{k}": v for k, v in offload.items()},
                "ratio_loaded_p50_inline_over_offload": round(inline["loaded_p50_ms"] / offload["loaded_p50_ms"], 1),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        import uvloop

        uvloop.run(_serve(sys.argv[2]))
    else:
        main()
