"""Small builders and waits shared by tests that drive the emulator through kubernetes-asyncio."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import aiohttp
from kubernetes_asyncio import client

T = TypeVar("T")


def pod(
    name: str, labels: dict[str, str] | None = None, node: str | None = None, namespace: str = "default"
) -> client.V1Pod:
    container = client.V1Container(name="main", image="busybox:1")
    spec = client.V1PodSpec(containers=[container], node_name=node)
    return client.V1Pod(metadata=client.V1ObjectMeta(name=name, namespace=namespace, labels=labels), spec=spec)


def owner_ref(owner: client.V1ObjectMeta | dict[str, Any], kind: str, api_version: str) -> dict[str, Any]:
    """An ownerReference in wire form (camelCase), for dict bodies."""
    name, uid = (owner["name"], owner["uid"]) if isinstance(owner, dict) else (owner.name, owner.uid)
    return {"apiVersion": api_version, "kind": kind, "name": name, "uid": uid, "blockOwnerDeletion": True}


async def eventually(probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], timeout: float = 2.0) -> T:
    """Poll `probe` until `done` holds: for effects the server applies asynchronously (GC)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await probe()
        if done(value):
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not reached within {timeout}s; last value: {value!r}")
        await asyncio.sleep(0.01)


async def raw_reply(call: Awaitable[object]) -> tuple[int, dict[str, Any]]:
    """(status, JSON body) of a call made with `_preload_content=False`, which hands back the raw
    aiohttp response and raises nothing on failure statuses."""
    response = cast(aiohttp.ClientResponse, await call)
    try:
        body: dict[str, Any] = json.loads(await response.read())
    finally:
        response.release()
    return response.status, body


async def missing(call: Awaitable[object]) -> bool:
    """True when the call answers 404."""
    try:
        await call
    except client.ApiException as error:
        if error.status == 404:
            return True
        raise
    return False
