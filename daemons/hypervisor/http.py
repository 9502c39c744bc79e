"""The node-local HTTP API: devices, workers, limits, live usage; /metrics.

Reads are open (they bind to 127.0.0.1 by default); creating and releasing workers needs
`Authorization: Bearer <token>` with the token from the daemon's token file.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterator
from typing import Any

import msgspec
from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from daemons.hypervisor.node import Node, TieringOff
from tfcore.hypervisor.placement import DoesNotFit
from tfcore.hypervisor.tiering import QOS_LEVELS
from tfcore.hypervisor.workerspec import WorkerSpec
from tfcore.model.body import decode_json
from tfcore.model.errors import Problem, ValidationError
from tfcore.model.quantity import parse_quantity
from tfcore.sched.units import request_bytes, request_milli_tflops
from tfcore.web.app import HTTPProblem, bearer_token, create_app, json_response, read_body
from tfcore.web.metrics import add_metrics_route

NODE_KEY = web.AppKey("tf_node", Node)
TOKEN_KEY = web.AppKey("tf_token", str)


class CreateWorker(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    vram: str | int
    tflops_request: str | int | float = 0
    tflops_limit: str | int | float = 0
    gpu_count: int = 1
    gpus: list[str] = msgspec.field(default_factory=list)
    owner_pid: int = 0
    tenant_uid: int = -1  # who runs the workload: owner of the state file (mode 0600); -1 = the node's uid
    qos: str = "medium"
    vram_tiering: bool = True  # False: never frozen, plain allocations (the workload's opt-out)


class Freeze(msgspec.Struct, forbid_unknown_fields=True):
    to: str = "host"  # host or disk


_create_decoder = msgspec.json.Decoder(CreateWorker)


def _milli(value: str | int | float, field: str) -> int:
    if not value:
        return 0
    milli = request_milli_tflops(parse_quantity(str(value), field=field))
    if milli < 0:
        raise ValidationError.single(field, f"{value!r} is negative", "a TFLOPS quantity >= 0, such as 100 or 1500m")
    return milli


def _authorize(request: web.Request) -> None:
    expected = request.app[TOKEN_KEY]
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise HTTPProblem(401, "this endpoint needs Authorization: Bearer <token> (the hypervisor's token file)")


async def _devices(request: web.Request) -> web.Response:
    return json_response({"devices": request.app[NODE_KEY].device_view()})


async def _tiering(request: web.Request) -> web.Response:
    return json_response(request.app[NODE_KEY].tiering_view())


async def _workers(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    return json_response({"workers": [node.worker_view(w) for w in node.workers.values()]})


async def _worker(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    worker = node.workers.get(request.match_info["name"])
    if worker is None:
        raise HTTPProblem(404, f"no worker {request.match_info['name']!r}")
    return json_response(node.worker_view(worker))


async def _create(request: web.Request) -> web.Response:
    _authorize(request)
    body = await read_body(request, limit=64 * 1024)
    spec = decode_json(body, _create_decoder, expected="a CreateWorker JSON object")
    node = request.app[NODE_KEY]
    try:
        worker = node.create_worker(
            WorkerSpec(
                spec.name,
                vram_limit_bytes=request_bytes(parse_quantity(str(spec.vram), field="vram")),
                tflops_request_milli=_milli(spec.tflops_request, "tflops_request"),
                tflops_limit_milli=_milli(spec.tflops_limit, "tflops_limit"),
                gpu_count=spec.gpu_count,
                gpus=tuple(spec.gpus),
                owner_pid=spec.owner_pid,
                tenant_uid=_tenant_uid(spec.tenant_uid),
                qos=_qos(spec.qos),
                vram_tiering=spec.vram_tiering,
            )
        )
    except DoesNotFit as exc:
        raise HTTPProblem(409, str(exc)) from exc
    return json_response(node.worker_view(worker), status=201)


def _qos(qos: str) -> str:
    if qos not in QOS_LEVELS:
        raise ValidationError([Problem("qos", repr(qos), " or ".join(QOS_LEVELS))])
    return qos


async def _freeze(request: web.Request) -> web.Response:
    _authorize(request)
    body = await read_body(request, limit=1024)
    try:
        ask = msgspec.json.decode(body or b"{}", type=Freeze)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ValidationError([Problem("body", str(exc), 'a JSON object like {"to": "host"}')]) from exc
    if ask.to not in ("host", "disk"):
        raise ValidationError([Problem("to", repr(ask.to), "host or disk")])
    return _tier_request(request, ask.to)


async def _resume(request: web.Request) -> web.Response:
    _authorize(request)
    return _tier_request(request, "resume")


def _tier_request(request: web.Request, to: str) -> web.Response:
    node = request.app[NODE_KEY]
    name = request.match_info["name"]
    worker = node.workers.get(name)
    if worker is None:
        raise HTTPProblem(404, f"no worker {name!r}")
    try:
        node.request_tier(worker, to)
    except TieringOff as exc:
        raise HTTPProblem(409, str(exc)) from exc
    return json_response(node.worker_view(worker), status=202)


def _tenant_uid(asked: int) -> int:
    """The uid the worker's state file will belong to: only that uid (and root) can use or
    damage the worker.  A node not running as root can only give files to its own uid."""
    own = os.geteuid()
    if asked == -1:
        return own
    if not 0 <= asked < 2**32 - 1:
        raise ValidationError([Problem("tenant_uid", f"{asked} is not a uid", "a uid from 0 to 4294967294, or -1")])
    if own not in (asked, 0):  # root may give files to anyone; others only to themselves
        raise HTTPProblem(403, f"this node runs as uid {own}: it cannot give a worker's files to uid {asked}")
    return asked


async def _delete(request: web.Request) -> web.Response:
    _authorize(request)
    name = request.match_info["name"]
    node = request.app[NODE_KEY]
    worker = node.workers.get(name)
    if worker is None:
        raise HTTPProblem(404, f"no worker {name!r}")
    pod = worker.pod
    if pod is not None:
        raise HTTPProblem(409, f"worker {name!r} is owned by pod {pod[0]}/{pod[1]}: it goes when the pod does")
    node.remove_worker(name)
    return web.Response(status=204)


class NodeCollector(Collector):
    def __init__(self, node: Node) -> None:
        self.node = node

    def collect(self) -> Iterator[Metric]:
        gpu_util = GaugeMetricFamily("tf_gpu_utilization_percent", "GPU busy share (NVML).", labels=["uuid"])
        for uuid, value in self.node.device_utilization.items():
            gpu_util.add_metric([uuid], value)
        yield gpu_util
        labels = ["worker", "uuid", "namespace", "pod"]  # namespace and pod are empty for API workers
        families: dict[str, Any] = {
            "target": GaugeMetricFamily(
                "tf_worker_compute_target_share", "Share the controller aims at.", labels=labels
            ),
            "measured": GaugeMetricFamily("tf_worker_compute_share", "Measured share of GPU time.", labels=labels),
            "rate": GaugeMetricFamily("tf_worker_compute_rate", "Refill rate, launch cost per second.", labels=labels),
            "vram": GaugeMetricFamily("tf_worker_vram_used_bytes", "VRAM recorded by the shim.", labels=labels),
            "launches": CounterMetricFamily("tf_worker_launches", "Admitted launches.", labels=labels),
            "throttled": CounterMetricFamily("tf_worker_throttled_launches", "Launches that waited.", labels=labels),
        }
        breaches = CounterMetricFamily(
            "tf_worker_isolation_breaches",
            "Tampering or NVML overuse found (state file damaged, compute counters rewritten, VRAM past the limit).",
            labels=["worker", "namespace", "pod"],
        )
        for worker in self.node.workers.values():
            devices = worker.region.devices()
            namespace, pod = worker.pod or ("", "")
            for i, (uuid, u) in enumerate(worker.usage.items()):
                key = [worker.record.name, uuid, namespace, pod]
                families["target"].add_metric(key, u.target)
                families["measured"].add_metric(key, u.utilization)
                families["rate"].add_metric(key, u.rate)
                families["vram"].add_metric(key, devices[i].vram_used_bytes)
                families["launches"].add_metric(key, u.launches)
                families["throttled"].add_metric(key, u.throttled)
            breaches.add_metric([worker.record.name, namespace, pod], worker.breaches)
        yield from families.values()
        yield breaches
        yield GaugeMetricFamily("tf_hypervisor_workers", "Workers on this node.", value=len(self.node.workers))


def build_app(node: Node, token: str, *, reads_need_token: bool = False) -> web.Application:
    """The node API. Off loopback (`reads_need_token`), reading /api/ needs the token too: the
    API has no TLS, and its reads name every worker, pod and limit on the node."""
    app = create_app(client_max_size=64 * 1024, middlewares=[bearer_token(token, "/api/")] if reads_need_token else [])
    app[NODE_KEY] = node
    app[TOKEN_KEY] = token
    app.router.add_get("/api/v1/devices", _devices)
    app.router.add_get("/api/v1/tiering", _tiering)
    app.router.add_get("/api/v1/workers", _workers)
    # A pod worker's name is NAMESPACE/POD: the route takes the rest of the path.
    app.router.add_post("/api/v1/workers/{name:.+}/freeze", _freeze)
    app.router.add_post("/api/v1/workers/{name:.+}/resume", _resume)
    app.router.add_get("/api/v1/workers/{name:.+}", _worker)
    app.router.add_post("/api/v1/workers", _create)
    app.router.add_delete("/api/v1/workers/{name:.+}", _delete)
    registry = CollectorRegistry()
    registry.register(NodeCollector(node))
    add_metrics_route(app, registry)
    return app
