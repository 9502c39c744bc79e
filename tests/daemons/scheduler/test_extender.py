"""The kube-scheduler extender protocol over HTTP: filter, prioritize, bind, as kube-scheduler calls them."""

from __future__ import annotations

import random
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from daemons.scheduler.http import extender_app
from daemons.scheduler.service import BindError
from tests.daemons.scheduler.cluster import binding_args, extender_args, gpu_pod
from tests.daemons.scheduler.conftest import Setup

Client = TestClient[Any, Any]
NODES = ["node-0", "node-1", "node-2"]


async def test_filter_prioritize_bind_round_trip(extender: Client, setup: Setup) -> None:
    pod = gpu_pod("train", uid="uid-1", tflops="200", vram="40Gi")
    setup.cluster.apply(pod)
    filtered = await (await extender.post("/filter", json=extender_args(pod, [*NODES, "cpu-only"]))).json()
    assert filtered["NodeNames"] == NODES
    assert filtered["FailedAndUnresolvableNodes"] == {"cpu-only": "node has no GPUs managed by tensor-fusion"}
    scores = await (await extender.post("/prioritize", json=extender_args(pod, NODES))).json()
    assert scores == [{"Host": "node-0", "Score": 10}, {"Host": "node-1", "Score": 4}, {"Host": "node-2", "Score": 4}]
    bound = await (await extender.post("/bind", json=binding_args(pod, "node-2"))).json()
    assert bound == {}  # ExtenderBindingResult with no Error
    stored = setup.cluster.pod("default", "train")
    assert stored is not None
    assert stored["spec"]["nodeName"] == "node-2"
    assert stored["metadata"]["annotations"]["tensor-fusion.ai/gpu-ids"] == "node-2-gpu-0"
    allocation = setup.service.allocation()["allocations"]["uid-1"]
    assert allocation["node"] == "node-2"
    assert allocation["gpus"][0]["requests"] == {"tflops": "200", "vram": "40Gi"}
    # node-2 is now the most packed: compact-first prefers it for the next pod of the same shape
    second = gpu_pod("train-2", uid="uid-2", tflops="100", vram="40Gi")
    setup.cluster.apply(second)
    scores = await (await extender.post("/prioritize", json=extender_args(second, NODES))).json()
    assert max(scores, key=lambda s: s["Score"]) == {"Host": "node-2", "Score": 10}


async def test_full_gpus_are_filtered_with_a_reason(extender: Client, setup: Setup) -> None:
    for i in range(2):  # fill both GPUs of node-1
        pod = gpu_pod(f"fill-{i}", uid=f"fill-{i}", tflops="312", vram="80Gi")
        setup.cluster.apply(pod)
        assert await (await extender.post("/bind", json=binding_args(pod, "node-1"))).json() == {}
    pod = gpu_pod("late", uid="late", tflops="10", vram="1Gi")
    setup.cluster.apply(pod)
    filtered = await (await extender.post("/filter", json=extender_args(pod, NODES))).json()
    assert filtered["NodeNames"] == ["node-0", "node-2"]
    assert "GPUResourcesFit" in filtered["FailedNodes"]["node-1"]
    refused = await (await extender.post("/bind", json=binding_args(pod, "node-1"))).json()
    assert "does not fit on node-1" in refused["Error"]
    assert "late" not in setup.service.allocation()["allocations"]


async def test_non_gpu_pods_pass_through_and_are_bound(extender: Client, setup: Setup) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "uid": "web-1"},
        "spec": {"schedulerName": "tensor-fusion-scheduler", "containers": [{"name": "c", "image": "nginx"}]},
    }
    setup.cluster.apply(pod)
    filtered = await (await extender.post("/filter", json=extender_args(pod, [*NODES, "cpu-only"]))).json()
    assert filtered["NodeNames"] == [*NODES, "cpu-only"]
    assert await (await extender.post("/bind", json=binding_args(pod, "cpu-only"))).json() == {}
    assert setup.cluster.bindings == [("default/web", "web-1", "cpu-only")]
    assert setup.service.allocation()["allocations"] == {}


async def test_bad_annotations_are_an_extender_error_not_a_crash(extender: Client) -> None:
    pod = gpu_pod("bad", uid="bad", vram="lots")
    reply = await extender.post("/filter", json=extender_args(pod, NODES))
    body = await reply.json()
    assert reply.status == 200
    assert body["NodeNames"] == []
    assert "vram-request" in body["Error"]


async def test_malformed_extender_bodies_are_400(extender: Client) -> None:
    for path, data in [("/filter", b"{"), ("/prioritize", b'{"NodeNames": 7}'), ("/bind", b'{"PodName": "x"}')]:
        reply = await extender.post(path, data=data, headers={"Content-Type": "application/json"})
        assert reply.status == 400, path
        assert (await reply.json())["error"]


async def test_nodes_instead_of_node_names_when_not_cache_capable(extender: Client) -> None:
    pod = gpu_pod("legacy", uid="legacy")
    node_list = {"kind": "NodeList", "apiVersion": "v1", "items": [{"metadata": {"name": n}} for n in [*NODES, "x"]]}
    body = await (await extender.post("/filter", json={"Pod": pod, "Nodes": node_list, "NodeNames": None})).json()
    assert [n["metadata"]["name"] for n in body["Nodes"]["items"]] == NODES
    assert "NodeNames" not in body


async def test_unknown_pod_at_bind_is_refused(extender: Client, setup: Setup) -> None:
    reply = await extender.post(
        "/bind", json={"PodName": "ghost", "PodNamespace": "default", "PodUID": "g", "Node": "node-0"}
    )
    assert "unknown to the scheduler" in (await reply.json())["Error"]
    assert setup.service.allocation()["allocations"] == {}


async def test_failed_api_binding_forgets_the_allocation(setup: Setup) -> None:
    class Refusing:
        def __init__(self) -> None:
            self.annotations: list[dict[str, str | None]] = []

        async def annotate_pod(self, namespace: str, name: str, annotations: Any) -> None:
            self.annotations.append(dict(annotations))

        async def bind_pod(self, namespace: str, name: str, uid: str, node: str) -> None:
            raise BindError("409 Conflict: pod is already assigned")

    writer = Refusing()
    pod = gpu_pod("conflict", uid="c-1")
    setup.cluster.apply(pod)
    async with TestClient(TestServer(extender_app(setup.service, writer))) as client:
        reply = await (await client.post("/bind", json=binding_args(pod, "node-0"))).json()
    assert "409 Conflict" in reply["Error"]
    assert setup.service.allocation()["allocations"] == {}
    written, undone = writer.annotations
    assert "tensor-fusion.ai/gpu-ids" in written
    assert undone == dict.fromkeys(written)


async def test_reused_decisions_answer_exactly_as_the_full_recomputation() -> None:
    """Same pods, same calls: the cached path and the naive path give identical replies throughout."""
    rng = random.Random(7)
    fast, naive = Setup(6, 4), Setup(6, 4, reuse_decisions=False)
    names = [f"node-{i}" for i in range(6)]
    async with (
        TestClient(TestServer(extender_app(fast.service, fast.cluster))) as a,
        TestClient(TestServer(extender_app(naive.service, naive.cluster))) as b,
    ):
        for i in range(60):
            pod = gpu_pod(
                f"p{i}", uid=f"u{i}", tflops=str(rng.choice([10, 50, 100, 200])), vram=f"{rng.choice([4, 20, 40])}Gi"
            )
            fast.cluster.apply(pod)
            naive.cluster.apply(pod)
            fa = await (await a.post("/filter", json=extender_args(pod, names))).json()
            fb = await (await b.post("/filter", json=extender_args(pod, names))).json()
            assert fa == fb
            if not fa["NodeNames"]:
                continue
            pa = await (await a.post("/prioritize", json=extender_args(pod, fa["NodeNames"]))).json()
            pb = await (await b.post("/prioritize", json=extender_args(pod, fb["NodeNames"]))).json()
            assert pa == pb
            chosen = rng.choice(fa["NodeNames"]) if rng.random() < 0.3 else max(pa, key=lambda s: s["Score"])["Host"]
            assert (
                await (await a.post("/bind", json=binding_args(pod, chosen))).json()
                == await (await b.post("/bind", json=binding_args(pod, chosen))).json()
            )
            if rng.random() < 0.2:  # a pod finishes
                done = rng.choice(list(fast.service.allocator.allocations))
                for s in (fast, naive):
                    s.cluster.remove("Pod", done)
    assert fast.service.allocator.state_fingerprint() == naive.service.allocator.state_fingerprint()
