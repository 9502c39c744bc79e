"""Patch content types: merge and JSON patch everywhere, strategic merge for built-in kinds only."""

# The generated client's annotations ask for model objects, but it serializes plain dicts as
# they are; these tests send wire-shaped dicts on purpose, and pass `_content_type`, which the
# annotations do not list.
# mypy: disable-error-code="arg-type,call-arg"

from __future__ import annotations

import contextlib
import copy
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kubernetes_asyncio import client

from tests.kubeapi import KubeEmulator
from tests.kubeapi.patches import PatchError, json_patch, merge_patch, strategic_merge

MERGE, JSON_PATCH, STRATEGIC = (
    "application/merge-patch+json",
    "application/json-patch+json",
    "application/strategic-merge-patch+json",
)


def _deployment() -> dict[str, object]:
    containers = [
        {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}], "ports": [{"containerPort": 80}]},
        {"name": "sidecar", "image": "side:1"},
    ]
    template = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers}}
    spec = {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": template}
    return {"metadata": {"name": "web", "labels": {"keep": "yes"}}, "spec": spec}


async def test_strategic_merge_merges_containers_by_name(kube: KubeEmulator) -> None:
    apps = client.AppsV1Api(kube.api_client())
    await apps.create_namespaced_deployment("default", _deployment())
    patch = {
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "app", "image": "app:2", "env": [{"name": "B", "value": "2"}]}]}
            }
        }
    }
    patched = await apps.patch_namespaced_deployment(
        "web", "default", patch
    )  # dict body: the client picks strategic merge
    containers = {c.name: c for c in patched.spec.template.spec.containers}
    assert set(containers) == {"app", "sidecar"}
    assert containers["app"].image == "app:2"
    assert containers["sidecar"].image == "side:1"
    assert [(e.name, e.value) for e in containers["app"].env] == [("A", "1"), ("B", "2")]
    assert containers["app"].ports[0].container_port == 80
    removed = {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}}
    slim = await apps.patch_namespaced_deployment("web", "default", removed)
    assert [c.name for c in slim.spec.template.spec.containers] == ["app"]


async def test_merge_patch_replaces_lists_and_null_deletes(kube: KubeEmulator) -> None:
    apps = client.AppsV1Api(kube.api_client())
    await apps.create_namespaced_deployment("default", _deployment())
    patch = {
        "metadata": {"labels": {"keep": None, "new": "1"}},
        "spec": {"template": {"spec": {"containers": [{"name": "only", "image": "x"}]}}},
    }
    patched = await apps.patch_namespaced_deployment("web", "default", patch, _content_type=MERGE)
    assert patched.metadata.labels == {"new": "1"}
    assert [c.name for c in patched.spec.template.spec.containers] == ["only"]


async def test_json_patch_operations_and_a_failed_test_op(kube: KubeEmulator) -> None:
    core = client.CoreV1Api(kube.api_client())
    await core.create_namespaced_config_map(
        "default", {"metadata": {"name": "a", "annotations": {"x/y": "1"}}, "data": {"k": "1", "gone": "x"}}
    )
    ops = [
        {"op": "test", "path": "/data/k", "value": "1"},
        {"op": "replace", "path": "/data/k", "value": "2"},
        {"op": "remove", "path": "/data/gone"},
        {"op": "add", "path": "/data/new", "value": "3"},
        {"op": "copy", "from": "/data/new", "path": "/data/copied"},
        {"op": "move", "from": "/metadata/annotations/x~1y", "path": "/metadata/annotations/moved"},
    ]
    patched = await core.patch_namespaced_config_map("a", "default", ops)  # list body: the client picks JSON patch
    assert patched.data == {"k": "2", "new": "3", "copied": "3"}
    assert patched.metadata.annotations == {"moved": "1"}
    with pytest.raises(client.ApiException) as failed:
        await core.patch_namespaced_config_map("a", "default", [{"op": "test", "path": "/data/k", "value": "nope"}])
    assert failed.value.status == 422
    with pytest.raises(client.ApiException) as bad_path:
        await core.patch_namespaced_config_map("a", "default", [{"op": "remove", "path": "/data/absent"}])
    assert bad_path.value.status == 422
    assert (await core.read_namespaced_config_map("a", "default")).data["k"] == "2"  # a failed patch changes nothing


async def test_custom_resources_take_merge_and_json_patch_but_not_strategic(kube: KubeEmulator) -> None:
    custom = client.CustomObjectsApi(kube.api_client())
    gpu = {"apiVersion": "tensor-fusion.ai/v1", "kind": "GPU", "metadata": {"name": "gpu-0", "labels": {"a": "1"}}}
    await custom.create_cluster_custom_object("tensor-fusion.ai", "v1", "gpus", gpu)
    merged = await custom.patch_cluster_custom_object(
        "tensor-fusion.ai", "v1", "gpus", "gpu-0", {"metadata": {"labels": {"b": "2"}}}, _content_type=MERGE
    )
    assert merged["metadata"]["labels"] == {"a": "1", "b": "2"}
    ops = [{"op": "remove", "path": "/metadata/labels/a"}]
    patched = await custom.patch_cluster_custom_object("tensor-fusion.ai", "v1", "gpus", "gpu-0", ops)
    assert patched["metadata"]["labels"] == {"b": "2"}
    with pytest.raises(client.ApiException) as refused:
        await custom.patch_cluster_custom_object(
            "tensor-fusion.ai", "v1", "gpus", "gpu-0", {"metadata": {"labels": {"c": "3"}}}, _content_type=STRATEGIC
        )
    status = json.loads(refused.value.body)
    assert refused.value.status == 415
    assert status["reason"] == "UnsupportedMediaType"
    assert STRATEGIC not in status["message"]


async def test_a_dict_body_without_content_type_goes_out_as_json_patch_for_custom_objects(kube: KubeEmulator) -> None:
    """kubernetes-asyncio's CustomObjectsApi sends a dict with application/json-patch+json unless told
    otherwise; the real server rejects that, so callers must pass _content_type (merge patch)."""
    custom = client.CustomObjectsApi(kube.api_client())
    gpu = {"apiVersion": "tensor-fusion.ai/v1", "kind": "GPU", "metadata": {"name": "gpu-0"}}
    await custom.create_cluster_custom_object("tensor-fusion.ai", "v1", "gpus", gpu)
    with pytest.raises(client.ApiException) as rejected:
        await custom.patch_cluster_custom_object(
            "tensor-fusion.ai", "v1", "gpus", "gpu-0", {"metadata": {"labels": {"c": "3"}}}
        )
    assert rejected.value.status == 400
    assert "jsonpatch.Patch" in str(rejected.value.body)


async def test_apply_patch_is_refused_with_415(kube: KubeEmulator) -> None:
    core = client.CoreV1Api(kube.api_client())
    await core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}}
    with pytest.raises(client.ApiException) as refused:
        await core.patch_namespaced_config_map(
            "a", "default", body, field_manager="test", _content_type="application/apply-patch+yaml"
        )
    assert refused.value.status == 415


def test_strategic_merge_directives() -> None:
    original: dict[str, Any] = {
        "metadata": {"finalizers": ["a", "b"]},
        "spec": {
            "containers": [{"name": "c", "volumeMounts": [{"mountPath": "/x", "name": "v"}]}],
            "volumes": [{"name": "v", "emptyDir": {}}],
            "tolerations": [{"key": "t"}],
            "nodeSelector": {"zone": "a", "disk": "ssd"},
        },
        "status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}]},
    }
    patch = {
        "metadata": {"finalizers": ["c"], "$deleteFromPrimitiveList/finalizers": ["a"]},
        "spec": {
            "containers": [{"name": "c", "volumeMounts": [{"mountPath": "/y", "name": "w"}]}],
            "volumes": [{"name": "w", "emptyDir": {}}],
            "tolerations": [{"key": "u"}],  # no merge key: replaced
            "nodeSelector": {"$patch": "replace", "zone": "b"},
        },
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }
    merged = strategic_merge(original, patch)
    assert merged["metadata"]["finalizers"] == ["b", "c"]
    assert [m["mountPath"] for m in merged["spec"]["containers"][0]["volumeMounts"]] == ["/x", "/y"]
    assert [v["name"] for v in merged["spec"]["volumes"]] == ["v", "w"]
    assert merged["spec"]["tolerations"] == [{"key": "u"}]
    assert merged["spec"]["nodeSelector"] == {"zone": "b"}
    assert merged["status"]["conditions"] == [
        {"type": "Ready", "status": "True"},
        {"type": "PodScheduled", "status": "True"},
    ]
    assert original["spec"]["nodeSelector"] == {"zone": "a", "disk": "ssd"}  # inputs untouched


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3),
    max_leaves=10,
)
_objects = st.dictionaries(st.text(max_size=3), _json, max_size=4)


@given(target=_objects, patch=_objects)
def test_merge_patch_is_idempotent_and_leaves_no_nulls(target: dict[str, Any], patch: dict[str, Any]) -> None:
    once = merge_patch(target, patch)
    assert merge_patch(once, patch) == once
    assert all(once[k] is not None for k in patch if k in once)


_ops = st.lists(
    st.fixed_dictionaries(
        {
            "op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test", "bogus"]),
            "path": st.text(max_size=8),
        },
        optional={"value": _json, "from": st.text(max_size=8)},
    ),
    max_size=4,
)


@given(target=_objects, operations=_ops | _json)
def test_json_patch_fails_only_with_patch_errors(target: dict[str, Any], operations: Any) -> None:
    try:
        result = json_patch(target, operations)
    except PatchError:
        return
    assert isinstance(result, dict)


@given(original=_objects, patch=_objects)
def test_strategic_merge_never_mutates_its_inputs(original: dict[str, Any], patch: dict[str, Any]) -> None:
    before = copy.deepcopy((original, patch))
    with contextlib.suppress(PatchError):
        strategic_merge(original, patch)
    assert (original, patch) == before
