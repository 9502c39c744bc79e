"""Pods and AdmissionReviews as the API server sends them, for admission tests and the benchmark."""

from __future__ import annotations

import copy
import json
from typing import Any

from tfcore.admission import ClusterDefaults, PodReview
from tfcore.admission.defaults import cluster_defaults
from tfcore.model import annotations as ann

CLUSTER: dict[str, Any] = {
    "apiVersion": "tensor-fusion.ai/v1",
    "kind": "TensorFusionCluster",
    "metadata": {"name": "prod"},
    "spec": {
        "gpuPools": [
            {"name": "shared", "isDefault": True, "specTemplate": {"qosConfig": {"defaultQoS": "medium"}}},
            {
                "name": "premium",
                "specTemplate": {
                    "defaultUsingLocalGPU": True,
                    "qosConfig": {"definitions": [{"name": "high"}, {"name": "critical"}], "defaultQoS": "high"},
                },
            },
        ]
    },
}
PROFILE: dict[str, Any] = {
    "apiVersion": "tensor-fusion.ai/v1",
    "kind": "WorkloadProfile",
    "metadata": {"name": "inference", "namespace": "default"},
    "spec": {
        "poolName": "premium",
        "qos": "critical",
        "gpuCount": 2,
        "resources": {"requests": {"tflops": "20", "vram": "8Gi"}, "limits": {"tflops": "40", "vram": "8Gi"}},
    },
}


def cluster() -> ClusterDefaults:
    defaults, skipped = cluster_defaults([CLUSTER], [], [PROFILE])
    assert skipped == []
    return defaults


def tf_pod(
    annotations: dict[str, str] | None = None,
    *,
    containers: list[str] = ("main",),  # type: ignore[assignment]
    labels: dict[str, str] | None = None,
    owner: dict[str, Any] | None = None,
    name: str = "",
    gpus: int = 1,
) -> dict[str, Any]:
    """A pod labelled for tensor-fusion that asks for 10 TFLOPS / 4Gi unless told otherwise."""
    metadata: dict[str, Any] = {
        "namespace": "default",
        "labels": {ann.LABEL_ENABLED: "true", **(labels or {})},
        "annotations": {ann.TFLOPS_LIMIT: "10", ann.VRAM_LIMIT: "4Gi"} if annotations is None else annotations,
    }
    if name:
        metadata["name"] = name
    else:
        metadata["generateName"] = "web-"
    if owner:
        metadata["ownerReferences"] = [owner]
    resources = {"limits": {"nvidia.com/gpu": str(gpus), "cpu": "1"}, "requests": {"nvidia.com/gpu": str(gpus)}}
    spec = {
        "containers": [{"name": c, "image": "python:3.11", "resources": copy.deepcopy(resources)} for c in containers]
    }
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def owner_ref(kind: str, name: str, uid: str) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": uid, "controller": True}


def review_document(pod: dict[str, Any], uid: str = "req-1", operation: str = "CREATE") -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": operation,
            "namespace": pod["metadata"].get("namespace", "default"),
            "name": pod["metadata"].get("name", ""),
            "object": pod,
        },
    }


def review_body(pod: dict[str, Any], uid: str = "req-1", operation: str = "CREATE") -> bytes:
    return json.dumps(review_document(pod, uid, operation)).encode()


def review(pod: dict[str, Any], uid: str = "req-1") -> PodReview:
    return PodReview(uid=uid, operation="CREATE", namespace=pod["metadata"].get("namespace", "default"), pod=pod)
