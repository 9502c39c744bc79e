"""The typed object view, API resource addressing and the shared store."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tfcore.k8s import ApiResource, Change, Event, Obj, Resource, Store, key_of, resource_for, split_key
from tfcore.k8s.resources import PODS
from tfcore.model.kinds import KINDS


def pod(name: str, version: int, namespace: str = "ns", **extra: Any) -> dict[str, Any]:
    return {"kind": "Pod", "metadata": {"name": name, "namespace": namespace, "resourceVersion": str(version)}, **extra}


def test_view_reads_fields_and_treats_absent_ones_as_empty() -> None:
    raw = {
        "kind": "GPUPool",
        "metadata": {
            "name": "p",
            "resourceVersion": "12",
            "deletionTimestamp": "2026-01-01T00:00:00Z",
            "ownerReferences": [{"kind": "TensorFusionCluster", "name": "c", "uid": "u1", "controller": True}],
        },
    }
    obj = Obj(raw)
    assert (obj.kind, obj.key, obj.meta.name, obj.meta.namespace) == ("GPUPool", "p", "p", None)
    assert obj.meta.version == 12
    assert obj.meta.deleting
    assert obj.meta.controller is not None
    assert obj.meta.controller.name == "c"
    empty = Obj({})
    assert (empty.meta.labels, empty.spec, empty.status, empty.meta.version, empty.meta.controller) == (
        {},
        {},
        {},
        0,
        None,
    )


NAMES = st.text(min_size=1).filter(lambda s: "/" not in s)


@given(NAMES, st.one_of(st.none(), NAMES))
def test_keys_round_trip(name: str, namespace: str | None) -> None:
    assert split_key(key_of({"metadata": {"name": name, "namespace": namespace}})) == (namespace, name)


def test_every_registered_kind_has_paths_from_the_registry() -> None:
    for info in KINDS:
        api = resource_for(info.kind)
        assert api == ApiResource.of(info)
        assert api.collection() == f"/apis/tensor-fusion.ai/v1/{info.plural}"
    assert resource_for("Node").item("n1") == "/api/v1/nodes/n1"
    assert PODS.item("a b", "ns", subresource="binding") == "/api/v1/namespaces/ns/pods/a%20b/binding"
    assert resource_for("ReplicaSet").collection("x") == "/apis/apps/v1/namespaces/x/replicasets"
    assert Resource.of("GPU") == Resource("/apis/tensor-fusion.ai/v1/gpus", "GPU")
    with pytest.raises(ValueError, match="needs a namespace"):
        PODS.item("p")
    with pytest.raises(KeyError, match="'Widget'"):
        resource_for("Widget")


def test_store_keeps_the_newest_copy_and_reports_each_change() -> None:
    store = Store(["Pod"])
    seen: list[Change] = []
    store.subscribe(seen.append)
    store.apply(Event("SYNC", "Pod", objects=(pod("a", 5), pod("b", 5))))
    store.apply(Event("MODIFIED", "Pod", pod("a", 7)))
    store.apply(Event("MODIFIED", "Pod", pod("a", 6)))  # late and stale: dropped, still reported
    assert store.get("Pod", "ns/a") == pod("a", 7)
    assert [(c.type, c.obj["metadata"]["resourceVersion"]) for c in seen[2:]] == [("MODIFIED", "7"), ("MODIFIED", "6")]
    assert seen[2].previous == pod("a", 5)
    store.apply(Event("SYNC", "Pod", objects=(pod("a", 9),)))  # b is gone after the relist
    assert [c.type for c in seen[-2:]] == ["SYNC", "DELETED"]
    assert seen[-1].obj == pod("b", 5)
    assert set(store.of_kind("Pod")) == {"ns/a"}
    store.remember(pod("a", 8))  # older than held: ignored
    store.remember({"kind": "Secret", "metadata": {"name": "s"}})  # not watched: ignored
    assert store.get("Pod", "ns/a") == pod("a", 9)
    assert "Secret" not in store.kinds()
    store.apply(Event("DELETED", "Pod", pod("a", 10)))
    assert list(store.objects("Pod")) == []
    assert store.view()["Pod"] == {}


def test_store_reports_each_relist_whole_even_an_empty_one() -> None:
    store = Store(["Pod"])
    relists: list[tuple[str, tuple[dict[str, Any], ...], int]] = []
    seen: list[Change] = []
    store.subscribe_relists(lambda kind, listed: relists.append((kind, listed, len(store.of_kind(kind)))))
    store.subscribe(seen.append)
    store.apply(Event("SYNC", "Pod", objects=(pod("a", 1), pod("b", 1))))
    store.apply(Event("DELETED", "Pod", pod("a", 2)))
    store.apply(Event("SYNC", "Pod", objects=()))  # b was deleted while the watch was down
    assert relists == [("Pod", (pod("a", 1), pod("b", 1)), 2), ("Pod", (), 0)]  # the store already holds it
    assert [(c.type, c.relist) for c in seen] == [("SYNC", True), ("SYNC", True), ("DELETED", False), ("DELETED", True)]


@given(st.lists(st.tuples(st.sampled_from(["ADDED", "MODIFIED"]), st.sampled_from("ab"), st.integers(0, 20))))
def test_store_never_goes_back_in_time(events: list[tuple[Any, str, int]]) -> None:
    store = Store(["Pod"])
    newest: dict[str, int] = {}
    for kind, name, version in events:
        store.apply(Event(kind, "Pod", pod(name, version)))
        newest[name] = max(newest.get(name, version), version)
    assert {k: int(v["metadata"]["resourceVersion"]) for k, v in store.of_kind("Pod").items()} == {
        f"ns/{n}": v for n, v in newest.items()
    }
