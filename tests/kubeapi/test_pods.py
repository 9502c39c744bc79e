"""Pods: binding sets spec.nodeName once, eviction, and the spec fields an update may not touch."""

# The generated client's annotations ask for model objects, but it serializes plain dicts as
# they are; these tests send wire-shaped dicts on purpose, and pass `_content_type`, which the
# annotations do not list.
# mypy: disable-error-code="arg-type,call-arg"

from __future__ import annotations

import json

import pytest
from kubernetes_asyncio import client

from tests.kubeapi import KubeEmulator
from tests.kubeapi.objects import missing, pod, raw_reply


def _binding(pod_name: str, node: str) -> client.V1Binding:
    return client.V1Binding(
        metadata=client.V1ObjectMeta(name=pod_name), target=client.V1ObjectReference(kind="Node", name=node)
    )


async def test_binding_sets_node_name_once_and_a_second_binding_conflicts(kube: KubeEmulator) -> None:
    core = client.CoreV1Api(kube.api_client())
    await core.create_namespaced_pod("default", pod("web"))
    # The server answers a Status, which the generated client cannot decode into a V1Binding:
    # schedulers must pass _preload_content=False.
    code, status = await raw_reply(
        core.create_namespaced_pod_binding("web", "default", _binding("web", "gpu-1"), _preload_content=False)
    )
    assert (code, status["kind"], status["status"]) == (201, "Status", "Success")
    bound = await core.read_namespaced_pod("web", "default")
    assert bound.spec.node_name == "gpu-1"
    assert [(c.type, c.status) for c in bound.status.conditions] == [("PodScheduled", "True")]
    # With _preload_content=False the client raises nothing: the caller reads the status itself.
    code, body = await raw_reply(
        core.create_namespaced_pod_binding("web", "default", _binding("web", "gpu-2"), _preload_content=False)
    )
    assert code == 409
    assert body["reason"] == "Conflict"
    assert 'already assigned to node "gpu-1"' in body["message"]
    assert (await core.read_namespaced_pod("web", "default")).spec.node_name == "gpu-1"


async def test_namespaced_bindings_endpoint_and_missing_pod(kube: KubeEmulator) -> None:
    core = client.CoreV1Api(kube.api_client())
    await core.create_namespaced_pod("default", pod("web"))
    code, _ = await raw_reply(
        core.create_namespaced_binding("default", _binding("web", "gpu-1"), _preload_content=False)
    )
    assert code == 201
    assert (await core.read_namespaced_pod("web", "default")).spec.node_name == "gpu-1"
    code, status = await raw_reply(
        core.create_namespaced_pod_binding("ghost", "default", _binding("ghost", "gpu-1"), _preload_content=False)
    )
    assert (code, status["reason"]) == (404, "NotFound")


async def test_node_name_cannot_be_changed_by_update(kube: KubeEmulator) -> None:
    core = client.CoreV1Api(kube.api_client())
    await core.create_namespaced_pod("default", pod("web", node="gpu-1"))  # set at create: allowed
    with pytest.raises(client.ApiException) as refused:
        await core.patch_namespaced_pod("web", "default", {"spec": {"nodeName": "gpu-2"}})
    assert refused.value.status == 422
    assert json.loads(refused.value.body)["details"]["causes"][0]["field"] == "spec"
    with pytest.raises(client.ApiException) as resources:
        await core.patch_namespaced_pod(
            "web", "default", {"spec": {"containers": [{"name": "main", "resources": {"limits": {"cpu": "1"}}}]}}
        )
    assert resources.value.status == 422
    image = await core.patch_namespaced_pod(
        "web", "default", {"spec": {"containers": [{"name": "main", "image": "busybox:2"}]}}
    )
    assert image.spec.containers[0].image == "busybox:2"


async def test_scheduling_gates_may_only_be_removed(kube: KubeEmulator) -> None:
    api = kube.api_client()
    core = client.CoreV1Api(api)
    gated = api.sanitize_for_serialization(pod("web"))
    gated["spec"]["schedulingGates"] = [{"name": "tensor-fusion.ai/gpu"}]
    await core.create_namespaced_pod("default", gated)
    with pytest.raises(client.ApiException) as added:
        await core.patch_namespaced_pod(
            "web",
            "default",
            {"spec": {"schedulingGates": [{"name": "tensor-fusion.ai/gpu"}, {"name": "x/y"}]}},
            _content_type="application/merge-patch+json",
        )
    assert added.value.status == 422
    ungated = await core.patch_namespaced_pod("web", "default", [{"op": "remove", "path": "/spec/schedulingGates"}])
    assert ungated.spec.scheduling_gates is None


async def test_pod_needs_containers(kube: KubeEmulator) -> None:
    core = client.CoreV1Api(kube.api_client())
    with pytest.raises(client.ApiException) as refused:
        await core.create_namespaced_pod("default", {"metadata": {"name": "empty"}, "spec": {"containers": []}})
    assert refused.value.status == 422


async def test_eviction_deletes_the_pod(kube: KubeEmulator) -> None:
    core = client.CoreV1Api(kube.api_client())
    await core.create_namespaced_pod("default", pod("web"))
    eviction = client.V1Eviction(metadata=client.V1ObjectMeta(name="web", namespace="default"))
    code, _ = await raw_reply(core.create_namespaced_pod_eviction("web", "default", eviction, _preload_content=False))
    assert code == 201
    assert await missing(core.read_namespaced_pod("web", "default"))
