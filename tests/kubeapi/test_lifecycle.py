"""generation, the status subresource, finalizers, owner-reference cascade and namespace termination."""

# The generated client's annotations ask for model objects, but it serializes plain dicts as
# they are; these tests send wire-shaped dicts on purpose, and pass `_content_type`, which the
# annotations do not list.
# mypy: disable-error-code="arg-type,call-arg"

from __future__ import annotations

import json

import pytest
from kubernetes_asyncio import client

from tests.kubeapi import KubeEmulator
from tests.kubeapi.objects import eventually, missing, owner_ref, pod, raw_reply

GROUP, VERSION = "tensor-fusion.ai", "v1"


def _deployment(name: str, replicas: int = 1) -> dict[str, object]:
    labels = {"app": name}
    template = {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}}
    return {
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": template},
    }


async def test_generation_moves_on_spec_changes_only(kube: KubeEmulator) -> None:
    apps = client.AppsV1Api(kube.api_client())
    made = await apps.create_namespaced_deployment("default", _deployment("web"))
    assert made.metadata.generation == 1
    labelled = await apps.patch_namespaced_deployment("web", "default", {"metadata": {"labels": {"team": "a"}}})
    assert labelled.metadata.generation == 1
    scaled = await apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 3}})
    assert scaled.metadata.generation == 2
    with_status = await apps.patch_namespaced_deployment_status(
        "web", "default", {"status": {"observedGeneration": 2, "replicas": 3}}
    )
    assert with_status.metadata.generation == 2
    custom = client.CustomObjectsApi(kube.api_client())
    gpu = {"apiVersion": "tensor-fusion.ai/v1", "kind": "GPU", "metadata": {"name": "gpu-0"}, "spec": {}}
    await custom.create_cluster_custom_object(GROUP, VERSION, "gpus", gpu)
    tagged = await custom.patch_cluster_custom_object(
        GROUP,
        VERSION,
        "gpus",
        "gpu-0",
        {"metadata": {"annotations": {"a": "b"}}},
        _content_type="application/merge-patch+json",
    )
    assert tagged["metadata"]["generation"] == 1


async def test_status_subresource_separates_spec_and_status_writes(kube: KubeEmulator) -> None:
    api = kube.api_client()
    core = client.CoreV1Api(api)
    created = await core.create_namespaced_pod(
        "default", {**api.sanitize_for_serialization(pod("web")), "status": {"phase": "Running"}}
    )
    assert created.status.phase == "Pending"  # create does not take status for pods
    await core.patch_namespaced_pod_status("web", "default", {"status": {"phase": "Running"}})
    ignored = await core.patch_namespaced_pod(
        "web", "default", {"metadata": {"labels": {"a": "b"}}, "status": {"phase": "Failed"}}
    )
    assert ignored.status.phase == "Running"
    assert ignored.metadata.labels == {"a": "b"}
    status_only = await core.patch_namespaced_pod_status(
        "web",
        "default",
        {"metadata": {"labels": {"a": "c"}}, "status": {"phase": "Succeeded"}, "spec": {"activeDeadlineSeconds": 5}},
    )
    assert status_only.status.phase == "Succeeded"
    assert status_only.metadata.labels == {"a": "b"}
    assert status_only.spec.active_deadline_seconds is None


async def test_custom_resource_status_subresource(kube: KubeEmulator) -> None:
    custom = client.CustomObjectsApi(kube.api_client())
    workload = {
        "apiVersion": "tensor-fusion.ai/v1",
        "kind": "TensorFusionWorkload",
        "metadata": {"name": "llm"},
        "spec": {"replicas": 1, "poolName": "shared"},
        "status": {"phase": "Running"},
    }
    made = await custom.create_namespaced_custom_object(GROUP, VERSION, "default", "tensorfusionworkloads", workload)
    assert "status" not in made  # create cannot set status when the subresource is enabled
    merge = "application/merge-patch+json"
    with_status = await custom.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        "default",
        "tensorfusionworkloads",
        "llm",
        {"status": {"phase": "Running"}, "spec": {"replicas": 9}},
        _content_type=merge,
    )
    assert with_status["status"]["phase"] == "Running"
    assert with_status["spec"]["replicas"] == 1
    with_spec = await custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        "default",
        "tensorfusionworkloads",
        "llm",
        {"status": {"phase": "Failed"}, "spec": {"replicas": 2}},
        _content_type=merge,
    )
    assert with_spec["status"]["phase"] == "Running"
    assert with_spec["spec"]["replicas"] == 2
    assert with_spec["metadata"]["generation"] == 2
    assert with_status["metadata"]["generation"] == 1
    replaced = await custom.replace_namespaced_custom_object_status(
        GROUP, VERSION, "default", "tensorfusionworkloads", "llm", {**with_spec, "status": {"phase": "Pending"}}
    )
    assert replaced["status"]["phase"] == "Pending"


async def test_finalizers_hold_deletion_until_removed(kube: KubeEmulator) -> None:
    core = client.CoreV1Api(kube.api_client())
    body = {"metadata": {"name": "guarded", "finalizers": ["tensor-fusion.ai/finalizer"]}}
    await core.create_namespaced_config_map("default", body)
    _, pending = await raw_reply(core.delete_namespaced_config_map("guarded", "default", _preload_content=False))
    still = await core.read_namespaced_config_map("guarded", "default")
    assert still.metadata.deletion_timestamp is not None
    assert still.metadata.finalizers == ["tensor-fusion.ai/finalizer"]
    assert pending["kind"] == "ConfigMap"
    assert pending["metadata"]["deletionTimestamp"]
    await core.delete_namespaced_config_map("guarded", "default")
    again = await core.read_namespaced_config_map("guarded", "default")
    assert again.metadata.resource_version == still.metadata.resource_version  # deleting twice changes nothing
    with pytest.raises(client.ApiException) as refused:
        await core.patch_namespaced_config_map(
            "guarded", "default", {"metadata": {"finalizers": ["tensor-fusion.ai/finalizer", "other"]}}
        )
    assert refused.value.status == 422  # no new finalizers on an object being deleted
    await core.patch_namespaced_config_map("guarded", "default", {"metadata": {"finalizers": None}})
    assert await missing(core.read_namespaced_config_map("guarded", "default"))


async def test_background_cascade_deletes_dependents_after_the_owner(kube: KubeEmulator) -> None:
    api = kube.api_client()
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    owner = await apps.create_namespaced_deployment("default", _deployment("web"))
    replica_set = _deployment("web-abc")
    replica_set["metadata"] = {
        "name": "web-abc",
        "ownerReferences": [owner_ref(owner.metadata, "Deployment", "apps/v1")],
    }
    rs = await apps.create_namespaced_replica_set("default", replica_set)
    child = api.sanitize_for_serialization(pod("web-abc-1"))
    child["metadata"]["ownerReferences"] = [owner_ref(rs.metadata, "ReplicaSet", "apps/v1")]
    await core.create_namespaced_pod("default", child)
    survivor = api.sanitize_for_serialization(pod("other"))
    namespace = await core.read_namespace("default")
    survivor["metadata"]["ownerReferences"] = [
        owner_ref(rs.metadata, "ReplicaSet", "apps/v1"),
        owner_ref(namespace.metadata, "Namespace", "v1"),
    ]
    await core.create_namespaced_pod("default", survivor)
    await apps.delete_namespaced_deployment("web", "default")
    await eventually(lambda: missing(core.read_namespaced_pod("web-abc-1", "default")), bool)
    assert await missing(apps.read_namespaced_replica_set("web-abc", "default"))
    kept = await core.read_namespaced_pod("other", "default")  # another owner still exists: only the dangling ref goes
    assert [r.kind for r in kept.metadata.owner_references] == ["Namespace"]


async def test_orphan_and_foreground_propagation(kube: KubeEmulator) -> None:
    core = client.CoreV1Api(kube.api_client())
    owner = await core.create_namespaced_config_map("default", {"metadata": {"name": "owner"}})
    child = {"metadata": {"name": "child", "ownerReferences": [owner_ref(owner.metadata, "ConfigMap", "v1")]}}
    await core.create_namespaced_config_map("default", child)
    await core.delete_namespaced_config_map("owner", "default", propagation_policy="Orphan")
    orphan = await eventually(
        lambda: core.read_namespaced_config_map("child", "default"), lambda c: not c.metadata.owner_references
    )
    assert orphan.metadata.name == "child"
    assert await missing(core.read_namespaced_config_map("owner", "default"))
    owner = await core.create_namespaced_config_map("default", {"metadata": {"name": "owner2"}})
    guarded = {
        "metadata": {
            "name": "child2",
            "finalizers": ["x/hold"],
            "ownerReferences": [owner_ref(owner.metadata, "ConfigMap", "v1")],
        }
    }
    await core.create_namespaced_config_map("default", guarded)
    await core.delete_namespaced_config_map(
        "owner2", "default", body=client.V1DeleteOptions(propagation_policy="Foreground")
    )
    waiting = await eventually(
        lambda: core.read_namespaced_config_map("owner2", "default"),
        lambda o: o.metadata.deletion_timestamp is not None,
    )
    assert "foregroundDeletion" in waiting.metadata.finalizers  # the owner waits for its dependents
    held = await core.read_namespaced_config_map("child2", "default")
    assert held.metadata.deletion_timestamp is not None
    await core.patch_namespaced_config_map("child2", "default", {"metadata": {"finalizers": None}})
    await eventually(lambda: missing(core.read_namespaced_config_map("owner2", "default")), bool)


async def test_custom_resources_cascade_too(kube: KubeEmulator) -> None:
    custom = client.CustomObjectsApi(kube.api_client())
    node = await custom.create_cluster_custom_object(
        GROUP, VERSION, "gpunodes", {"apiVersion": "tensor-fusion.ai/v1", "kind": "GPUNode", "metadata": {"name": "n1"}}
    )
    ref = owner_ref(node["metadata"], "GPUNode", "tensor-fusion.ai/v1")
    gpu = {"apiVersion": "tensor-fusion.ai/v1", "kind": "GPU", "metadata": {"name": "gpu-0", "ownerReferences": [ref]}}
    await custom.create_cluster_custom_object(GROUP, VERSION, "gpus", gpu)
    deleted = await custom.delete_cluster_custom_object(GROUP, VERSION, "gpunodes", "n1")
    assert deleted["metadata"]["name"] == "n1"
    await eventually(lambda: missing(custom.get_cluster_custom_object(GROUP, VERSION, "gpus", "gpu-0")), bool)


async def test_namespace_deletion_terminates_then_removes_its_contents(kube: KubeEmulator) -> None:
    core = client.CoreV1Api(kube.api_client())
    await core.create_namespace({"metadata": {"name": "team-a"}})
    await core.create_namespaced_config_map("team-a", {"metadata": {"name": "held", "finalizers": ["x/hold"]}})
    await core.delete_namespace("team-a")
    terminating = await core.read_namespace("team-a")
    assert terminating.status.phase == "Terminating"
    with pytest.raises(client.ApiException) as closed:
        await core.create_namespaced_config_map("team-a", {"metadata": {"name": "late"}})
    assert closed.value.status == 403
    assert json.loads(closed.value.body)["reason"] == "Forbidden"
    await core.patch_namespaced_config_map("held", "team-a", {"metadata": {"finalizers": None}})
    await eventually(lambda: missing(core.read_namespace("team-a")), bool)
    with pytest.raises(client.ApiException) as protected:
        await core.delete_namespace("kube-system")
    assert protected.value.status == 403
