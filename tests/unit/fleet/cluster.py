"""Builders for fleet snapshots: a pool, its nodes, the hypervisor DaemonSet and its pods."""

from __future__ import annotations

from typing import Any

NAMESPACE = "tensor-fusion-sys"
DS_UID = "ds-uid-1"
SELECTOR = {"app.kubernetes.io/name": "tensor-fusion", "app.kubernetes.io/component": "hypervisor"}
OLD_TIME = "2026-03-01T00:00:00Z"


def pool(name: str = "shared", *, policy: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    manager = {"nodeSelector": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}]}}
    if policy is not None:
        manager["nodePoolRollingUpdatePolicy"] = policy
    manager.update(spec.pop("manager", {}))
    return {
        "apiVersion": "tensor-fusion.ai/v1",
        "kind": "GPUPool",
        "metadata": {"name": name, "annotations": spec.pop("annotations", {})},
        "spec": {"nodeManagerConfig": manager, **spec},
    }


def daemonset() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {
            "name": "tensor-fusion-hypervisor",
            "namespace": NAMESPACE,
            "uid": DS_UID,
            "labels": dict(SELECTOR),
        },
        "spec": {"selector": {"matchLabels": dict(SELECTOR)}, "updateStrategy": {"type": "OnDelete"}},
    }


def revision(number: int, hash_: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {
            "name": f"tensor-fusion-hypervisor-{hash_}",
            "namespace": NAMESPACE,
            "labels": {**SELECTOR, "controller-revision-hash": hash_},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "DaemonSet",
                    "name": "tensor-fusion-hypervisor",
                    "uid": DS_UID,
                    "controller": True,
                }
            ],
        },
        "revision": number,
        "data": {},
    }


def node(name: str, *, cpu: str = "8", created: str = OLD_TIME, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"gpu": "true", **labels}, "creationTimestamp": created},
        "spec": {},
        "status": {
            "allocatable": {"cpu": cpu, "memory": "32Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def gpunode(name: str, pool_name: str = "shared", *, tflops: str = "121", used: str = "0") -> dict[str, Any]:
    available = str(int(tflops) - int(used))
    return {
        "apiVersion": "tensor-fusion.ai/v1",
        "kind": "GPUNode",
        "metadata": {"name": name, "labels": {"tensor-fusion.ai/gpupool": pool_name}},
        "status": {
            "phase": "Running",
            "totalTFlops": tflops,
            "totalVRAM": "24Gi",
            "availableTFlops": available,
            "availableVRAM": "24Gi" if used == "0" else "0",
        },
    }


def hypervisor_pod(node_name: str, hash_: str, *, ready: bool = True, created: str = OLD_TIME) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"hypervisor-{node_name}-{hash_}",
            "namespace": NAMESPACE,
            "labels": {**SELECTOR, "controller-revision-hash": hash_},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "DaemonSet",
                    "name": "tensor-fusion-hypervisor",
                    "uid": DS_UID,
                    "controller": True,
                }
            ],
            "creationTimestamp": created,
        },
        "spec": {"nodeName": node_name, "containers": [{"name": "hypervisor", "image": "tf:1"}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def app_pod(name: str, node_name: str, cpu: str = "500m", **annotations: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "annotations": annotations},
        "spec": {
            "nodeName": node_name,
            "containers": [{"name": "app", "image": "app", "resources": {"requests": {"cpu": cpu}}}],
        },
        "status": {"phase": "Running"},
    }


def rolling_fleet(
    nodes: int, *, policy: dict[str, Any], hash_: str = "aaa", target: str = "bbb"
) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = [pool(policy=policy), daemonset(), revision(1, "aaa"), revision(2, target)]
    for i in range(nodes):
        objects += [node(f"gpu-{i}"), gpunode(f"gpu-{i}"), hypervisor_pod(f"gpu-{i}", hash_)]
    return objects
