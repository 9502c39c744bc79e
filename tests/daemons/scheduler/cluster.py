"""Cluster objects for the scheduler daemon tests: plain dicts, as the API server returns them."""

from __future__ import annotations

from typing import Any

SPEC_POD_YAML = """apiVersion: v1
kind: Pod
metadata:
  name: test-pod
  namespace: default
  labels:
    tensor-fusion.ai/enabled: "true"
  annotations:
    tensor-fusion.ai/tflops-request: "100"
    tensor-fusion.ai/vram-request: "16Gi"
    tensor-fusion.ai/tflops-limit: "100"
    tensor-fusion.ai/vram-limit: "16Gi"
spec:
  schedulerName: tensor-fusion-scheduler
  containers:
  - name: test-container
    image: nvidia/cuda"""


def pool(name: str = "shared", ratio: int = 100) -> dict[str, Any]:
    over = {"tflopsOversellRatio": ratio, "vramExpandToHostMem": 0, "vramExpandToHostDisk": 0}
    return {
        "apiVersion": "tensor-fusion.ai/v1",
        "kind": "GPUPool",
        "metadata": {"name": name},
        "spec": {"capacityConfig": {"oversubscription": over}},
    }


def gpunode(name: str, pool_name: str = "shared") -> dict[str, Any]:
    return {
        "apiVersion": "tensor-fusion.ai/v1",
        "kind": "GPUNode",
        "metadata": {"name": name, "labels": {"tensor-fusion.ai/gpupool": pool_name}},
        "spec": {"manageMode": "AutoSelect"},
    }


def node(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"zone": "a", **labels}}}


def gpu(
    node_name: str, index: int, *, tflops: str = "312", vram: str = "80Gi", pool_name: str = "shared"
) -> dict[str, Any]:
    return {
        "apiVersion": "tensor-fusion.ai/v1",
        "kind": "GPU",
        "metadata": {"name": f"{node_name}-gpu-{index}", "labels": {"tensor-fusion.ai/gpupool": pool_name}},
        "status": {
            "phase": "Running",
            "uuid": f"GPU-{node_name}-{index}",
            "gpuModel": "NVIDIA A100-SXM4-80GB",
            "vendor": "NVIDIA",
            "index": index,
            "capacity": {"tflops": tflops, "vram": vram},
            "available": {"tflops": tflops, "vram": vram},
            "usedBy": "tensor-fusion",
            "nodeSelector": {"kubernetes.io/hostname": node_name},
        },
    }


def fleet(nodes: int = 3, gpus: int = 2, **gpu_fields: Any) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = [pool()]
    for i in range(nodes):
        name = f"node-{i}"
        objects += [gpunode(name), node(name)]
        objects += [gpu(name, j, **gpu_fields) for j in range(gpus)]
    return objects


def gpu_pod(
    name: str, *, uid: str | None = None, tflops: str = "100", vram: str = "16Gi", **extra: str
) -> dict[str, Any]:
    annotations = {
        "tensor-fusion.ai/tflops-request": tflops,
        "tensor-fusion.ai/vram-request": vram,
        "tensor-fusion.ai/tflops-limit": tflops,
        "tensor-fusion.ai/vram-limit": vram,
        **extra,
    }
    metadata: dict[str, Any] = {"name": name, "namespace": "default", "annotations": annotations}
    metadata["labels"] = {"tensor-fusion.ai/enabled": "true"}
    if uid:
        metadata["uid"] = uid
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"schedulerName": "tensor-fusion-scheduler", "containers": [{"name": "c", "image": "nvidia/cuda"}]},
    }


def extender_args(pod: dict[str, Any], nodes: list[str]) -> dict[str, Any]:
    """ExtenderArgs as kube-scheduler (nodeCacheCapable: true) sends it: Go field names, Nodes null."""
    return {"Pod": pod, "Nodes": None, "NodeNames": nodes}


def binding_args(pod: dict[str, Any], node_name: str) -> dict[str, Any]:
    meta = pod["metadata"]
    return {
        "PodName": meta["name"],
        "PodNamespace": meta["namespace"],
        "PodUID": meta.get("uid", ""),
        "Node": node_name,
    }
