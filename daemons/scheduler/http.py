"""HTTP: the admin API (port 8080: simulate-schedule, allocation, OpenAPI) and the extender listener.

The admin API changes nothing (simulate-schedule allocates nothing), so it needs no
credentials. The extender's bind does change state; it is served only on the separate
extender listener, which is loopback-only (kube-scheduler as a sidecar) unless TLS with
client-certificate verification is configured (see cli.py and docs/scheduler.md).
"""

from __future__ import annotations

from time import perf_counter
from typing import Any, Final

import msgspec
from aiohttp import web
from aiohttp.typedefs import Handler

import tfcore
from daemons.scheduler.service import ClusterWriter, SchedulerService
from tfcore.model.body import decode_document, decode_json
from tfcore.model.errors import ValidationError
from tfcore.sched.extender.wire import binding_decoder, encoded_args_decoder, encoder
from tfcore.web.app import (
    HTTPProblem,
    add_openapi_route,
    bearer_token,
    create_app,
    json_response,
    media_type,
    openapi_document,
    read_body,
)
from tfcore.web.metrics import add_metrics_route
from tfcore.web.offload import Offload

MAX_POD_BYTES: Final = 1024**2
MAX_EXTENDER_BYTES: Final = 32 * 1024**2  # a pod plus up to ~100k node names
YAML_TYPES: Final = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})
JSON_TYPES: Final = frozenset({"application/json"})
SERVICE_KEY: Final = web.AppKey("tf_scheduler_service", SchedulerService)
WRITER_KEY: Final = web.AppKey("tf_scheduler_writer", object)
OFFLOAD_KEY: Final = web.AppKey("tf_scheduler_offload", Offload)


# ---- admin API ----------------------------------------------------------------------------------


async def parse_pod_body(body: bytes, content_type: str, offload: Offload) -> dict[str, Any]:
    """A Pod from a YAML or JSON body; ValidationError (400) or HTTPProblem (415, 429) otherwise.
    Large bodies are parsed in a worker process, so that the extender is never held up."""
    if content_type not in JSON_TYPES | YAML_TYPES:
        accepted = ", ".join(sorted(YAML_TYPES | JSON_TYPES))
        raise HTTPProblem(415, f"unsupported Content-Type {content_type!r}; send one of {accepted}")
    yaml_body = content_type in YAML_TYPES
    expected = "a Pod as YAML" if yaml_body else "a Pod as JSON"
    data = await offload.run(decode_document, body, yaml_body, expected=expected)
    if not isinstance(data, dict):
        raise ValidationError.single("body", f"got {type(data).__name__}", "a Pod object")
    if data.get("kind") != "Pod" or data.get("apiVersion") != "v1":
        got = f"{data.get('apiVersion')!r} {data.get('kind')!r}"
        raise ValidationError.single("kind", f"got apiVersion/kind {got}", "apiVersion: v1, kind: Pod")
    return data


async def simulate_schedule(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    started = perf_counter()
    ok = False
    try:
        body = await read_body(request, limit=MAX_POD_BYTES)
        pod = await parse_pod_body(body, media_type(request), request.app[OFFLOAD_KEY])
        try:
            result = service.simulate(pod)
        except RecursionError:
            raise ValidationError.single("body", "nested too deeply", "a Pod") from None
        ok = True
        return json_response(result)
    finally:
        service.metrics.observe("simulate", perf_counter() - started, ok)


async def allocation(request: web.Request) -> web.Response:
    return json_response(request.app[SERVICE_KEY].allocation())


def admin_app(service: SchedulerService, *, token: str = "", offload: Offload | None = None) -> web.Application:
    """The admin API; with a token, its /api/ routes need `Authorization: Bearer <token>`."""
    app = create_app(client_max_size=MAX_POD_BYTES, middlewares=[bearer_token(token, "/api/")] if token else [])
    app[SERVICE_KEY] = service
    app[OFFLOAD_KEY] = offload = offload or Offload()

    async def close_offload(_: web.Application) -> None:
        offload.close()

    app.on_cleanup.append(close_offload)
    app.router.add_post("/api/simulate-schedule", simulate_schedule)
    app.router.add_get("/api/allocation", allocation)
    add_metrics_route(app, service.metrics.registry)
    add_openapi_route(app, "/api/openapi.json", admin_openapi())
    return app


def admin_openapi() -> dict[str, Any]:
    pod_schema = {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata"],
        "properties": {
            "apiVersion": {"type": "string", "enum": ["v1"]},
            "kind": {"type": "string", "enum": ["Pod"]},
            "metadata": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "namespace": {"type": "string"},
                    "uid": {"type": "string"},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
                },
            },
            "spec": {"type": "object"},
        },
    }
    errors = {
        "400": _error("the body is not a Pod, or its tensor-fusion annotations are invalid"),
        "413": _error("the body exceeds 1 MiB"),
        "415": _error("Content-Type is neither YAML nor JSON"),
    }
    body = {"$ref": "#/components/schemas/Pod"}
    paths = {
        "/api/simulate-schedule": {
            "post": {
                "summary": "Decide where a pod would go, with every filter step and reason; allocates nothing",
                "requestBody": {
                    "required": True,
                    "content": {"application/yaml": {"schema": body}, "application/json": {"schema": body}},
                },
                "responses": {"200": _ok("the decision", "SimulateResult"), **errors},
            }
        },
        "/api/allocation": {
            "get": {
                "summary": "The scheduler's in-memory state: pools, nodes, GPUs and allocations",
                "responses": {"200": _ok("the state", "Allocation")},
            }
        },
    }
    schemas = {
        "Pod": pod_schema,
        "SimulateResult": {
            "type": "object",
            "required": ["pod", "status", "node", "gpus", "filters", "rejected"],
            "properties": {
                "pod": {"type": "string"},
                "status": {"type": "object"},
                "node": {"type": "string", "nullable": True},
                "gpus": {"type": "array", "items": {"type": "string"}},
                "gpuIndices": {"type": "array", "items": {"type": "integer"}},
                "dryRun": {"type": "boolean"},
                "allocation": {"type": "object", "nullable": True},
                "filters": {"type": "array", "items": {"type": "object"}},
                "rejected": {"type": "object"},
                "scores": {"type": "object"},
            },
        },
        "Allocation": {
            "type": "object",
            "required": ["pools", "gpus", "nodes", "allocations"],
            "properties": {k: {"type": "object"} for k in ("pools", "gpus", "nodes", "allocations")},
        },
    }
    return openapi_document(title="tensor-fusion scheduler", version=tfcore.__version__, paths=paths, schemas=schemas)


def _ok(description: str, schema: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


# ---- extender -----------------------------------------------------------------------------------


def _decode(decoder: msgspec.json.Decoder[Any], body: bytes) -> Any:
    return decode_json(body, decoder, expected="the kube-scheduler extender wire format")


def _reply(value: Any) -> web.Response:
    return web.Response(body=encoder.encode(value), content_type="application/json")


def _json_body(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="application/json")


OK_KEY: Final = web.RequestKey("tf_scheduler_ok", bool)  # set by a handler whose answer succeeded


@web.middleware
async def timed(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every extender verb's latency and outcome (the route's name is the verb)."""
    verb = request.match_info.route.name
    if verb is None:
        return await handler(request)
    started = perf_counter()
    try:
        return await handler(request)
    finally:
        request.app[SERVICE_KEY].metrics.observe(verb, perf_counter() - started, request.get(OK_KEY, False))


async def extender_filter(request: web.Request) -> web.Response:
    args = _decode(encoded_args_decoder, await read_body(request, limit=MAX_EXTENDER_BYTES))
    answer = request.app[SERVICE_KEY].filter_reply(args)
    request[OK_KEY] = answer.ok
    return _json_body(answer.body)


async def extender_prioritize(request: web.Request) -> web.Response:
    args = _decode(encoded_args_decoder, await read_body(request, limit=MAX_EXTENDER_BYTES))
    body = request.app[SERVICE_KEY].prioritize(args)
    request[OK_KEY] = True
    return _json_body(body)


async def extender_bind(request: web.Request) -> web.Response:
    args = _decode(binding_decoder, await read_body(request, limit=MAX_POD_BYTES))
    writer: ClusterWriter = request.app[WRITER_KEY]  # type: ignore[assignment]
    result = await request.app[SERVICE_KEY].bind(args, writer)
    request[OK_KEY] = not result.error
    return _reply(result)


def extender_app(service: SchedulerService, writer: ClusterWriter, *, prefix: str = "") -> web.Application:
    """filter, prioritize and bind under `prefix` (kube-scheduler's urlPrefix path)."""
    app = create_app(client_max_size=MAX_EXTENDER_BYTES, middlewares=[timed])
    app[SERVICE_KEY] = service
    app[WRITER_KEY] = writer
    base = prefix.rstrip("/")
    app.router.add_post(f"{base}/filter", extender_filter, name="filter")
    app.router.add_post(f"{base}/prioritize", extender_prioritize, name="prioritize")
    app.router.add_post(f"{base}/bind", extender_bind, name="bind")
    return app
