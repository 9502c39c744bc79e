"""tfcore.k8s.Informer against the Kubernetes API emulator (tests.kubeapi, real HTTP): first list,
watch events in order, dropped watches resumed without loss or repetition, 410 Gone relisted,
an unreachable API server retried with backoff."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from kubernetes_asyncio import client

from tests.kubeapi.emulator import KubeEmulator
from tfcore.k8s import Event, Informer, KubeClient, Resource
from tfcore.k8s.errors import ApiError, Gone

CONFIGMAPS = Resource("/api/v1/configmaps", "ConfigMap")


def configmap(name: str, value: str = "1") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"v": value}}


class Mirror:
    """What a handler builds from the events: name -> data, and the event log."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, str]] = {}
        self.events: list[tuple[str, str]] = []  # (type, name), SYNC as ("SYNC", "<count>")

    def __call__(self, event: Event) -> None:
        if event.type == "SYNC":
            self.objects = {o["metadata"]["name"]: o.get("data") or {} for o in event.objects}
            self.events.append(("SYNC", str(len(event.objects))))
            assert all(o["kind"] == "ConfigMap" for o in event.objects)
            return
        name = event.obj["metadata"]["name"]
        assert event.obj["kind"] == "ConfigMap"
        self.events.append((event.type, name))
        if event.type == "DELETED":
            self.objects.pop(name, None)
        else:
            self.objects[name] = event.obj.get("data") or {}


def _store_write(kube: KubeEmulator, action: str, name: str, value: str = "1") -> None:
    """Write straight into the emulator's store (synchronously: no watch can reconnect in between)."""
    rtype = kube.store.types[("", "configmaps")]
    if action == "create":
        kube.store.create(rtype, "default", configmap(name, value))
    elif action == "patch":
        kube.store.patch(rtype, "default", name, ("application/merge-patch+json", {"data": {"v": value}}))
    else:
        kube.store.delete(rtype, "default", name, {})


@contextlib.asynccontextmanager
async def running(informer: Informer) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(informer.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def eventually(check: Callable[[], bool], what: str) -> None:
    for _ in range(300):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


def _seen(mirror: Mirror, event: tuple[str, str]) -> Callable[[], bool]:
    return lambda: event in mirror.events


def _informer(api: KubeClient, mirror: Mirror, **kwargs: Any) -> Informer:
    return Informer(api, CONFIGMAPS, mirror, backoff=(0.01, 0.05), **kwargs)


async def test_first_list_is_paged_into_one_sync_then_watch_events_arrive_in_order(kube: KubeEmulator) -> None:
    for i in range(5):
        _store_write(kube, "create", f"cm-{i}")
    mirror = Mirror()
    informer = _informer(kube.api_client(), mirror, page_size=2)
    async with running(informer):
        await asyncio.wait_for(informer.synced.wait(), 5)
        assert mirror.events == [("SYNC", "5")]
        _store_write(kube, "create", "new")
        _store_write(kube, "patch", "new", "2")
        _store_write(kube, "delete", "cm-0")
        await eventually(lambda: len(mirror.events) == 4, "three watch events")
    assert mirror.events[1:] == [("ADDED", "new"), ("MODIFIED", "new"), ("DELETED", "cm-0")]
    assert mirror.objects == {"new": {"v": "2"}, **{f"cm-{i}": {"v": "1"} for i in range(1, 5)}}
    assert informer.relists == 1
    assert informer.resource_version == str(kube.store.rv)


async def test_a_dropped_watch_resumes_from_the_last_version_without_relisting(kube: KubeEmulator) -> None:
    mirror = Mirror()
    informer = _informer(kube.api_client(), mirror)
    async with running(informer):
        await asyncio.wait_for(informer.synced.wait(), 5)
        for round_ in range(3):
            kube.store.close_watchers()  # the server ends every watch stream...
            _store_write(kube, "create", f"gap-{round_}")  # ...and writes happen before the informer is back
            _store_write(kube, "patch", f"gap-{round_}", "2")
            await eventually(_seen(mirror, ("MODIFIED", f"gap-{round_}")), f"round {round_} caught up")
    assert informer.relists == 1  # resumed each time: no second list
    assert mirror.events == [
        ("SYNC", "0"),
        *[(t, f"gap-{r}") for r in range(3) for t in ("ADDED", "MODIFIED")],
    ]  # nothing lost, nothing twice
    assert mirror.objects == {f"gap-{r}": {"v": "2"} for r in range(3)}


async def test_a_watch_timeout_resumes_and_bookmarks_move_the_version() -> None:
    async with KubeEmulator(crds=[], bookmark_interval=0.05) as kube:
        mirror = Mirror()
        informer = _informer(kube.api_client(), mirror, watch_timeout=1)
        async with running(informer):
            await asyncio.wait_for(informer.synced.wait(), 5)
            listed = informer.resource_version
            # Writes to another kind move the global resourceVersion; bookmarks carry it to us.
            kube.store.create(kube.store.types[("", "secrets")], "default", {"metadata": {"name": "s"}})
            await eventually(lambda: informer.resource_version != listed, "a bookmark")
            assert informer.resource_version == str(kube.store.rv)
            await asyncio.sleep(1.3)  # past timeoutSeconds: the server ended the watch, the informer is back
            _store_write(kube, "create", "after-timeout")
            await eventually(lambda: ("ADDED", "after-timeout") in mirror.events, "the event after the timeout")
        assert informer.relists == 1
        assert mirror.events == [("SYNC", "0"), ("ADDED", "after-timeout")]


async def test_410_gone_lists_again_and_the_sync_replaces_the_state() -> None:
    async with KubeEmulator(crds=[], history_limit=3) as kube:
        _store_write(kube, "create", "kept")
        _store_write(kube, "create", "doomed")
        mirror = Mirror()
        informer = _informer(kube.api_client(), mirror)
        async with running(informer):
            await asyncio.wait_for(informer.synced.wait(), 5)
            kube.store.close_watchers()
            # More changes than the history holds while the informer is away: its version expires.
            _store_write(kube, "delete", "doomed")
            for i in range(4):
                _store_write(kube, "create", f"new-{i}")
            _store_write(kube, "patch", "kept", "2")
            await eventually(lambda: informer.relists == 2, "a relist after 410")
            await eventually(lambda: mirror.objects.get("kept") == {"v": "2"}, "the relisted state")
            assert mirror.events == [("SYNC", "2"), ("SYNC", "5")]
            assert set(mirror.objects) == {"kept", *(f"new-{i}" for i in range(4))}  # the deletion is not missed
            _store_write(kube, "create", "later")  # and the watch goes on from the new list
            await eventually(lambda: ("ADDED", "later") in mirror.events, "a watch event after the relist")
        assert informer.failures == 0  # 410 is not a failure: no backoff


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_an_api_server_restart_is_retried_with_backoff_and_resumed() -> None:
    port = _free_port()
    kube = KubeEmulator(crds=[], port=port)
    await kube.start()
    api = client.ApiClient(configuration=kube.configuration())  # ours: kube.stop() closes the ones it made
    mirror = Mirror()
    informer = _informer(api, mirror)
    try:
        async with running(informer) as task:
            await asyncio.wait_for(informer.synced.wait(), 5)
            store = kube.store
            await kube.stop()  # every connection goes; the informer gets connection refused
            await eventually(lambda: informer.failures >= 2, "retries while the server is down")
            assert not task.done()  # failures are retried, never raised
            _store_write(kube, "create", "while-down")  # the store (etcd) outlives the server
            restarted = KubeEmulator(crds=[], port=port)
            restarted.store = store
            restarted.kube_app.store = store
            await restarted.start()
            try:
                await eventually(lambda: ("ADDED", "while-down") in mirror.events, "the event made while down")
            finally:
                await restarted.stop()
        assert informer.relists == 1
    finally:
        await api.close()


async def test_a_watch_cut_mid_event_is_retried_from_the_last_version() -> None:
    """The emulator ends streams cleanly; a real connection can die inside a chunk. This tiny server
    sends one event, then half of the next, then resets the connection, on every watch."""
    watched_from: list[str] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while head := await reader.readuntil(b"\r\n\r\n"):
            target = head.split(b" ", 2)[1].decode()
            if "watch=true" not in target:
                body = json.dumps({"kind": "ConfigMapList", "metadata": {"resourceVersion": "5"}, "items": []})
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body.encode()))
                continue
            since = parse_qs(urlsplit(target).query)["resourceVersion"][0]
            watched_from.append(since)
            version = int(since) + 1
            event = {
                "type": "ADDED",
                "object": {"metadata": {"name": f"cm-{version}", "resourceVersion": str(version)}},
            }
            line = json.dumps(event).encode() + b"\n"
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            writer.write(b"%x\r\n%s\r\n" % (len(line), line) + b'100\r\n{"type": "ADD')
            await writer.drain()
            writer.transport.abort()
            return

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    api = client.ApiClient(configuration=client.Configuration(host=f"http://127.0.0.1:{port}"))
    mirror = Mirror()
    informer = _informer(api, mirror)
    try:
        async with running(informer) as task:
            await eventually(lambda: len(mirror.events) >= 4, "three cut watches")
            assert not task.done()
    finally:
        await api.close()
        server.close()
        await server.wait_closed()
    assert mirror.events[:4] == [("SYNC", "0"), ("ADDED", "cm-6"), ("ADDED", "cm-7"), ("ADDED", "cm-8")]
    assert watched_from[:3] == ["5", "6", "7"]  # each retry resumes after the last whole event
    assert informer.relists == 1
    assert informer.failures >= 3


def test_error_events_raise_gone_for_410_and_api_errors_otherwise() -> None:
    """What run() turns into a relist (Gone) or a retry with backoff (ApiError)."""
    mirror = Mirror()
    informer = Informer(None, CONFIGMAPS, mirror)  # type: ignore[arg-type]  # no request is made
    informer._on_line(b'{"type": "ADDED", "object": {"metadata": {"name": "x", "resourceVersion": "7"}}}')
    assert mirror.events == [("ADDED", "x")]
    assert informer.resource_version == "7"
    for code in (500, 403):
        with pytest.raises(ApiError) as raised:
            informer._on_line(b'{"type": "ERROR", "object": {"kind": "Status", "code": %d}}' % code)
        assert not isinstance(raised.value, Gone)
    with pytest.raises(Gone):
        informer._on_line(b'{"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old"}}')
