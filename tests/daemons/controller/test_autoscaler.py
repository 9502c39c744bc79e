"""The controller's autoscaler over a real DuckDB store, with recording ports: what it patches
(pods in place, workload status), in which order, and how it rolls back."""

from __future__ import annotations

import base64
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

import pytest
from aiohttp import web
from kubernetes_asyncio import client

from daemons.controller.autoscaler import Autoscaler, ControllerPorts, Obj, api_key
from tests.kubeapi.emulator import KubeEmulator
from tfcore.k8s import Store
from tfcore.metrics.embedded import DuckDBStore
from tfcore.metrics.lineproto import Point
from tfcore.metrics.store import Dialect, QueryResult
from tfcore.model.autoscaling import AutoScalingConfig, ExternalScaler, VerticalScalingRule
from tfcore.model.codec import decode

if TYPE_CHECKING:
    from daemons.controller.controller import Controller

GIB = 1024**3
NOW = datetime(2026, 12, 6, 18, 0, tzinfo=UTC)


class Recorder:
    def __init__(self, store: DuckDBStore, *, fail_pod: str | None = None, external: bytes | None = None) -> None:
        self.store = store
        self.fail_pod = fail_pod
        self.external_reply = external
        self.pod_patches: list[tuple[str, dict[str, str]]] = []
        self.statuses: list[dict[str, Any]] = []
        self.events: list[tuple[str, str, str]] = []

    @property
    def dialect(self) -> Dialect:
        return self.store.dialect

    async def query(self, sql: str) -> QueryResult:
        return await self.store.query(sql)

    async def patch_pod(self, pod: Obj, annotations: dict[str, str]) -> None:
        name = pod["metadata"]["name"]
        if name == self.fail_pod:
            raise RuntimeError("API down")
        self.pod_patches.append((name, annotations))

    async def patch_status(self, workload: Obj, status: dict[str, Any]) -> None:
        self.statuses.append(status)

    async def event(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))

    async def external(self, scaler: ExternalScaler, namespace: str, body: dict[str, Any]) -> bytes:
        if self.external_reply is None:
            raise ConnectionRefusedError("connection refused")
        return self.external_reply

    async def profile_config(self, namespace: str, name: str) -> AutoScalingConfig | None:
        return None

    async def pool_rules(self, pool: str) -> list[VerticalScalingRule]:
        rule = {"selector": {"matchLabels": {"team": "ml"}}, "autoScaling": {"autoSetResources": {"enable": True}}}
        return [decode(rule, VerticalScalingRule)] if pool == "shared" else []


def pod(name: str, gpu: str) -> dict[str, Any]:
    annotations = {
        "tensor-fusion.ai/tflops-request": "20",
        "tensor-fusion.ai/tflops-limit": "40",
        "tensor-fusion.ai/vram-request": "8Gi",
        "tensor-fusion.ai/vram-limit": "8Gi",
        "tensor-fusion.ai/gpu-ids": gpu,
    }
    return {"metadata": {"name": name, "namespace": "team", "annotations": annotations}, "status": {"phase": "Running"}}


def gpu(free_tflops: str) -> dict[str, Any]:
    return {
        "status": {
            "capacity": {"tflops": "100", "vram": "80Gi"},
            "available": {"tflops": free_tflops, "vram": "40Gi"},
        }
    }


def workload(auto: dict[str, Any] | None = None, **config: Any) -> dict[str, Any]:
    auto_config = {"autoSetResources": {"enable": True, "targetResource": "all", **(auto or {})}, **config}
    return {
        "metadata": {"name": "llm", "namespace": "team", "generation": 1},
        "spec": {
            "qos": "high",
            "resources": {"requests": {"tflops": "20", "vram": "8Gi"}, "limits": {"tflops": "40", "vram": "8Gi"}},
            "autoScalingConfig": auto_config,
        },
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "WorkersReady", "message": "2"}]},
    }


@pytest.fixture
async def store(tmp_path: Path) -> Any:
    opened = await DuckDBStore(tmp_path / "m.duckdb").open()
    rng = random.Random(5)
    points = []
    start = NOW - timedelta(hours=2)
    for step in range(720):  # 10 s samples, 2 h
        at = int((start + timedelta(seconds=10 * step)).timestamp() * 1e9)
        for worker in ("llm-0", "llm-1"):
            tags = {"workload": "llm", "worker": worker, "namespace": "team", "pool": "p", "node": "n", "uuid": "g"}
            fields = {"compute_tflops": rng.uniform(40, 60), "memory_bytes": int(2 * GIB)}
            points.append(Point("tf_worker_usage", tags, fields, at))
    await opened.write(points)
    yield opened
    await opened.close()


async def test_scale_up_is_applied_in_place_capped_by_free_room(store: DuckDBStore) -> None:
    ports = Recorder(store)
    pods = [pod("llm-0", "gpu-a"), pod("llm-1", "gpu-a")]
    await Autoscaler(ports, clock=lambda: NOW).reconcile(workload(), pods, {"gpu-a": gpu("30")})
    # Usage ~U(40, 60): QoS high wants p95 x 1.15 ~ 68 TFLOPS each; GPU has 30 free: 15 each.
    assert [name for name, _ in ports.pod_patches] == ["llm-0", "llm-1"]
    assert all(patch["tensor-fusion.ai/tflops-request"] == "35" for _, patch in ports.pod_patches)
    (status,) = ports.statuses
    assert status["appliedRecommendation"]["requests"]["tflops"] != "20"
    assert status["originalResources"]["requests"]["tflops"] == "20"
    assert status["lastAppliedTime"] == "2026-12-06T18:00:00Z"
    condition = next(c for c in status["conditions"] if c["type"] == "ResourceUpdate")
    assert condition["status"] == "True"
    assert "capped by free GPU room" in condition["message"]
    assert any(c["type"] == "Ready" for c in status["conditions"])  # others' conditions stay
    assert ports.events[0][:2] == ("Normal", "ResourcesUpdated")


async def test_a_failed_patch_rolls_back_the_pods_already_patched(store: DuckDBStore) -> None:
    ports = Recorder(store, fail_pod="llm-1")
    pods = [pod("llm-0", "gpu-a"), pod("llm-1", "gpu-a")]
    await Autoscaler(ports, clock=lambda: NOW).reconcile(workload(), pods, {"gpu-a": gpu("100")})
    (first, undo) = ports.pod_patches
    assert first[0] == undo[0] == "llm-0"
    assert undo[1]["tensor-fusion.ai/tflops-request"] == "20"
    (status,) = ports.statuses
    assert "appliedRecommendation" not in status
    condition = next(c for c in status["conditions"] if c["type"] == "ResourceUpdate")
    assert (condition["status"], condition["reason"]) == ("False", "UpdateFailed")
    assert ("Warning", "ResourceUpdateFailed") in [e[:2] for e in ports.events]


async def test_a_failing_external_recommender_does_not_block_the_percentile_one(store: DuckDBStore) -> None:
    ports = Recorder(store)
    scaled = workload(externalScaler={"enable": True, "url": "http://127.0.0.1:9/recommend"})
    await Autoscaler(ports, clock=lambda: NOW).reconcile(scaled, [pod("llm-0", "gpu-a")], {"gpu-a": gpu("100")})
    assert ports.pod_patches  # the percentile recommendation was applied
    assert any(reason == "RecommenderFailed" and "connection refused" in msg for _, reason, msg in ports.events)


async def test_recommend_only_and_interval(store: DuckDBStore) -> None:
    ports = Recorder(store)
    clock = [NOW]
    autoscaler = Autoscaler(ports, clock=lambda: clock[0])
    only = workload({"targetResource": ""})
    await autoscaler.reconcile(only, [pod("llm-0", "gpu-a")], {"gpu-a": gpu("100")})
    assert ports.pod_patches == []
    (status,) = ports.statuses
    assert status["recommendation"]["requests"]["tflops"] != "20"
    assert "recommend only" in status["conditions"][-1]["message"]
    clock[0] = NOW + timedelta(seconds=5)  # before the 30 s interval: nothing happens
    await autoscaler.reconcile(workload(), [pod("llm-0", "gpu-a")], {"gpu-a": gpu("100")})
    assert ports.pod_patches == []


async def test_invalid_config_is_reported_once(store: DuckDBStore) -> None:
    ports = Recorder(store)
    bad = workload({"targetComputePercentile": "2"})
    autoscaler = Autoscaler(ports, clock=lambda: NOW)
    await autoscaler.reconcile(bad, [pod("llm-0", "gpu-a")], {})
    (status,) = ports.statuses
    assert "targetComputePercentile" in status["conditions"][-1]["message"]
    assert ports.events[0][1] == "InvalidAutoScalingConfig"


async def test_pool_rules_apply_to_workloads_without_their_own_config(store: DuckDBStore) -> None:
    ports = Recorder(store)
    plain = workload()
    del plain["spec"]["autoScalingConfig"]
    plain["spec"]["poolName"] = "shared"
    labelled = pod("llm-0", "gpu-a")
    labelled["metadata"]["labels"] = {"team": "ml"}
    await Autoscaler(ports, clock=lambda: NOW).reconcile(plain, [labelled], {"gpu-a": gpu("100")})
    (status,) = ports.statuses
    assert status["recommendation"] is not None
    assert "recommend only" in status["conditions"][-1]["message"]  # the rule names no targetResource
    other = pod("llm-0", "gpu-a")
    other["metadata"]["labels"] = {"team": "web"}
    ports.statuses.clear()
    await Autoscaler(ports, clock=lambda: NOW).reconcile(plain, [other], {"gpu-a": gpu("100")})
    assert ports.statuses == []  # no rule selects it: not autoscaled
    plain["status"]["appliedRecommendation"] = {"requests": {"tflops": "5", "vram": "1Gi"}}
    await Autoscaler(ports, clock=lambda: NOW).reconcile(plain, [other], {"gpu-a": gpu("100")})
    assert ports.statuses[-1]["appliedRecommendation"] is None  # off again: new workers start at the spec


def test_api_key_fields() -> None:
    assert api_key({"data": {"token": "c2VjcmV0"}}) == "secret"
    with pytest.raises(ValueError, match="apiKey, token, key"):
        api_key({"data": {}})


async def test_external_recommender_over_http_with_the_secrets_bearer_key(kube: KubeEmulator) -> None:
    """ControllerPorts.external: the key comes from the Secret, the body is POSTed, the reply read."""
    seen: list[tuple[str | None, dict[str, Any]]] = []

    async def recommend(request: web.Request) -> web.Response:
        seen.append((request.headers.get("Authorization"), await request.json()))
        return web.json_response({"needScaleUp": True, "recommendedResources": {"requests": {"tflops": "30"}}})

    app = web.Application()
    app.router.add_post("/recommend", recommend)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        core = client.CoreV1Api(kube.api_client())
        data = {"apiKey": base64.b64encode(b"s3cret").decode()}
        await core.create_namespaced_secret(
            "default", client.V1Secret(metadata=client.V1ObjectMeta(name="key"), data=data)
        )
        controller = SimpleNamespace(context=SimpleNamespace(api=kube.api_client()), store=Store())
        ports = ControllerPorts(cast("Controller", controller), recorder=None, store=None)
        scaler = decode(
            {"enable": True, "url": f"http://127.0.0.1:{port}/recommend", "apiKeySecretRef": {"name": "key"}},
            ExternalScaler,
        )
        reply = await ports.external(scaler, "default", {"workloadName": "llm"})
        assert b"needScaleUp" in reply
        assert seen == [("Bearer s3cret", {"workloadName": "llm"})]
        down = decode({"enable": True, "url": f"http://127.0.0.1:{port}/missing"}, ExternalScaler)
        with pytest.raises(RuntimeError, match="HTTP 404"):
            await ports.external(down, "default", {})
    finally:
        await runner.cleanup()
