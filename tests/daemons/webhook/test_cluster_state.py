"""The webhook's cluster defaults follow the shared store."""

from __future__ import annotations

from daemons.webhook.cluster import ClusterState
from tfcore.k8s import Event


def pool(name: str, version: int) -> dict[str, object]:
    meta = {"name": name, "resourceVersion": str(version)}
    return {"apiVersion": "tensor-fusion.ai/v1", "kind": "GPUPool", "metadata": meta, "spec": {}}


def test_defaults_are_rebuilt_after_a_change_and_reused_otherwise() -> None:
    state = ClusterState()
    state.store.apply(Event("SYNC", "GPUPool", objects=(pool("a", 1),)))
    first = state()
    assert set(first.pools) == {"a"}
    assert state() is first  # nothing changed: the same object
    state.store.apply(Event("ADDED", "GPUPool", pool("b", 2)))
    assert set(state().pools) == {"a", "b"}
    state.store.apply(Event("DELETED", "GPUPool", pool("a", 3)))
    assert set(state().pools) == {"b"}
