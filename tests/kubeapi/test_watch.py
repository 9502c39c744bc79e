"""Watch: ordered events from a resourceVersion, 410 Expired and relist, bookmarks, timeouts."""

# The generated client's annotations ask for model objects, but it serializes plain dicts as
# they are; these tests send wire-shaped dicts on purpose, and pass `_content_type`, which the
# annotations do not list.
# mypy: disable-error-code="arg-type,call-arg"

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from kubernetes_asyncio import client, watch

from tests.kubeapi import KubeEmulator
from tests.kubeapi.objects import eventually, pod, raw_reply


async def _events(func: object, *args: object, until: str = "", **kwargs: object) -> list[tuple[str, str, str]]:
    """(type, name, resourceVersion) of events, up to the first about `until` (not included) or the
    server-side timeout. A marker object written last proves nothing else was delivered before it,
    since events arrive in resourceVersion order, without waiting for a timeout."""
    seen = []
    async with watch.Watch() as stream:
        async for event in stream.stream(func, *args, **kwargs):
            raw = event["raw_object"]
            if until and raw["metadata"].get("name") == until:
                break
            seen.append((event["type"], raw["metadata"].get("name", ""), raw["metadata"]["resourceVersion"]))
    return seen


@pytest.mark.parametrize("flag", ["true", "True", "1"])
async def test_watch_flag_spellings_all_stream(kube: KubeEmulator, flag: str) -> None:
    core = client.CoreV1Api(kube.api_client())
    await core.create_namespaced_pod("default", pod("web"))
    url = f"{kube.url}/api/v1/namespaces/default/pods?watch={flag}&resourceVersion=0"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        first = json.loads(await response.content.readline())
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "web")


async def test_resumed_watch_receives_exactly_the_missed_events_in_order(kube: KubeEmulator) -> None:
    core = client.CoreV1Api(kube.api_client())
    listing = await core.list_namespaced_pod("default")
    start = listing.metadata.resource_version
    await core.create_namespaced_pod("default", pod("a"))
    await core.create_namespaced_config_map("default", {"metadata": {"name": "noise"}})  # another kind: not seen
    await core.patch_namespaced_pod("a", "default", {"metadata": {"labels": {"v": "2"}}})
    await core.create_namespaced_pod("default", pod("b"))
    await core.delete_namespaced_pod("a", "default")
    await core.create_namespaced_pod("default", pod("end"))
    events = await _events(core.list_namespaced_pod, "default", until="end", resource_version=start, timeout_seconds=5)
    assert [(t, n) for t, n, _ in events] == [("ADDED", "a"), ("MODIFIED", "a"), ("ADDED", "b"), ("DELETED", "a")]
    versions = [int(rv) for _, _, rv in events]
    assert versions == sorted(versions)
    assert versions[0] > int(start)
    # Resuming from the middle gets only what came after it.
    tail = await _events(
        core.list_namespaced_pod, "default", until="end", resource_version=events[1][2], timeout_seconds=5
    )
    assert [(t, n) for t, n, _ in tail] == [("ADDED", "b"), ("DELETED", "a")]


async def _watching(kube: KubeEmulator, count: int) -> None:
    """Wait until `count` watches are open on the server (so later writes reach them live)."""
    await eventually(lambda: _count(kube), lambda n: n >= count)


async def _count(kube: KubeEmulator) -> int:
    return len(kube.store.watchers)


async def _collect(func: object, *args: object, limit: int, **kwargs: object) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    async with watch.Watch() as stream:
        async for event in stream.stream(func, *args, **kwargs):
            seen.append((event["type"], event["raw_object"]["metadata"].get("name", "")))
            if len(seen) == limit:
                stream.stop()
    return seen


async def test_live_watch_sees_writes_made_while_it_is_open(kube: KubeEmulator) -> None:
    core = client.CoreV1Api(kube.api_client())
    start = (await core.list_namespaced_pod("default")).metadata.resource_version
    consumer = asyncio.create_task(
        _collect(core.list_namespaced_pod, "default", limit=3, resource_version=start, timeout_seconds=5)
    )
    await _watching(kube, 1)
    created = await core.create_namespaced_pod("default", pod("a"))
    await core.replace_namespaced_pod("a", "default", created)  # a no-op write: no event
    await core.patch_namespaced_pod("a", "default", {"metadata": {"labels": {"x": "y"}}})
    await core.delete_namespaced_pod("a", "default")
    async with asyncio.timeout(5):
        assert await consumer == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]


async def test_too_old_resource_version_gets_410_expired_and_a_relist_recovers() -> None:
    async with KubeEmulator(history_limit=3, crds=[]) as small:
        core = client.CoreV1Api(small.api_client())
        start = (await core.list_namespaced_config_map("default")).metadata.resource_version
        for n in range(5):
            await core.create_namespaced_config_map("default", {"metadata": {"name": f"cm-{n}"}})
        url = f"{small.url}/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={start}"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            lines = [json.loads(line) async for line in response.content if line.strip()]
        assert response.status == 200  # the server answers 200, then one ERROR event
        assert len(lines) == 1
        assert lines[0]["type"] == "ERROR"
        status = lines[0]["object"]
        assert (status["kind"], status["code"], status["reason"]) == ("Status", 410, "Expired")
        with pytest.raises(client.ApiException) as expired:
            await _events(core.list_namespaced_config_map, "default", resource_version=start, timeout_seconds=1)
        assert expired.value.status == 410
        relisted = await core.list_namespaced_config_map("default")
        assert len(relisted.items) == 5
        consumer = asyncio.create_task(
            _collect(
                core.list_namespaced_config_map,
                "default",
                limit=1,
                resource_version=relisted.metadata.resource_version,
                timeout_seconds=5,
            )
        )
        await _watching(small, 1)
        await core.create_namespaced_config_map("default", {"metadata": {"name": "after-relist"}})
        async with asyncio.timeout(5):
            assert await consumer == [("ADDED", "after-relist")]
        # The newest retained events can still be resumed from.
        await core.create_namespaced_config_map("default", {"metadata": {"name": "end"}})
        since = relisted.items[3].metadata.resource_version
        recent = await _events(
            core.list_namespaced_config_map, "default", until="end", resource_version=since, timeout_seconds=5
        )
        assert [(t, n) for t, n, _ in recent] == [("ADDED", "cm-4"), ("ADDED", "after-relist")]


async def test_bookmarks_only_when_allowed_and_carry_the_current_resource_version() -> None:
    async with KubeEmulator(bookmark_interval=0.1, crds=[]) as fast:
        core = client.CoreV1Api(fast.api_client())
        made = await core.create_namespaced_pod("default", pod("a"))
        events = await _events(
            core.list_namespaced_pod,
            "default",
            resource_version=made.metadata.resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=1,
        )
        assert events
        assert {t for t, _, _ in events} == {"BOOKMARK"}
        assert events[-1][2] == str(fast.store.rv)
        plain = asyncio.create_task(
            _events(
                core.list_namespaced_pod,
                "default",
                until="end",
                resource_version=made.metadata.resource_version,
                timeout_seconds=5,
            )
        )
        await _watching(fast, 1)
        await asyncio.sleep(0.3)  # a few bookmark intervals pass
        await core.create_namespaced_pod("default", pod("end"))
        assert await plain == []


async def test_send_initial_events_ends_with_a_marked_bookmark(kube: KubeEmulator) -> None:
    core = client.CoreV1Api(kube.api_client())
    await core.create_namespaced_pod("default", pod("a"))
    query = "watch=true&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan"
    async with aiohttp.ClientSession() as session, session.get(f"{kube.url}/api/v1/pods?{query}") as response:
        lines = [json.loads(await response.content.readline()) for _ in range(2)]
    assert [e["type"] for e in lines[:2]] == ["ADDED", "BOOKMARK"]
    assert lines[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


async def test_selector_watch_turns_leaving_and_joining_into_deleted_and_added(kube: KubeEmulator) -> None:
    core = client.CoreV1Api(kube.api_client())
    start = (await core.list_namespaced_pod("default")).metadata.resource_version
    await core.create_namespaced_pod("default", pod("a", labels={"app": "web"}))
    await core.create_namespaced_pod("default", pod("b", labels={"app": "db"}))
    await core.patch_namespaced_pod("a", "default", {"metadata": {"labels": {"app": "db"}}})
    await core.patch_namespaced_pod("b", "default", {"metadata": {"labels": {"app": "web"}}})
    await core.patch_namespaced_pod("b", "default", {"metadata": {"annotations": {"n": "1"}}})
    binding = client.V1Binding(
        metadata=client.V1ObjectMeta(name="a"), target=client.V1ObjectReference(kind="Node", name="gpu-1")
    )
    code, _ = await raw_reply(core.create_namespaced_pod_binding("a", "default", binding, _preload_content=False))
    assert code == 201
    await core.create_namespaced_pod("default", pod("end", labels={"app": "web"}, node="gpu-1"))
    events = await _events(
        core.list_namespaced_pod,
        "default",
        until="end",
        label_selector="app=web",
        resource_version=start,
        timeout_seconds=5,
    )
    assert [(t, n) for t, n, _ in events] == [("ADDED", "a"), ("DELETED", "a"), ("ADDED", "b"), ("MODIFIED", "b")]
    on_node = await _events(
        core.list_pod_for_all_namespaces,
        until="end",
        field_selector="spec.nodeName=gpu-1",
        resource_version=start,
        timeout_seconds=5,
    )
    assert [(t, n) for t, n, _ in on_node] == [("ADDED", "a")]  # binding moved it into the selection


async def test_custom_resource_watch_with_custom_objects_api(kube: KubeEmulator) -> None:
    custom = client.CustomObjectsApi(kube.api_client())
    listing = await custom.list_cluster_custom_object("tensor-fusion.ai", "v1", "gpus")
    await custom.create_cluster_custom_object(
        "tensor-fusion.ai",
        "v1",
        "gpus",
        {"apiVersion": "tensor-fusion.ai/v1", "kind": "GPU", "metadata": {"name": "gpu-0"}},
    )
    await custom.delete_cluster_custom_object("tensor-fusion.ai", "v1", "gpus", "gpu-0")
    await custom.create_cluster_custom_object(
        "tensor-fusion.ai",
        "v1",
        "gpus",
        {"apiVersion": "tensor-fusion.ai/v1", "kind": "GPU", "metadata": {"name": "end"}},
    )
    since = listing["metadata"]["resourceVersion"]
    events = await _events(
        custom.list_cluster_custom_object,
        "tensor-fusion.ai",
        "v1",
        "gpus",
        until="end",
        resource_version=since,
        timeout_seconds=5,
    )
    assert [(t, n) for t, n, _ in events] == [("ADDED", "gpu-0"), ("DELETED", "gpu-0")]


async def test_open_watches_end_when_the_emulator_stops() -> None:
    emulator = KubeEmulator(crds=[])
    await emulator.start()
    async with aiohttp.ClientSession() as session, session.get(f"{emulator.url}/api/v1/pods?watch=true") as response:
        await _watching(emulator, 1)
        await emulator.stop()
        async with asyncio.timeout(5):
            assert await response.content.read() == b""
