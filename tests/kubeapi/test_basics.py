"""CRUD shapes and server-filled metadata, through the real kubernetes-asyncio client."""

# The generated client's annotations ask for model objects, but it serializes plain dicts as
# they are; these tests send wire-shaped dicts on purpose, and pass `_content_type`, which the
# annotations do not list.
# mypy: disable-error-code="arg-type,call-arg"

from __future__ import annotations

import json
import re
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client

from tests.kubeapi import KubeEmulator
from tests.kubeapi.objects import pod


async def test_version_and_discovery(kube: KubeEmulator) -> None:
    api = kube.api_client()
    version = await client.VersionApi(api).get_code()
    assert (version.major, version.minor) == ("1", "33")
    async with aiohttp.ClientSession() as session, session.get(f"{kube.url}/version/") as trailing:
        assert trailing.status == 200  # kmock answered 404 here
    core = await client.CoreApi(api).get_api_versions()
    assert core.versions == ["v1"]
    groups = {g.name: g for g in (await client.ApisApi(api).get_api_versions()).groups}
    assert {"apps", "coordination.k8s.io", "apiextensions.k8s.io", "tensor-fusion.ai"} <= set(groups)
    assert groups["tensor-fusion.ai"].preferred_version.group_version == "tensor-fusion.ai/v1"
    resources = {r.name: r for r in (await client.CoreV1Api(api).get_api_resources()).resources}
    assert resources["pods"].namespaced
    assert not resources["nodes"].namespaced
    assert {"pods/status", "pods/binding", "nodes/status"} <= set(resources)
    tf = {r.name: r for r in (await client.CustomObjectsApi(api).get_api_resources("tensor-fusion.ai", "v1")).resources}
    assert tf["gpupools"].kind == "GPUPool"
    assert not tf["gpupools"].namespaced
    assert tf["tensorfusionworkloads"].namespaced
    assert "gpupools/status" in tf


async def test_create_fills_server_metadata_and_answers_201(kube: KubeEmulator) -> None:
    api = kube.api_client()
    core = client.CoreV1Api(api)
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(generate_name="settings-"), data={"a": "1"})
    created, status, _ = await core.create_namespaced_config_map_with_http_info("default", body)
    assert status == 201
    meta = created.metadata
    assert re.fullmatch(r"settings-[a-z0-9]{5}", meta.name)
    assert meta.namespace == "default"  # taken from the URL
    assert re.fullmatch(r"[0-9a-f-]{36}", meta.uid)
    assert meta.creation_timestamp is not None
    assert meta.resource_version
    custom = client.CustomObjectsApi(api)
    profile = {
        "apiVersion": "tensor-fusion.ai/v1",
        "kind": "WorkloadProfile",
        "metadata": {"name": "small"},
        "spec": {},
    }
    made = await custom.create_namespaced_custom_object(
        "tensor-fusion.ai", "v1", "default", "workloadprofiles", profile
    )
    assert made is not None  # the client only decodes a 201 for custom objects
    assert made["metadata"]["namespace"] == "default"
    assert made["metadata"]["uid"]


async def test_namespace_mismatch_missing_namespace_and_missing_name(kube: KubeEmulator) -> None:
    core = client.CoreV1Api(kube.api_client())
    with pytest.raises(client.ApiException) as mismatch:
        await core.create_namespaced_config_map("default", {"metadata": {"name": "x", "namespace": "other"}})
    assert mismatch.value.status == 400
    with pytest.raises(client.ApiException) as absent:
        await core.create_namespaced_config_map("nowhere", {"metadata": {"name": "x"}})
    assert absent.value.status == 404
    assert json.loads(absent.value.body)["details"]["kind"] == "namespaces"
    with pytest.raises(client.ApiException) as nameless:
        await core.create_namespaced_config_map("default", {"metadata": {}})
    assert nameless.value.status == 422
    with pytest.raises(client.ApiException) as bad_name:
        await core.create_namespaced_config_map("default", {"metadata": {"name": "Not_A_Name"}})
    assert json.loads(bad_name.value.body)["details"]["causes"][0]["field"] == "metadata.name"


async def test_already_exists_and_not_found_are_status_bodies(kube: KubeEmulator) -> None:
    core = client.CoreV1Api(kube.api_client())
    await core.create_namespaced_pod("default", pod("web"))
    with pytest.raises(client.ApiException) as exists:
        await core.create_namespaced_pod("default", pod("web"))
    status = json.loads(exists.value.body)
    assert exists.value.status == 409
    assert status["kind"] == "Status"
    assert status["reason"] == "AlreadyExists"
    assert status["code"] == 409
    assert status["details"] == {"name": "web", "kind": "pods"}
    with pytest.raises(client.ApiException) as absent:
        await core.read_namespaced_pod("nope", "default")
    status = json.loads(absent.value.body)
    assert (absent.value.status, status["reason"], status["message"]) == (404, "NotFound", 'pods "nope" not found')
    custom = client.CustomObjectsApi(kube.api_client())
    with pytest.raises(client.ApiException) as absent_custom:
        await custom.get_cluster_custom_object("tensor-fusion.ai", "v1", "gpupools", "nope")
    assert json.loads(absent_custom.value.body)["details"] == {
        "name": "nope",
        "kind": "gpupools",
        "group": "tensor-fusion.ai",
    }


async def test_every_write_moves_the_global_resource_version(kube: KubeEmulator) -> None:
    core = client.CoreV1Api(kube.api_client())
    first = await core.create_namespaced_config_map("default", {"metadata": {"name": "a"}, "data": {"k": "1"}})
    second = await core.create_namespaced_config_map("kube-system", {"metadata": {"name": "b"}})
    replaced = await core.replace_namespaced_config_map("a", "default", {"metadata": {"name": "a"}, "data": {"k": "2"}})
    versions = [int(o.metadata.resource_version) for o in (first, second, replaced)]
    assert versions == sorted(versions)
    assert len(set(versions)) == 3
    unchanged = await core.replace_namespaced_config_map(
        "a", "default", {"metadata": {"name": "a"}, "data": {"k": "2"}}
    )
    assert unchanged.metadata.resource_version == replaced.metadata.resource_version  # a no-op is not a write
    listing = await core.list_config_map_for_all_namespaces()
    assert int(listing.metadata.resource_version) >= versions[-1]
    assert {(c.metadata.namespace, c.metadata.name) for c in listing.items} == {("default", "a"), ("kube-system", "b")}


async def test_put_replaces_and_put_of_a_missing_object_is_404(kube: KubeEmulator) -> None:
    core = client.CoreV1Api(kube.api_client())
    await core.create_namespaced_config_map(
        "default", {"metadata": {"name": "a", "labels": {"x": "1"}}, "data": {"k": "1"}}
    )
    replaced = await core.replace_namespaced_config_map("a", "default", {"metadata": {"name": "a"}, "data": {"j": "2"}})
    assert replaced.data == {"j": "2"}
    assert not replaced.metadata.labels
    with pytest.raises(client.ApiException) as absent:
        await core.replace_namespaced_config_map("b", "default", {"metadata": {"name": "b"}})
    assert absent.value.status == 404
    with pytest.raises(client.ApiException) as renamed:
        await core.replace_namespaced_config_map("a", "default", {"metadata": {"name": "other"}})
    assert renamed.value.status == 400


async def test_delete_returns_the_object_or_a_status_like_the_server(kube: KubeEmulator) -> None:
    core = client.CoreV1Api(kube.api_client())
    await core.create_namespaced_pod("default", pod("web"))
    deleted = await core.delete_namespaced_pod("web", "default")
    assert isinstance(deleted, client.V1Pod)
    assert deleted.metadata.name == "web"
    await core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    status = await core.delete_namespaced_config_map("a", "default")
    assert status.status == "Success"
    assert status.details.name == "a"
    with pytest.raises(client.ApiException) as again:
        await core.delete_namespaced_config_map("a", "default")
    assert again.value.status == 404


async def test_list_pagination_with_limit_and_continue(kube: KubeEmulator) -> None:
    core = client.CoreV1Api(kube.api_client())
    for n in range(5):
        await core.create_namespaced_config_map("default", {"metadata": {"name": f"cm-{n}"}})
    names, token, pages = [], None, 0
    while True:
        page = await core.list_namespaced_config_map("default", limit=2, _continue=token)
        names += [c.metadata.name for c in page.items]
        pages += 1
        token = page.metadata._continue
        if not token:
            break
        assert page.metadata.remaining_item_count == 5 - len(names)
    assert names == [f"cm-{n}" for n in range(5)]
    assert pages == 3
    with pytest.raises(client.ApiException) as bad:
        await core.list_namespaced_config_map("default", _continue="garbage!")
    assert bad.value.status == 400


async def test_built_in_kinds_are_served(kube: KubeEmulator) -> None:
    api = kube.api_client()
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    node = await core.create_node({"metadata": {"name": "gpu-1"}, "status": {"capacity": {"cpu": "8"}}})
    assert node.status.capacity == {"cpu": "8"}  # nodes keep status on create (the kubelet registers that way)
    secret = await core.create_namespaced_secret("default", {"metadata": {"name": "s"}, "stringData": {"token": "abc"}})
    assert secret.data == {"token": "YWJj"}
    assert secret.type == "Opaque"
    service = await core.create_namespaced_service(
        "default", {"metadata": {"name": "svc"}, "spec": {"ports": [{"port": 80}]}}
    )
    assert service.spec.cluster_ip.startswith("10.96.")
    assert service.spec.ports[0].protocol == "TCP"
    event = {"metadata": {"name": "e1"}, "involvedObject": {"kind": "Pod", "name": "web"}, "reason": "Scheduled"}
    assert (await core.create_namespaced_event("default", event)).reason == "Scheduled"
    labels = {"app": "web"}
    template = {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    deployment: dict[str, Any] = {
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": template},
    }
    made = await apps.create_namespaced_deployment("default", deployment)
    assert made.metadata.generation == 1
    assert not made.status or not made.status.replicas  # create does not take status
    statefulset = {**deployment, "spec": {**deployment["spec"], "serviceName": "svc"}}
    assert (await apps.create_namespaced_stateful_set("default", statefulset)).spec.service_name == "svc"
    assert (await apps.create_namespaced_replica_set("default", deployment)).spec.replicas == 2
    scale = await apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 5}})
    assert scale.spec.replicas == 5
    assert (await apps.read_namespaced_deployment("web", "default")).spec.replicas == 5
    namespace = await core.create_namespace({"metadata": {"name": "team-a"}})
    assert namespace.status.phase == "Active"
