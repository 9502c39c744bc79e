"""/metrics on the admin API: decisions, latency, filter rejections by reason, allocation per pool."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.daemons.scheduler.cluster import binding_args, extender_args, gpu_pod
from tests.daemons.scheduler.conftest import Setup

Client = TestClient[Any, Any]
NODES = ["node-0", "node-1", "node-2"]


async def _samples(admin: Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    reply = await admin.get("/metrics")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(await reply.text()):
        for sample in family.samples:
            out[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return out


async def test_metrics_count_decisions_rejections_and_pool_allocation(
    admin: Client, extender: Client, setup: Setup
) -> None:
    for i in range(2):  # fill node-1's two GPUs
        pod = gpu_pod(f"fill-{i}", uid=f"fill-{i}", tflops="312", vram="80Gi")
        setup.cluster.apply(pod)
        assert await (await extender.post("/bind", json=binding_args(pod, "node-1"))).json() == {}
    pod = gpu_pod("late", uid="late", tflops="10", vram="1Gi")
    setup.cluster.apply(pod)
    for _ in range(2):  # the second answer is the reused one: counted the same
        await extender.post("/filter", json=extender_args(pod, [*NODES, "cpu-only"]))
    await extender.post("/prioritize", json=extender_args(pod, ["node-0", "node-2"]))
    refused = await (await extender.post("/bind", json=binding_args(pod, "node-1"))).json()
    assert refused["Error"]

    samples = await _samples(admin)
    assert samples["tf_scheduler_decisions_total", (("result", "ok"), ("verb", "filter"))] == 2
    assert samples["tf_scheduler_decisions_total", (("result", "ok"), ("verb", "prioritize"))] == 1
    assert samples["tf_scheduler_decisions_total", (("result", "ok"), ("verb", "bind"))] == 2
    assert samples["tf_scheduler_decisions_total", (("result", "error"), ("verb", "bind"))] == 1
    assert samples["tf_scheduler_decision_seconds_count", (("verb", "filter"),)] == 2
    assert samples["tf_scheduler_decision_seconds_bucket", (("le", "+Inf"), ("verb", "bind"))] == 3
    assert samples["tf_scheduler_filter_rejections_total", (("reason", "GPUResourcesFit/resource"),)] == 2
    assert samples["tf_scheduler_filter_rejections_total", (("reason", "unmanaged-node"),)] == 2
    shared = (("pool", "shared"),)
    assert samples["tf_scheduler_pool_gpus", shared] == 6
    assert samples["tf_scheduler_pool_tflops_allocated", shared] == 624
    assert samples["tf_scheduler_pool_vram_allocated_bytes", shared] == 160 * 1024**3
    assert samples["tf_scheduler_pool_tflops_capacity", shared] == 6 * 312
    assert samples["tf_scheduler_pool_workers", shared] == 2


async def test_simulate_schedule_is_counted_with_bad_bodies_as_errors(admin: Client) -> None:
    headers = {"Content-Type": "application/json"}
    assert (await admin.post("/api/simulate-schedule", data=b"{", headers=headers)).status == 400
    ok = await admin.post("/api/simulate-schedule", json=gpu_pod("sim", uid="sim"))
    assert ok.status == 200
    samples = await _samples(admin)
    assert samples["tf_scheduler_decisions_total", (("result", "error"), ("verb", "simulate"))] == 1
    assert samples["tf_scheduler_decisions_total", (("result", "ok"), ("verb", "simulate"))] == 1
    assert samples["tf_scheduler_pool_workers", (("pool", "shared"),)] == 0  # simulate allocates nothing
