"""Every body-taking HTTP route answers hostile and random bodies with a 4xx, never a 5xx.

The scheduler's admin routes are also fuzzed from their OpenAPI document (schemathesis,
tests/daemons/scheduler/test_openapi_fuzz.py); here hypothesis builds bodies for every
route: random bytes, random JSON, the route's own keys with random values, and nesting a
thousand levels deep. Each app runs in-process on its own loop in a thread. Example counts
are small so that `make test` stays fast; the named cases the issue found are always tried.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from daemons.scheduler.http import admin_app, extender_app
from daemons.webhook.server import MUTATE_PATH, Webhook
from daemons.webhook.server import build_app as webhook_app
from tests.daemons.scheduler.conftest import Setup
from tests.e2e.compute_node import LocalNode
from tests.unit.admission.pods import cluster, review_body, tf_pod
from tfcore.admission import InjectionConfig
from tfcore.web.app import Listener, start

FUZZ = settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
DEEP = 1500  # deeper than any decoder's recursion limit

json_leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
json_value = st.recursive(
    json_leaf, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
)


def deep_json(kind: str, depth: int = DEEP) -> bytes:
    return (b"[" * depth + b"]" * depth) if kind == "list" else (b'{"a":' * depth + b"1" + b"}" * depth)


def with_deep(document: dict[str, Any], *path: str, kind: str = "dict", depth: int = DEEP) -> bytes:
    """`document` as JSON with a value `depth` levels deep at `path` (json.dumps cannot nest so deep)."""
    marker = "__deep__"
    target = document = json.loads(json.dumps(document))
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = marker
    return json.dumps(document).encode().replace(f'"{marker}"'.encode(), deep_json(kind, depth))


def bodies(keys: list[str], good: dict[str, Any]) -> st.SearchStrategy[bytes]:
    """Bytes, JSON, the route's keys with random values, a good body with one key replaced,
    and a deep value under one of the route's keys."""
    with_keys = st.dictionaries(st.sampled_from(keys), json_value, max_size=len(keys))
    replaced = st.tuples(st.sampled_from(keys), json_value).map(lambda kv: {**good, kv[0]: kv[1]})
    nested = st.tuples(st.sampled_from(keys), st.sampled_from(["list", "dict"]), st.sampled_from([100, DEEP])).map(
        lambda kdn: with_deep(good, kdn[0], kind=kdn[1], depth=kdn[2])
    )
    as_json = (json_value | with_keys | replaced).map(lambda v: json.dumps(v).encode())
    return st.binary(max_size=64) | as_json | nested | st.sampled_from([deep_json("list"), deep_json("dict")])


def post(url: str, body: bytes, content_type: str = "application/json", token: str = "") -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read().decode(errors="replace")


def assert_client_error_or_ok(status: int, text: str) -> None:
    assert status < 500, (status, text[:500])


@pytest.fixture(scope="module")
def serve() -> Iterator[Callable[[Callable[[], web.Application]], str]]:
    """Starts apps on one loop in a thread; gives each one's base URL."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    served: list[Any] = []

    def start_app(factory: Callable[[], web.Application]) -> str:
        async def go() -> str:
            running = await start([(factory(), Listener("127.0.0.1", 0))], grace=1.0)
            served.append(running)
            return f"http://127.0.0.1:{running.addresses()[0][1]}"

        return asyncio.run_coroutine_threadsafe(go(), loop).result(30)

    yield start_app
    for running in served:
        asyncio.run_coroutine_threadsafe(running.close(grace=1.0), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


# ---- scheduler extender --------------------------------------------------------------------------

EXTENDER_GOOD: dict[str, Any] = {"Pod": {"metadata": {"name": "p", "namespace": "default"}}, "NodeNames": ["node-0"]}
EXTENDER_KEYS = ["Pod", "Nodes", "NodeNames"]
BIND_GOOD = {"PodName": "p", "PodNamespace": "default", "PodUID": "u", "Node": "node-0"}


@pytest.fixture(scope="module")
def extender_url(serve: Callable[[Callable[[], web.Application]], str]) -> str:
    setup = Setup()
    return serve(lambda: extender_app(setup.service, setup.cluster))


@pytest.mark.parametrize("route", ["/filter", "/prioritize"])
def test_extender_filter_and_prioritize_never_answer_5xx(extender_url: str, route: str) -> None:
    @FUZZ
    @given(body=bodies(EXTENDER_KEYS, EXTENDER_GOOD))
    @example(body=json.dumps({"Pod": {}, "Nodes": {"items": 7}}).encode())
    @example(body=json.dumps({"Pod": {}, "Nodes": {"items": ["node-0", 3]}}).encode())
    @example(body=json.dumps({"Pod": {}, "Nodes": {"items": [{"metadata": 5}]}}).encode())
    @example(body=with_deep(EXTENDER_GOOD, "Pod"))
    @example(body=with_deep({"Pod": {}, "NodeNames": None}, "Nodes", kind="list", depth=900))
    def check(body: bytes) -> None:
        assert_client_error_or_ok(*post(extender_url + route, body))

    check()


def test_extender_bind_never_answers_5xx(extender_url: str) -> None:
    @FUZZ
    @given(body=bodies(list(BIND_GOOD), BIND_GOOD))
    def check(body: bytes) -> None:
        assert_client_error_or_ok(*post(extender_url + "/bind", body))

    check()


def test_nodes_items_that_are_not_objects_are_400_naming_the_field(extender_url: str) -> None:
    status, text = post(extender_url + "/filter", json.dumps({"Pod": {}, "Nodes": {"items": 7}}).encode())
    assert status == 400
    assert "body.Nodes" in text


@pytest.mark.parametrize("kind", ["list", "dict"])
def test_deep_extender_bodies_are_400_saying_so(extender_url: str, kind: str) -> None:
    status, text = post(extender_url + "/filter", with_deep({"Pod": {}}, "Pod", "spec", kind=kind))
    assert status == 400
    assert "nested" in text


# ---- scheduler admin API -------------------------------------------------------------------------

POD_GOOD: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}


@pytest.fixture(scope="module")
def admin_url(serve: Callable[[Callable[[], web.Application]], str]) -> str:
    return serve(lambda: admin_app(Setup().service))


@pytest.mark.parametrize("content_type", ["application/json", "application/yaml"])
def test_simulate_schedule_never_answers_5xx(admin_url: str, content_type: str) -> None:
    @FUZZ
    @given(body=bodies(list(POD_GOOD), POD_GOOD))
    @example(body=with_deep(POD_GOOD, "spec"))
    @example(body=b"a: &a [" + b"*a, " * 50 + b"1]\nb: &b [" + b"*a, " * 50 + b"1]\n")
    def check(body: bytes) -> None:
        assert_client_error_or_ok(*post(admin_url + "/api/simulate-schedule", body, content_type))

    check()


@pytest.mark.parametrize("content_type", ["application/json", "application/yaml"])
def test_deep_pods_are_400_saying_so(admin_url: str, content_type: str) -> None:
    status, text = post(admin_url + "/api/simulate-schedule", deep_json("list"), content_type)
    assert status == 400
    assert "nested" in text or "nesting" in text


# ---- webhook --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def webhook_url(serve: Callable[[Callable[[], web.Application]], str]) -> str:
    return serve(lambda: webhook_app(Webhook(InjectionConfig(), cluster)))


def test_webhook_never_answers_5xx(webhook_url: str) -> None:
    good = json.loads(review_body(tf_pod({"tensor-fusion.ai/tflops-request": "10"})))
    keys = ["apiVersion", "kind", "request"]

    @FUZZ
    @given(body=bodies(keys, good))
    @example(body=with_deep(good, "request", "object"))
    def check(body: bytes) -> None:
        assert_client_error_or_ok(*post(webhook_url + MUTATE_PATH, body))

    check()


def test_deep_admission_reviews_are_400(webhook_url: str) -> None:
    status, text = post(webhook_url + MUTATE_PATH, deep_json("dict"))
    assert status == 400
    assert "nested" in text


# ---- hypervisor node API --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNode]:
    with LocalNode(tmp_path_factory.mktemp("fuzz-node")) as running:
        yield running.start()


def test_node_api_create_never_answers_5xx(node: LocalNode) -> None:
    token = (node.state_dir / "token").read_text().strip()
    good = {"name": "w", "vram": "1Mi", "tflops_request": "1"}

    @FUZZ
    @given(body=bodies([*good, "tflops_limit", "gpu_count", "gpus", "owner_pid"], good))
    @example(body=json.dumps({**good, "tflops_request": -5}).encode())
    @example(body=json.dumps({**good, "tflops_request": "-5"}).encode())
    @example(body=json.dumps({**good, "tflops_limit": -1}).encode())
    def check(body: bytes) -> None:
        assert_client_error_or_ok(*post(node.url + "/api/v1/workers", body, token=token))

    check()


def test_a_negative_tflops_request_is_400_naming_the_field(node: LocalNode) -> None:
    token = (node.state_dir / "token").read_text().strip()
    body = json.dumps({"name": "neg", "vram": "1Mi", "tflops_request": -5}).encode()
    status, text = post(node.url + "/api/v1/workers", body, token=token)
    assert status == 400
    assert "tflops_request" in text
