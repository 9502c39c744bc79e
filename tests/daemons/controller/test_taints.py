"""NVIDIA coexistence's soft guard: with progressive migration the controller keeps the
PreferNoSchedule taint tensor-fusion.ai/used-by on exactly the nodes where TF pods hold GPUs."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from daemons.controller.daemon import ControllerDaemon, Options
from tests.daemons.controller.helpers import FAST, Cluster, wait_for
from tests.kubeapi.emulator import KubeEmulator
from tfcore.operator.taints import USED_BY_TAINT, nodes_with_workers, taint_patch


def pod(name: str, node: str | None, *, gpus: str = "gpu-0", phase: str = "Running") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "default",
            "labels": {"tensor-fusion.ai/enabled": "true"},
            "annotations": {"tensor-fusion.ai/gpu-ids": gpus} if gpus else {},
        },
        "spec": {"containers": [{"name": "c", "image": "cuda"}], **({"nodeName": node} if node else {})},
        "status": {"phase": phase},
    }


def test_which_nodes_and_the_patch() -> None:
    pods = [pod("a", "n1"), pod("b", "n2", phase="Succeeded"), pod("c", None), pod("d", "n3", gpus="")]
    assert nodes_with_workers(pods) == {"n1"}
    other = {"key": "dedicated", "value": "ml", "effect": "NoSchedule"}
    node = {"metadata": {"name": "n1", "resourceVersion": "7"}, "spec": {"taints": [other]}}
    added = taint_patch(node, True)
    assert added is not None
    assert added["metadata"]["resourceVersion"] == "7"  # a concurrent taint change is a 409, not lost
    assert added["spec"]["taints"] == [
        other,
        {"key": USED_BY_TAINT, "value": "tensor-fusion", "effect": "PreferNoSchedule"},
    ]
    tainted = {"metadata": node["metadata"], "spec": {"taints": added["spec"]["taints"]}}
    assert taint_patch(tainted, True) is None
    removed = taint_patch(tainted, False)
    assert removed is not None
    assert removed["spec"]["taints"] == [other]
    assert taint_patch({"metadata": {"name": "n"}}, False) is None


def _taints(node: Any) -> list[str]:
    return [t.key for t in (node.spec.taints if node.spec else None) or []]


async def test_the_controller_taints_nodes_while_workers_hold_gpus(kube: KubeEmulator) -> None:
    api = Cluster(kube)
    for name in ("node-a", "node-b"):
        await api.node(name, {"gpu": "true"})
    kube.api_client()
    own = kube.new_api_client()
    daemon = ControllerDaemon(own, Options(nvidia_progressive_migration=True, **FAST), watch_timeout=30)
    task = asyncio.create_task(daemon.run())
    try:
        await api.core.create_namespaced_pod("default", pod("pending", None))  # type: ignore[arg-type]  # the client takes plain dicts
        await api.core.create_namespaced_pod("default", pod("worker", "node-a"))  # type: ignore[arg-type]  # the client takes plain dicts
        await api.core.create_namespaced_pod("default", pod("batch", "node-b"))  # type: ignore[arg-type]  # the client takes plain dicts
        for name in ("node-a", "node-b"):
            await wait_for(lambda n=name: api.core.read_node(n), lambda n: _taints(n) == [USED_BY_TAINT])
        # Finishing and deletion both free the node; an unbound pod taints nothing.
        await api.core.patch_namespaced_pod_status("batch", "default", {"status": {"phase": "Succeeded"}})
        await api.core.delete_namespaced_pod("worker", "default")
        for name in ("node-a", "node-b"):
            await wait_for(lambda n=name: api.core.read_node(n), lambda n: _taints(n) == [])
        events = await api.events("TensorFusionTaint")
        assert sorted((e.involved_object.name, e.message) for e in events) == [
            ("node-a", f"{USED_BY_TAINT} added"),
            ("node-a", f"{USED_BY_TAINT} removed"),
            ("node-b", f"{USED_BY_TAINT} added"),
            ("node-b", f"{USED_BY_TAINT} removed"),
        ]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await own.close()
