"""Label selectors (equality and set-based) and field selectors on lists."""

# The generated client's annotations ask for model objects, but it serializes plain dicts as
# they are; these tests send wire-shaped dicts on purpose, and pass `_content_type`, which the
# annotations do not list.
# mypy: disable-error-code="arg-type,call-arg"

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kubernetes_asyncio import client

from tests.kubeapi import KubeEmulator
from tests.kubeapi.objects import pod
from tests.kubeapi.selectors import labels_match, parse_label_selector

PODS = {
    "a": {"app": "web", "tier": "front"},
    "b": {"app": "web", "tier": "back"},
    "c": {"app": "db"},
    "d": {},
}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", {"a", "b"}),
        ("app==web", {"a", "b"}),
        ("app!=web", {"c", "d"}),
        ("tier in (front, back)", {"a", "b"}),
        ("tier notin (front)", {"b", "c", "d"}),
        ("tier", {"a", "b"}),
        ("!tier", {"c", "d"}),
        ("app=web,tier!=front", {"b"}),
        ("app in (web,db),!tier", {"c"}),
        ("", {"a", "b", "c", "d"}),
    ],
)
async def test_label_selectors(kube: KubeEmulator, selector: str, expected: set[str]) -> None:
    core = client.CoreV1Api(kube.api_client())
    for name, labels in PODS.items():
        await core.create_namespaced_pod("default", pod(name, labels=labels or None))
    listing = await core.list_namespaced_pod("default", label_selector=selector)
    assert {p.metadata.name for p in listing.items} == expected


@pytest.mark.parametrize("selector", ["app in web", "a=b=c", "in (x)", "app notin ()", "Bad Key=1", "app=(x)"])
async def test_malformed_label_selector_is_400(kube: KubeEmulator, selector: str) -> None:
    core = client.CoreV1Api(kube.api_client())
    with pytest.raises(client.ApiException) as bad:
        await core.list_namespaced_pod("default", label_selector=selector)
    assert bad.value.status == 400


async def test_field_selectors(kube: KubeEmulator) -> None:
    core = client.CoreV1Api(kube.api_client())
    await core.create_namespace({"metadata": {"name": "other"}})
    await core.create_namespaced_pod("default", pod("a", node="gpu-1"))
    await core.create_namespaced_pod("default", pod("b"))
    await core.create_namespaced_pod("other", pod("c", node="gpu-1", namespace="other"))
    await core.patch_namespaced_pod_status("b", "default", {"status": {"phase": "Running"}})

    async def names(selector: str) -> set[str]:
        return {p.metadata.name for p in (await core.list_pod_for_all_namespaces(field_selector=selector)).items}

    assert await names("spec.nodeName=gpu-1") == {"a", "c"}
    assert await names("spec.nodeName=") == {"b"}  # unscheduled pods, as the scheduler lists them
    assert await names("spec.nodeName!=") == {"a", "c"}
    assert await names("status.phase=Running") == {"b"}
    assert await names("status.phase!=Running,metadata.namespace=default") == {"a"}
    assert await names("metadata.name==c") == {"c"}
    with pytest.raises(client.ApiException) as unsupported:
        await core.list_pod_for_all_namespaces(field_selector="spec.hostname=x")
    assert unsupported.value.status == 400
    assert "field label not supported" in str(unsupported.value.body)
    with pytest.raises(client.ApiException) as not_for_configmaps:
        await core.list_config_map_for_all_namespaces(field_selector="spec.nodeName=x")
    assert not_for_configmaps.value.status == 400


async def test_selectors_on_custom_resources(kube: KubeEmulator) -> None:
    custom = client.CustomObjectsApi(kube.api_client())
    for name, pool in (("gpu-0", "shared"), ("gpu-1", "dedicated")):
        body = {
            "apiVersion": "tensor-fusion.ai/v1",
            "kind": "GPU",
            "metadata": {"name": name, "labels": {"tensor-fusion.ai/pool": pool}},
        }
        await custom.create_cluster_custom_object("tensor-fusion.ai", "v1", "gpus", body)
    shared = await custom.list_cluster_custom_object(
        "tensor-fusion.ai", "v1", "gpus", label_selector="tensor-fusion.ai/pool=shared"
    )
    assert [g["metadata"]["name"] for g in shared["items"]] == ["gpu-0"]
    named = await custom.list_cluster_custom_object(
        "tensor-fusion.ai", "v1", "gpus", field_selector="metadata.name=gpu-1"
    )
    assert [g["metadata"]["name"] for g in named["items"]] == ["gpu-1"]


async def test_invalid_labels_on_write_are_422(kube: KubeEmulator) -> None:
    core = client.CoreV1Api(kube.api_client())
    with pytest.raises(client.ApiException) as bad:
        await core.create_namespaced_config_map("default", {"metadata": {"name": "a", "labels": {"app": "has space"}}})
    assert bad.value.status == 422


_token = st.from_regex(r"[a-z][a-z0-9]{0,5}", fullmatch=True)


@given(labels=st.dictionaries(_token, _token, max_size=4), key=_token, values=st.lists(_token, min_size=1, max_size=3))
def test_set_based_requirements_agree_with_their_definition(
    labels: dict[str, str], key: str, values: list[str]
) -> None:
    obj = {"metadata": {"labels": labels}}
    listed = ",".join(values)
    assert labels_match(parse_label_selector(f"{key} in ({listed})"), obj) == (labels.get(key) in values)
    assert labels_match(parse_label_selector(f"{key} notin ({listed})"), obj) == (labels.get(key) not in values)
    assert labels_match(parse_label_selector(f"!{key}"), obj) == (key not in labels)
    assert labels_match(parse_label_selector(f"{key}!={values[0]}"), obj) == (labels.get(key) != values[0])


@given(st.text(max_size=40))
def test_label_selector_parser_never_crashes(text: str) -> None:
    with contextlib.suppress(ValueError):
        parse_label_selector(text)
