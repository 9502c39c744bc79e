"""Canary and rollback against the Kubernetes API emulator, pods created as the controllers would.

The webhook counts an owner's pods through tfcore.k8s.admission_support (the real
kubernetes-asyncio client over HTTP); tests/daemons/webhook/controllers.py plays the
Deployment, ReplicaSet and StatefulSet controllers (see its docstring for what is emulated).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from daemons.webhook.cluster import pod_informer
from daemons.webhook.server import Webhook
from tests.daemons.webhook.controllers import Cluster, deletion_rank
from tests.kubeapi import KubeEmulator
from tests.unit.admission.pods import cluster as cluster_defaults
from tfcore.admission import InjectionConfig
from tfcore.admission.canary import DELETION_COST, MODE_ANNOTATION
from tfcore.k8s.admission_support import OwnerPods
from tfcore.model import annotations as ann


def template(labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """The spec's canary example: 3 of the replicas on tensor-fusion, the rest on nvidia.com/gpu: 1."""
    return {
        "metadata": {
            "labels": {"app": "web", ann.LABEL_ENABLED: "true", **(labels or {})},
            "annotations": {
                ann.TFLOPS_LIMIT: "10",
                ann.VRAM_LIMIT: "4Gi",
                ann.ENABLED_REPLICAS: "3",
                **(annotations or {}),
            },
        },
        "spec": {
            "containers": [{"name": "python", "image": "python:3.11", "resources": {"limits": {"nvidia.com/gpu": 1}}}]
        },
    }


@pytest.fixture
async def cluster(kube: KubeEmulator) -> AsyncIterator[Cluster]:
    """The webhook as the daemon wires it: owner listing plus the pod watch ending reservations."""
    api = kube.api_client()
    owner_pods = OwnerPods(api)
    webhook = Webhook(InjectionConfig(), cluster_defaults, list_owner_pods=owner_pods.list)
    watch = asyncio.create_task(pod_informer(api, webhook.ledger).run())
    try:
        yield Cluster(api, webhook, settled=lambda: webhook.ledger.total_pending() == 0)
    finally:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch


def census(pods: list[dict[str, Any]]) -> Counter[str]:
    """TF and native pods, after checking each is consistently one or the other."""
    kinds: Counter[str] = Counter()
    for pod in pods:
        spec, annotations = pod["spec"], pod["metadata"].get("annotations") or {}
        limits = spec["containers"][0].get("resources", {}).get("limits", {})
        if spec.get("schedulerName") == "tensor-fusion-scheduler":
            assert "nvidia.com/gpu" not in limits
            assert spec["initContainers"][0]["name"] == "tf-shim-install"
            assert annotations[MODE_ANNOTATION] == "tensor-fusion"
            kinds["tf"] += 1
        else:
            assert limits.get("nvidia.com/gpu") in (1, "1")
            assert "initContainers" not in spec
            assert annotations.get(MODE_ANNOTATION, "native") == "native"
            kinds["native"] += 1
    return kinds


async def live(cluster: Cluster, owner: dict[str, Any]) -> Counter[str]:
    return census(await cluster.pods(owner["metadata"]["uid"]))


async def test_ten_replicas_three_enabled_then_scale_to_twenty_and_back(cluster: Cluster) -> None:
    deployment = await cluster.create_deployment("web", 10, template())
    [replica_set] = await cluster.replica_sets(deployment)
    assert await live(cluster, replica_set) == Counter(tf=3, native=7)

    replica_set = await cluster.scale(replica_set, 20)
    assert await live(cluster, replica_set) == Counter(tf=3, native=17)

    replica_set = await cluster.scale(replica_set, 10)
    assert await live(cluster, replica_set) == Counter(tf=3, native=7)

    replica_set = await cluster.scale(replica_set, 2)
    assert await live(cluster, replica_set) == Counter(tf=2)
    replica_set = await cluster.scale(replica_set, 10)
    assert await live(cluster, replica_set) == Counter(tf=3, native=7)


async def test_tf_pods_cost_more_to_delete(cluster: Cluster) -> None:
    deployment = await cluster.create_deployment("web", 5, template())
    [replica_set] = await cluster.replica_sets(deployment)
    pods = sorted(await cluster.pods(replica_set["metadata"]["uid"]), key=deletion_rank)
    costs = [p["metadata"].get("annotations", {}).get(DELETION_COST) for p in pods]
    assert costs == [None, None, "1000", "1000", "1000"]
    assert all(p["metadata"]["labels"][ann.LABEL_WORKLOAD] == "web" for p in pods[2:])


async def test_replaced_pods_keep_the_split(cluster: Cluster) -> None:
    deployment = await cluster.create_deployment("web", 10, template())
    [replica_set] = await cluster.replica_sets(deployment)
    pods = await cluster.pods(replica_set["metadata"]["uid"])
    tf = [p for p in pods if p["spec"].get("schedulerName")]
    native = [p for p in pods if not p["spec"].get("schedulerName")]
    for victim in tf[:2] + native[:1]:
        await cluster.delete_pod(victim["metadata"]["name"])
    assert await live(cluster, replica_set) == Counter(tf=1, native=6)
    await cluster.sync_replica_set(replica_set)
    assert await live(cluster, replica_set) == Counter(tf=3, native=7)

    for pod in await cluster.pods(replica_set["metadata"]["uid"]):  # a node drained: every pod replaced
        await cluster.delete_pod(pod["metadata"]["name"])
    await cluster.sync_replica_set(replica_set)
    assert await live(cluster, replica_set) == Counter(tf=3, native=7)


@pytest.mark.parametrize(
    "rollback",
    [{"labels": {ann.LABEL_ENABLED: "false"}}, {"annotations": {ann.ENABLED_REPLICAS: "0"}}],
    ids=["enabled-false", "enabled-replicas-0"],
)
async def test_rollback_gives_native_pods_on_their_next_creation(cluster: Cluster, rollback: dict[str, Any]) -> None:
    deployment = await cluster.create_deployment("web", 10, template())
    [old] = await cluster.replica_sets(deployment)
    assert await live(cluster, old) == Counter(tf=3, native=7)
    new = await cluster.rollout(deployment, template(**rollback), 10)
    assert await live(cluster, new) == Counter(native=10)
    assert await live(cluster, old) == Counter()


async def test_raising_the_canary_rolls_out_to_exactly_n(cluster: Cluster) -> None:
    deployment = await cluster.create_deployment("web", 10, template())
    new = await cluster.rollout(deployment, template(annotations={ann.ENABLED_REPLICAS: "6"}), 10)
    assert await live(cluster, new) == Counter(tf=6, native=4)
    full = await cluster.rollout(deployment, template(annotations={ann.ENABLED_REPLICAS: "10"}), 10)
    assert await live(cluster, full) == Counter(tf=10)


async def test_a_burst_of_concurrent_creations_does_not_over_admit(cluster: Cluster) -> None:
    deployment = await cluster.create_deployment("web", 40, template(annotations={ann.ENABLED_REPLICAS: "7"}))
    [replica_set] = await cluster.replica_sets(deployment)
    assert await live(cluster, replica_set) == Counter(tf=7, native=33)
    assert cluster.webhook.ledger.pending(replica_set["metadata"]["uid"]) <= 7


async def test_statefulset_canary_is_by_ordinal(cluster: Cluster) -> None:
    statefulset = await cluster.create_statefulset("db", 10, template())
    pods = await cluster.pods(statefulset["metadata"]["uid"])
    tf_names = sorted(p["metadata"]["name"] for p in pods if p["spec"].get("schedulerName"))
    assert tf_names == ["db-0", "db-1", "db-2"]
    await cluster.sync_statefulset(statefulset, 2)
    assert await live(cluster, statefulset) == Counter(tf=2)
    await cluster.delete_pod("db-1")
    await cluster.sync_statefulset(statefulset, 20)
    assert await live(cluster, statefulset) == Counter(tf=3, native=17)
