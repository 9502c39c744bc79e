"""CustomResourceDefinitions: created ones are served; our chart's schemas prune, default and validate."""

# The generated client's annotations ask for model objects, but it serializes plain dicts as
# they are; these tests send wire-shaped dicts on purpose, and pass `_content_type`, which the
# annotations do not list.
# mypy: disable-error-code="arg-type,call-arg"

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client

from tests.kubeapi import KubeEmulator
from tests.kubeapi.objects import missing

GROUP, VERSION = "tensor-fusion.ai", "v1"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
MERGE = "application/merge-patch+json"


def _pool() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((FIXTURES / "spec" / "gpupool-shared.yaml").read_text())
    return loaded


async def _create_pool(kube: KubeEmulator, body: dict[str, Any]) -> dict[str, Any]:
    custom = client.CustomObjectsApi(kube.api_client())
    made: dict[str, Any] = await custom.create_cluster_custom_object(GROUP, VERSION, "gpupools", body)
    return made


async def _rejected(kube: KubeEmulator, body: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(client.ApiException) as refused:
        await _create_pool(kube, body)
    assert refused.value.status == 422
    status: dict[str, Any] = json.loads(refused.value.body)
    assert status["reason"] == "Invalid"
    assert status["details"]["kind"] == "GPUPool"
    return status


async def test_broken_gpupool_is_422_with_the_field_named(kube: KubeEmulator) -> None:
    broken = _pool()
    broken["spec"]["capacityConfig"]["oversubscription"]["tflopsOversellRatio"] = "lots"
    status = await _rejected(kube, broken)
    causes = status["details"]["causes"]
    assert [(c["field"], c["reason"]) for c in causes] == [
        ("spec.capacityConfig.oversubscription.tflopsOversellRatio", "FieldValueTypeInvalid")
    ]
    assert "must be of type integer" in causes[0]["message"]
    assert await missing(
        client.CustomObjectsApi(kube.api_client()).get_cluster_custom_object(GROUP, VERSION, "gpupools", "shared")
    )


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        (("spec", "capacityConfig", "minResources", "vram"), "lots", "FieldValueInvalid"),  # quantity pattern
        (
            ("spec", "capacityConfig", "oversubscription", "tflopsOversellRatio"),
            50,
            "FieldValueInvalid",
        ),  # below minimum
        (("spec", "nodeManagerConfig", "provisioningMode"), "Sometimes", "FieldValueNotSupported"),  # enum
    ],
)
async def test_schema_rules_reject(kube: KubeEmulator, path: tuple[str, ...], value: object, reason: str) -> None:
    body = _pool()
    node = body
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    status = await _rejected(kube, body)
    assert [(c["field"], c["reason"]) for c in status["details"]["causes"]] == [(".".join(path), reason)]


async def test_update_is_validated_too(kube: KubeEmulator) -> None:
    await _create_pool(kube, _pool())
    custom = client.CustomObjectsApi(kube.api_client())
    patch = {"spec": {"capacityConfig": {"oversubscription": {"tflopsOversellRatio": "lots"}}}}
    with pytest.raises(client.ApiException) as refused:
        await custom.patch_cluster_custom_object(GROUP, VERSION, "gpupools", "shared", patch, _content_type=MERGE)
    assert refused.value.status == 422
    status_patch = {"status": {"totalGPUs": "many"}}
    with pytest.raises(client.ApiException) as bad_status:
        await custom.patch_cluster_custom_object_status(
            GROUP, VERSION, "gpupools", "shared", status_patch, _content_type=MERGE
        )
    assert bad_status.value.status == 422


async def test_unknown_fields_are_pruned_and_defaults_applied(kube: KubeEmulator) -> None:
    body = _pool()
    body["spec"]["notAField"] = {"x": 1}
    body["spec"]["capacityConfig"]["oversubscription"] = {}
    body["metadata"]["bogus"] = "dropped"
    made = await _create_pool(kube, body)
    assert "notAField" not in made["spec"]
    assert "bogus" not in made["metadata"]
    assert made["spec"]["capacityConfig"]["oversubscription"]["tflopsOversellRatio"] == 500  # the schema default
    free_form = made["spec"]["nodeManagerConfig"]["nodeProvisioner"]["gpuNodeLabels"]
    assert free_form == {"tensor-fusion.ai/arch": "Ampere", "tensor-fusion.ai/vendor": "nvidia"}  # maps are kept


@pytest.mark.parametrize("fixture", sorted(p.name for p in (FIXTURES / "objects").glob("*.yaml")))
async def test_our_example_objects_pass_the_chart_crds_without_losing_fields(kube: KubeEmulator, fixture: str) -> None:
    body = yaml.safe_load((FIXTURES / "objects" / fixture).read_text())
    rtype = next(r for r in kube.store.types.values() if r.group == GROUP and r.kind == body["kind"])
    custom = client.CustomObjectsApi(kube.api_client())
    if rtype.namespaced:
        namespace = body["metadata"].get("namespace", "default")
        if namespace != "default":
            await client.CoreV1Api(kube.api_client()).create_namespace({"metadata": {"name": namespace}})
        made = await custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, rtype.plural, copy.deepcopy(body)
        )
    else:
        made = await custom.create_cluster_custom_object(GROUP, VERSION, rtype.plural, copy.deepcopy(body))
    assert _subset(body.get("spec"), made.get("spec")), f"{fixture}: the CRD pruned or changed spec fields"
    if "status" in body:
        made = await (
            custom.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                made["metadata"]["namespace"],
                rtype.plural,
                made["metadata"]["name"],
                {"status": body["status"]},
                _content_type=MERGE,
            )
            if rtype.namespaced
            else custom.patch_cluster_custom_object_status(
                GROUP, VERSION, rtype.plural, made["metadata"]["name"], {"status": body["status"]}, _content_type=MERGE
            )
        )
        assert _subset(body["status"], made.get("status")), f"{fixture}: the CRD pruned or changed status fields"


def _subset(wanted: Any, got: Any) -> bool:
    """Everything in `wanted` is in `got` (which may add schema defaults)."""
    if isinstance(wanted, dict):
        return isinstance(got, dict) and all(k in got and _subset(v, got[k]) for k, v in wanted.items())
    if isinstance(wanted, list):
        return isinstance(got, list) and len(wanted) == len(got) and all(map(_subset, wanted, got))
    return bool(wanted == got)


def _widget_crd(scope: str = "Namespaced") -> dict[str, Any]:
    schema = {
        "type": "object",
        "properties": {
            "spec": {"type": "object", "properties": {"size": {"type": "integer", "minimum": 1}}, "required": ["size"]},
            "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
        },
    }
    version = {
        "name": "v1alpha1",
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": schema},
        "subresources": {"status": {}},
    }
    names = {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "names": names, "scope": scope, "versions": [version]},
    }


async def test_creating_a_crd_serves_its_kind_and_deleting_it_removes_them(kube: KubeEmulator) -> None:
    api = kube.api_client()
    extensions, custom = client.ApiextensionsV1Api(api), client.CustomObjectsApi(api)
    crd = await extensions.create_custom_resource_definition(_widget_crd())
    assert {c.type for c in crd.status.conditions if c.status == "True"} == {"Established", "NamesAccepted"}
    resources = {r.name for r in (await custom.get_api_resources("example.com", "v1alpha1")).resources}
    assert resources == {"widgets", "widgets/status"}
    widget = {
        "apiVersion": "example.com/v1alpha1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {"size": 2},
        "status": {"ready": True},
    }
    made = await custom.create_namespaced_custom_object("example.com", "v1alpha1", "default", "widgets", widget)
    assert "status" not in made
    assert made["spec"] == {"size": 2}
    ready = await custom.patch_namespaced_custom_object_status(
        "example.com", "v1alpha1", "default", "widgets", "w", {"status": {"ready": True}}, _content_type=MERGE
    )
    assert ready["status"] == {"ready": True}
    with pytest.raises(client.ApiException) as invalid:
        await custom.create_namespaced_custom_object(
            "example.com", "v1alpha1", "default", "widgets", {**widget, "metadata": {"name": "x"}, "spec": {}}
        )
    assert invalid.value.status == 422
    assert json.loads(invalid.value.body)["details"]["causes"][0]["field"] == "spec.size"
    with pytest.raises(client.ApiException) as wrong_scope:
        await custom.create_cluster_custom_object("example.com", "v1alpha1", "widgets", widget)
    assert wrong_scope.value.status == 404
    await extensions.delete_custom_resource_definition("widgets.example.com")
    with pytest.raises(client.ApiException) as gone:
        await custom.list_namespaced_custom_object("example.com", "v1alpha1", "default", "widgets")
    assert gone.value.status == 404
    assert not kube.store.objects[("example.com", "widgets")]


async def test_cluster_scoped_crd_and_a_misnamed_one(kube: KubeEmulator) -> None:
    extensions = client.ApiextensionsV1Api(kube.api_client())
    await extensions.create_custom_resource_definition(_widget_crd("Cluster"))
    custom = client.CustomObjectsApi(kube.api_client())
    made = await custom.create_cluster_custom_object(
        "example.com",
        "v1alpha1",
        "widgets",
        {"apiVersion": "example.com/v1alpha1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}},
    )
    assert "namespace" not in made["metadata"]
    misnamed = _widget_crd()
    misnamed["metadata"]["name"] = "gadgets.example.com"
    with pytest.raises(client.ApiException) as refused:
        await extensions.create_custom_resource_definition(misnamed)
    assert refused.value.status == 422
