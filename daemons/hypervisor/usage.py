"""tf_worker_usage and tf_gpu_usage points from the node's live figures, for the metrics store."""

from __future__ import annotations

import socket

from daemons.hypervisor.node import Node
from tfcore.metrics.lineproto import Point

POOL = "local"
NAMESPACE = "default"


def usage_points(node: Node, time_ns: int) -> list[Point]:
    host = socket.gethostname()
    points = []
    for uuid, gpu in node.gpus.items():
        rated = node.rated[uuid]
        busy = node.device_utilization.get(uuid, 0)
        used = sum(
            w.region.devices()[w.record.gpus.index(uuid)].vram_used_bytes
            for w in node.workers.values()
            if uuid in w.usage
        )
        points.append(
            Point(
                "tf_gpu_usage",
                {"node": host, "pool": POOL, "uuid": uuid, "model": gpu.name},
                {
                    "compute_percentage": float(busy),
                    "compute_tflops": busy / 100.0 * rated,
                    "memory_bytes": used,
                    "memory_percentage": 100.0 * used / gpu.vram_bytes if gpu.vram_bytes else 0.0,
                    "worker_count": sum(1 for w in node.workers.values() if uuid in w.usage),
                },
                time_ns,
            )
        )
    for worker in node.workers.values():
        devices = worker.region.devices()
        # Freezes and resumes since the last sample (the built-in rule sums them per interval);
        # tier bytes are the worker's, put on its first GPU (moves are per process, not per GPU).
        books = worker.tiers
        freezes, resumes = books.freezes - books.sampled_freezes, books.resumes - books.sampled_resumes
        books.sampled_freezes, books.sampled_resumes = books.freezes, books.resumes
        for device, (uuid, usage) in enumerate(worker.usage.items()):
            used = devices[device].vram_used_bytes
            limit = worker.record.spec.vram_limit_bytes
            namespace, name = worker.pod or (NAMESPACE, worker.record.name)
            points.append(
                Point(
                    "tf_worker_usage",
                    {
                        "workload": worker.record.spec.workload or name,
                        "worker": name,
                        "namespace": namespace,
                        "pool": POOL,
                        "node": host,
                        "uuid": uuid,
                    },
                    {
                        "compute_percentage": 100.0 * usage.utilization,
                        "compute_tflops": usage.utilization * node.rated[uuid],
                        "memory_bytes": used,
                        "memory_percentage": 100.0 * used / limit if limit else 0.0,
                        "compute_throttled_cnt": usage.throttled,
                        "vram_freezed_cnt": freezes if device == 0 else 0,
                        "vram_resumed_cnt": resumes if device == 0 else 0,
                        "vram_host_bytes": books.host_bytes if device == 0 else 0,
                        "vram_disk_bytes": books.disk_bytes if device == 0 else 0,
                    },
                    time_ns,
                )
            )
    return points
