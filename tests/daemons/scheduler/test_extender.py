"""The kube-scheduler extender protocol over HTTP: filter, prioritize, bind, as kube-scheduler calls them."""

from __future__ import annotations

import random
from typing import Any

import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

from daemons.scheduler.http import extender_app
from daemons.scheduler.service import BindError
from tests.daemons.scheduler.cluster import binding_args, extender_args, gpu, gpu_pod
from tests.daemons.scheduler.conftest import Setup
from tfcore.model.errors import ValidationError
from tfcore.sched import pod_request
from tfcore.sched.request import RequestParser

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


def quota(namespace: str, tflops: str) -> dict[str, Any]:
    return {
        "apiVersion": "tensor-fusion.ai/v1",
        "kind": "GPUResourceQuota",
        "metadata": {"name": "q", "namespace": namespace},
        "spec": {"total": {"requests": {"tflops": tflops, "vram": "10Ti"}}},
    }


@pytest.mark.parametrize("seed", [7, 8, 9])
async def test_reused_decisions_answer_exactly_as_the_full_recomputation(seed: int) -> None:
    """Same pods, same calls: the cached path and the naive path give byte-identical replies throughout.

    kube-scheduler mostly sends the same full candidate list (the cached replies are patched per
    changed node); sometimes a shuffled subset, duplicates or unknown nodes; nodes fill up, pods
    finish, a GPU disappears and comes back, a quota appears and goes.
    """
    rng = random.Random(seed)
    fast, naive = Setup(6, 4), Setup(6, 4, reuse_decisions=False)
    names = [f"node-{i}" for i in range(6)]
    removed_gpu: dict[str, Any] | None = None
    async with (
        TestClient(TestServer(extender_app(fast.service, fast.cluster))) as a,
        TestClient(TestServer(extender_app(naive.service, naive.cluster))) as b,
    ):

        async def both(path: str, body: Any) -> bytes:
            ra, rb = await (await a.post(path, json=body)).read(), await (await b.post(path, json=body)).read()
            assert ra == rb, (path, body)
            return ra

        for i in range(150):
            pod = gpu_pod(
                f"p{i}", uid=f"u{i}", tflops=str(rng.choice([10, 50, 100, 200])), vram=f"{rng.choice([4, 20, 40])}Gi"
            )
            for s in (fast, naive):
                s.cluster.apply(pod)
            roll = rng.random()
            if roll < 0.6:
                candidates = names
            elif roll < 0.8:
                candidates = rng.sample(names, rng.randint(1, 6))
            elif roll < 0.9:
                candidates = [*names, "cpu-only", names[0]]
            else:
                candidates = [*reversed(names), "ghost"]
            for _ in range(rng.choice([1, 1, 2])):  # kube-scheduler retries a cycle with the same list
                filtered = msgspec.json.decode(await both("/filter", extender_args(pod, candidates)))
            if not filtered["NodeNames"]:
                continue
            scores = msgspec.json.decode(await both("/prioritize", extender_args(pod, filtered["NodeNames"])))
            best = max(scores, key=lambda s: s["Score"])["Host"]
            chosen = rng.choice(filtered["NodeNames"]) if rng.random() < 0.5 else best
            await both("/bind", binding_args(pod, chosen))
            roll = rng.random()
            if roll < 0.2 and fast.service.allocator.allocations:  # a pod finishes
                done = rng.choice(sorted(fast.service.allocator.allocations))
                for s in (fast, naive):
                    s.cluster.remove("Pod", done)
            elif roll < 0.25:  # a GPU goes away, or comes back
                for s in (fast, naive):
                    if removed_gpu is None:
                        s.cluster.remove("GPU", "node-3-gpu-1")
                    else:
                        s.cluster.apply(removed_gpu)
                removed_gpu = gpu("node-3", 1) if removed_gpu is None else None
            elif roll < 0.3:  # a quota that the next pods may exceed, or none
                used = sum(g.used_tflops for g in fast.service.allocator.gpus.values()) // 1000
                for s in (fast, naive):
                    if "default/q" in s.mirror.quotas:
                        s.cluster.remove("GPUResourceQuota", "default/q")
                    else:
                        s.cluster.apply(quota("default", str(used + 100)))
    assert fast.service.allocator.state_fingerprint() == naive.service.allocator.state_fingerprint()
    assert len(fast.service.allocator.allocations) > 10


def _parse_or_error(parse: Any, pod: dict[str, Any]) -> Any:
    try:
        return parse(pod)
    except ValidationError as exc:
        return str(exc)


_TFLOPS = st.sampled_from(["10", "0.5", "100", "100", "lots"])
_VRAM = st.sampled_from(["2Gi", "40Gi", "40Gi", "-1"])
_IDENTITY = st.one_of(st.sampled_from(["a", "b", "c"]), st.none(), st.sampled_from(["", 0, 1]))


@settings(max_examples=300, deadline=None)
@given(
    tflops=_TFLOPS,
    vram=_VRAM,
    extra=st.dictionaries(
        st.sampled_from(["tensor-fusion.ai/gpu-count", "tensor-fusion.ai/gpupool", "tensor-fusion.ai/qos", "x"]),
        st.sampled_from(["1", "2", "0", "shared", "high", "nope"]),
        max_size=1,
    ),
    identities=st.lists(st.tuples(_IDENTITY, _IDENTITY, _IDENTITY, _IDENTITY), min_size=2, max_size=5),
    selector=st.one_of(st.none(), st.just({"zone": "a"}), st.just("zone=a")),
)
def test_request_parser_equals_pod_request_for_replicas(
    tflops: str, vram: str, extra: dict[str, str], identities: list[tuple[Any, ...]], selector: Any
) -> None:
    """Pods sharing everything but identity (name, namespace, uid, nodeName, valid or not): the
    reusing parser answers exactly as a full parse, value or error, whichever pod comes first."""
    parser = RequestParser()
    for name, namespace, uid, node_name in identities:
        pod = gpu_pod("x", tflops=tflops, vram=vram, **extra)
        pod["metadata"].update(name=name, namespace=namespace, uid=uid)
        pod["spec"]["nodeName"] = node_name
        if selector is not None:
            pod["spec"]["nodeSelector"] = selector
        assert _parse_or_error(parser, pod) == _parse_or_error(pod_request, pod)


async def test_request_parser_reuse_equals_a_full_parse() -> None:
    """Replicas share everything but their identity: the reused parse must equal pod_request, errors included."""
    parser = RequestParser()
    template = gpu_pod("r0", uid="u0", tflops="20", vram="4Gi")
    assert parser(template) == pod_request(template)
    for variant in (
        gpu_pod("r1", uid="u1", tflops="20", vram="4Gi"),
        {**gpu_pod("r2", tflops="20", vram="4Gi"), "spec": {**template["spec"], "nodeName": "node-1"}},
        {**gpu_pod("r3", uid="u3", tflops="20", vram="4Gi"), "spec": {**template["spec"], "nodeSelector": "x"}},
    ):
        try:
            expected: Any = pod_request(variant)
        except ValidationError as exc:
            expected = str(exc)
        try:
            got: Any = parser(variant)
        except ValidationError as exc:
            got = str(exc)
        assert got == expected
    bad = gpu_pod("r4", uid="u4", tflops="20", vram="4Gi")
    bad["metadata"]["namespace"] = 7
    with pytest.raises(ValidationError, match=r"metadata\.namespace"):
        parser(bad)


async def test_reused_replies_follow_nodes_that_fill_up_and_free_up() -> None:
    """One shape, the same candidate list every time: nodes flip from fitting to full and back,
    and the reused filter and prioritize replies must flip with them, byte for byte."""
    fast, naive = Setup(3, 1), Setup(3, 1, reuse_decisions=False)
    names = ["node-0", "node-1", "node-2"]
    flips = 0
    async with (
        TestClient(TestServer(extender_app(fast.service, fast.cluster))) as a,
        TestClient(TestServer(extender_app(naive.service, naive.cluster))) as b,
    ):

        async def both(path: str, body: Any) -> Any:
            ra, rb = await (await a.post(path, json=body)).read(), await (await b.post(path, json=body)).read()
            assert ra == rb, path
            return msgspec.json.decode(ra)

        previous: list[str] | None = None
        for i in range(14):
            if i >= 7:  # then pods finish, one per round
                for s in (fast, naive):
                    s.cluster.remove("Pod", f"u{i - 7}")
            pod = gpu_pod(f"p{i}", uid=f"u{i}", tflops="100", vram="40Gi")
            for s in (fast, naive):
                s.cluster.apply(pod)
            fits = (await both("/filter", extender_args(pod, names)))["NodeNames"]
            flips += previous is not None and fits != previous
            previous = fits
            if i < 7 and fits:
                scores = await both("/prioritize", extender_args(pod, fits))
                best = max(scores, key=lambda s: s["Score"])["Host"]
                assert await both("/bind", binding_args(pod, best)) == {}
    assert flips >= 4  # filled one by one, then freed


async def test_reused_prioritize_breaks_ties_by_name_whatever_the_candidate_order() -> None:
    """Equal totals go to the smallest node name, as the framework decides, also when kube-scheduler
    lists the nodes in another order and the kept answer is patched rather than recomputed."""
    fast, naive = Setup(4, 1), Setup(4, 1, reuse_decisions=False)
    reverse = ["node-3", "node-2", "node-1", "node-0"]
    async with (
        TestClient(TestServer(extender_app(fast.service, fast.cluster))) as a,
        TestClient(TestServer(extender_app(naive.service, naive.cluster))) as b,
    ):

        async def step(i: int, node: str | None = None, finish: tuple[str, ...] = (), bind: bool = True) -> str:
            for uid in finish:
                for s in (fast, naive):
                    s.cluster.remove("Pod", uid)
            pod = gpu_pod(f"p{i}", uid=f"u{i}", tflops="50", vram="10Gi")
            for s in (fast, naive):
                s.cluster.apply(pod)
            body = extender_args(pod, reverse)
            ra = await (await a.post("/prioritize", json=body)).read()
            assert ra == await (await b.post("/prioritize", json=body)).read()
            best = str(max(msgspec.json.decode(ra), key=lambda s: s["Score"])["Host"])
            for client in (a, b) if bind else ():
                assert await (await client.post("/bind", json=binding_args(pod, node or best))).json() == {}
            return best

        assert await step(0) == "node-0"  # all empty: a four-way tie
        assert await step(1, node="node-3") == "node-0"  # node-0 is the most packed (compact-first)
        assert await step(2) == "node-0"  # node-0 and node-3 tie (one pod each): the smaller name
        assert await step(3, node="node-1") == "node-0"  # node-0 alone on top (two pods)
        assert await step(4, bind=False) == "node-0"
        assert await step(5, finish=("u0", "u2")) == "node-1"  # node-0 empty: node-1 and node-3 tie
