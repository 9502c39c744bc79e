"""POST /api/simulate-schedule and GET /api/allocation as the spec calls them, and bad bodies."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient

from tests.daemons.scheduler.cluster import SPEC_POD_YAML, gpu_pod
from tests.daemons.scheduler.conftest import Setup

Client = TestClient[Any, Any]


async def test_spec_simulate_schedule_call_verbatim(admin: Client, setup: Setup) -> None:
    # curl -X POST http://localhost:8080/api/simulate-schedule -H "Content-Type: application/yaml" -d '...'
    before = setup.service.allocation()
    reply = await admin.post(
        "/api/simulate-schedule", data=SPEC_POD_YAML.encode(), headers={"Content-Type": "application/yaml"}
    )
    assert reply.status == 200
    body = await reply.json()
    assert body["status"]["code"] == "Success"
    assert body["node"] == "node-0"  # all empty: compact-first ties go to the smallest name
    assert body["gpus"] == ["node-0-gpu-0"]
    assert body["dryRun"] is True
    assert body["allocation"] is None
    plugins = [step["plugin"] for step in body["filters"]]
    assert "GPUResourcesFit/resource" in plugins
    assert "GPUNetworkTopologyAware" in plugins
    assert all(step["before"] == ["node-0", "node-1", "node-2"] for step in body["filters"])
    assert setup.service.allocation() == before  # allocates nothing


async def test_json_variant_and_rejection_reasons(admin: Client) -> None:
    pod = gpu_pod("big", tflops="400")  # more than any 312-TFLOPS GPU
    reply = await admin.post(
        "/api/simulate-schedule", data=json.dumps(pod), headers={"Content-Type": "application/json"}
    )
    body = await reply.json()
    assert reply.status == 200
    assert body["node"] is None
    assert body["status"]["code"] == "Unschedulable"
    assert set(body["rejected"]) == {"node-0", "node-1", "node-2"}
    assert body["rejected"]["node-1"]["stage"] == "resource"
    resource = next(s for s in body["filters"] if s["plugin"] == "GPUResourcesFit/resource")
    assert resource["after"] == []


async def test_allocation_reports_state(admin: Client) -> None:
    reply = await admin.get("/api/allocation")
    body = await reply.json()
    assert reply.status == 200
    assert set(body) == {"pools", "gpus", "nodes", "allocations"}
    assert len(body["gpus"]) == 6
    assert body["allocations"] == {}


@pytest.mark.parametrize(
    ("body", "content_type", "status", "needle"),
    [
        (b"apiVersion: v1\nkind: Pod\nmetadata: [unclosed", "application/yaml", 400, "not valid YAML"),
        (b"{not json", "application/json", 400, "not valid JSON"),
        (b"- just\n- a list\n", "application/yaml", 400, "a Pod object"),
        (b"apiVersion: v1\nkind: Service\nmetadata: {name: x}\n", "application/yaml", 400, "kind: Pod"),
        (SPEC_POD_YAML.replace('"16Gi"', '"sixteen"', 1).encode(), "application/yaml", 400, "vram-request"),
        (SPEC_POD_YAML.encode(), "text/plain", 415, "Content-Type"),
        (b"", "application/yaml", 400, "Pod"),
        (b"[" * 5000 + b"]" * 5000, "application/yaml", 400, ""),
    ],
)
async def test_bad_bodies_get_a_clear_4xx(
    admin: Client, body: bytes, content_type: str, status: int, needle: str
) -> None:
    reply = await admin.post("/api/simulate-schedule", data=body, headers={"Content-Type": content_type})
    payload = await reply.json()
    assert reply.status == status, payload
    assert needle in payload["error"]
    if status == 400 and needle == "vram-request":
        assert any("vram-request" in p["field"] for p in payload["problems"])


async def test_huge_body_is_413(admin: Client) -> None:
    huge = SPEC_POD_YAML + "\n# " + "x" * (2 * 1024**2)
    body = io.BytesIO(huge.encode())
    reply = await admin.post("/api/simulate-schedule", data=body, headers={"Content-Type": "application/yaml"})
    assert reply.status == 413
    assert "too large" in (await reply.json())["error"]


async def test_wrong_method_and_unknown_path_are_json(admin: Client) -> None:
    reply = await admin.get("/api/simulate-schedule")
    assert reply.status == 405
    assert "error" in await reply.json()
    reply = await admin.get("/api/nothing")
    assert reply.status == 404


async def test_openapi_and_probes(admin: Client) -> None:
    doc = await (await admin.get("/api/openapi.json")).json()
    assert set(doc["paths"]) == {"/api/simulate-schedule", "/api/allocation"}
    assert (await admin.get("/healthz")).status == 200
    assert (await admin.get("/readyz")).status == 200


async def test_simulate_matches_the_yaml_document_exactly(admin: Client) -> None:
    as_yaml = await admin.post(
        "/api/simulate-schedule", data=SPEC_POD_YAML, headers={"Content-Type": "application/yaml"}
    )
    as_json = await admin.post(
        "/api/simulate-schedule",
        data=json.dumps(yaml.safe_load(SPEC_POD_YAML)),
        headers={"Content-Type": "application/json"},
    )
    assert await as_yaml.json() == await as_json.json()
