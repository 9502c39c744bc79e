"""The routing table: which object changes queue which reconciles, and that every reconciler is routed."""

from __future__ import annotations

import pkgutil
from typing import Any, cast

from daemons.controller import reconcilers
from daemons.controller.context import Context, Key, Settings
from daemons.controller.queue import WorkQueue
from daemons.controller.routing import RECONCILERS, ROUTES
from tfcore.k8s import Event, Store
from tfcore.model.annotations import ENABLED_REPLICAS, GPU_POOL, LABEL_ENABLED, LABEL_WORKLOAD


def context(store: Store, *, taint: bool = False) -> Context:
    """Routing reads only the store and the settings."""
    none = cast(Any, None)
    return Context(
        none, store, writer=none, recorder=none, queue=WorkQueue(), settings=Settings(taint_used_nodes=taint)
    )


def keys(ctx: Context, kind: str, obj: dict[str, Any], previous: dict[str, Any] | None = None) -> set[Key]:
    return {Key(r.reconciler.NAME, n) for r in ROUTES[kind] for n in r.names(ctx, obj, previous)}


def obj(kind: str, name: str, namespace: str | None = None, **fields: Any) -> dict[str, Any]:
    metadata = {"name": name, **({"namespace": namespace} if namespace else {}), **fields.pop("metadata", {})}
    return {"kind": kind, "metadata": metadata, **fields}


def test_every_reconciler_module_is_routed_under_its_own_name() -> None:
    modules = {m.name for m in pkgutil.iter_modules(reconcilers.__path__)}
    assert set(RECONCILERS) == modules
    assert all(name == module.NAME for name, module in RECONCILERS.items())


def test_a_gpu_queues_itself_and_its_node() -> None:
    gpu = obj("GPU", "gpu-1", status={"nodeSelector": {"kubernetes.io/hostname": "n1"}})
    assert keys(context(Store()), "GPU", gpu) == {Key("gpu", "gpu-1"), Key("gpunode", "n1")}


def test_a_gpunode_queues_its_pool_and_its_gpus() -> None:
    store = Store(["GPU"])
    on_n1 = obj("GPU", "gpu-1", status={"nodeSelector": {"kubernetes.io/hostname": "n1"}})
    store.apply(Event("SYNC", "GPU", objects=(on_n1, obj("GPU", "gpu-2"))))
    gpunode = obj("GPUNode", "n1", metadata={"labels": {GPU_POOL: "p"}})
    assert keys(context(store), "GPUNode", gpunode) == {
        Key("gpunode", "n1"),
        Key("node", "n1"),
        Key("pool", "p"),
        Key("gpu", "gpu-1"),
    }


def test_a_pool_requeues_every_node_only_when_its_membership_changes() -> None:
    store = Store(["Node", "GPUNode"])
    store.apply(Event("SYNC", "Node", objects=(obj("Node", "a"), obj("Node", "b"))))
    owner = {"kind": "TensorFusionCluster", "name": "c", "uid": "u", "controller": True}
    before = obj("GPUPool", "p", metadata={"ownerReferences": [owner]}, spec={"nodeManagerConfig": {}})
    status_write = {**before, "status": {"phase": "Running"}}
    ctx = context(store)
    assert keys(ctx, "GPUPool", status_write, before) == {Key("pool", "p"), Key("cluster", "c")}
    selected = {**before, "spec": {"nodeManagerConfig": {"nodeSelector": {"x": "y"}}}}
    assert {Key("node", "a"), Key("node", "b")} <= keys(ctx, "GPUPool", selected, before)
    assert {Key("node", "a"), Key("node", "b")} <= keys(ctx, "GPUPool", before)  # added or relisted


def test_a_worker_pod_queues_its_workload_canary_and_both_nodes_when_tainting() -> None:
    owner = {"kind": "ReplicaSet", "name": "rs", "uid": "u", "controller": True}
    labels = {LABEL_ENABLED: "true", LABEL_WORKLOAD: "w"}
    meta = {"labels": labels, "annotations": {ENABLED_REPLICAS: "1"}, "ownerReferences": [owner]}
    pod = obj("Pod", "p", "ns", metadata=meta, spec={"nodeName": "n2"})
    moved_from = {**pod, "spec": {"nodeName": "n1"}}
    plain = {Key("workload", "ns/w"), Key("canary", "ns/rs")}
    assert keys(context(Store()), "Pod", pod, moved_from) == plain
    assert keys(context(Store(), taint=True), "Pod", pod, moved_from) == plain | {
        Key("taint", "n2"),
        Key("taint", "n1"),
    }
