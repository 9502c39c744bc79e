"""Pool template updates and removals, cluster deletion through the finalizer, invalid specs,
workloads from their pods' owner, and the metrics/health listener."""

from __future__ import annotations

import copy

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from tests.daemons.controller.helpers import Cluster, Replica, replicas, spec_cluster, wait_for
from tests.kubeapi.emulator import KubeEmulator
from tfcore.web.app import Listener, start

CLUSTER = "tensor-fusion-cluster"


async def test_template_changes_update_pools_and_removed_pools_go(kube: KubeEmulator) -> None:
    api = Cluster(kube)
    cluster = spec_cluster()
    second = copy.deepcopy(cluster["spec"]["gpuPools"][0])
    second.update(name="batch", isDefault=False)
    cluster["spec"]["gpuPools"].append(second)
    async with replicas(kube, "solo"):
        await api.create("tensorfusionclusters", cluster)
        await wait_for(lambda: api.list("gpupools"), lambda pools: len(pools) == 2)
        # The controller writes status meanwhile, which moves resourceVersion: get-modify-update
        # until no conflict, as any client of a real API server must.
        for _ in range(20):
            current = await api.get("tensorfusionclusters", CLUSTER)
            assert current is not None
            pools = current["spec"]["gpuPools"]
            pools[0]["specTemplate"]["capacityConfig"]["oversubscription"]["tflopsOversellRatio"] = 200
            del pools[1]
            try:
                await api.custom.replace_cluster_custom_object(
                    "tensor-fusion.ai", "v1", "tensorfusionclusters", CLUSTER, current
                )
                break
            except ApiException as exc:
                if exc.status != 409:
                    raise
        else:
            raise AssertionError("the cluster kept conflicting")
        remaining = await wait_for(
            lambda: api.list("gpupools"),
            lambda found: (
                [p["metadata"]["name"] for p in found] == [f"{CLUSTER}-shared"]
                and found[0]["spec"]["capacityConfig"]["oversubscription"]["tflopsOversellRatio"] == 200
            ),
        )
        assert remaining[0]["spec"]["capacityConfig"]["oversubscription"]["vramExpandToHostMem"] == 40
        assert len(await api.events("PoolUpdated")) == 1
        assert len(await api.events("PoolDeleted")) == 1


async def test_deleting_the_cluster_deletes_its_pools_before_it_goes(kube: KubeEmulator) -> None:
    api = Cluster(kube)
    async with replicas(kube, "solo"):
        await api.create("tensorfusionclusters", spec_cluster())
        await wait_for(lambda: api.list("gpupools"), lambda pools: len(pools) == 1)
        await wait_for(
            lambda: api.get("tensorfusionclusters", CLUSTER), lambda c: bool(c["metadata"].get("finalizers"))
        )
        await api.custom.delete_cluster_custom_object("tensor-fusion.ai", "v1", "tensorfusionclusters", CLUSTER)
        await wait_for(lambda: api.get("tensorfusionclusters", CLUSTER), lambda c: c is None)
        assert await api.list("gpupools") == []


async def test_an_invalid_cluster_is_reported_not_retried(kube: KubeEmulator) -> None:
    api = Cluster(kube)
    cluster = spec_cluster()
    cluster["spec"]["gpuPools"].append(copy.deepcopy(cluster["spec"]["gpuPools"][0]))  # duplicate name
    async with replicas(kube, "solo") as (solo,):
        await api.create("tensorfusionclusters", cluster)
        found = await wait_for(
            lambda: api.get("tensorfusionclusters", CLUSTER),
            lambda c: (c.get("status") or {}).get("conditions", [{}])[0].get("reason") == "InvalidSpec",
        )
        assert "duplicate pool name 'shared'" in found["status"]["conditions"][0]["message"]
        assert "spec.gpuPools[1].name" in found["status"]["conditions"][0]["message"]
        assert await api.list("gpupools") == []
        assert len(await api.events("InvalidSpec")) == 1
        assert solo.daemon.controller.reconciles[("cluster", "error")] == 0


async def test_workload_follows_its_pods_and_their_deployment(kube: KubeEmulator) -> None:
    api = Cluster(kube)
    deployment = await api.apps.create_namespaced_deployment(
        "default",
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name="llm"),
            spec=client.V1DeploymentSpec(
                replicas=10,
                selector=client.V1LabelSelector(match_labels={"app": "llm"}),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels={"app": "llm"}),
                    spec=client.V1PodSpec(containers=[client.V1Container(name="main", image="x")]),
                ),
            ),
        ),
    )
    replica_set = await api.apps.create_namespaced_replica_set(
        "default",
        {  # type: ignore[arg-type]  # the client takes plain dicts
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": "llm-5d8f7",
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": "llm",
                        "uid": deployment.metadata.uid,
                        "controller": True,
                    }
                ],
            },
            "spec": {
                "selector": {"matchLabels": {"app": "llm"}},
                "template": {
                    "metadata": {"labels": {"app": "llm"}},
                    "spec": {"containers": [{"name": "main", "image": "x"}]},
                },
            },
        },
    )
    annotations = {
        "tensor-fusion.ai/tflops-request": "10",
        "tensor-fusion.ai/tflops-limit": "20",
        "tensor-fusion.ai/vram-request": "4Gi",
        "tensor-fusion.ai/vram-limit": "4Gi",
        "tensor-fusion.ai/gpupool": f"{CLUSTER}-shared",
        "tensor-fusion.ai/qos": "high",
        "tensor-fusion.ai/enabled-replicas": "3",
    }
    labels = {"app": "llm", "tensor-fusion.ai/enabled": "true", "tensor-fusion.ai/workload": "llm"}
    owner = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "name": "llm-5d8f7",
        "uid": replica_set.metadata.uid,
        "controller": True,
    }
    async with replicas(kube, "solo"):
        for index in range(3):
            body = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"llm-{index}",
                    "labels": labels,
                    "annotations": annotations,
                    "ownerReferences": [owner],
                },
                "spec": {"containers": [{"name": "main", "image": "x"}]},
            }
            await api.core.create_namespaced_pod("default", body)  # type: ignore[arg-type]  # the client takes plain dicts
        workload = await wait_for(
            lambda: api.get("tensorfusionworkloads", "llm", "default"),
            lambda w: w is not None and (w.get("status") or {}).get("workerCount") == 3,
        )
        assert workload["spec"]["replicas"] == 3  # 10 replicas, canary of 3
        assert workload["spec"]["poolName"] == f"{CLUSTER}-shared"
        assert workload["spec"]["qos"] == "high"
        assert workload["spec"]["resources"] == {
            "requests": {"tflops": "10", "vram": "4Gi"},
            "limits": {"tflops": "20", "vram": "4Gi"},
        }
        assert workload["metadata"]["ownerReferences"][0]["kind"] == "Deployment"
        assert workload["status"]["phase"] == "Pending"
        assert workload["status"]["readyWorkers"] == 0
        for index in range(3):
            await api.core.patch_namespaced_pod_status(
                f"llm-{index}",
                "default",
                {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}},
            )
        workload = await wait_for(
            lambda: api.get("tensorfusionworkloads", "llm", "default"),
            lambda w: (w.get("status") or {}).get("readyWorkers") == 3,
        )
        assert workload["status"]["phase"] == "Running"
        await api.core.delete_namespaced_pod("llm-2", "default")
        await wait_for(
            lambda: api.get("tensorfusionworkloads", "llm", "default"),
            lambda w: (w.get("status") or {}).get("workerCount") == 2,
        )
        assert len(await api.events("WorkloadCreated")) == 1


async def test_metrics_health_and_readiness(kube: KubeEmulator) -> None:
    replica = Replica(kube, "solo", leader_elect=True)
    served = await start([(replica.daemon.app(), Listener("127.0.0.1", 0))])
    try:
        host, port = served.addresses()[0]
        async with aiohttp.ClientSession(f"http://{host}:{port}") as http:
            await wait_for(lambda: _status(http, "/readyz"), lambda status: status == 200)
            await wait_for(replica_is_leader(replica), lambda leads: leads)
            async with http.get("/healthz") as reply:
                assert reply.status == 200
            async with http.get("/metrics") as reply:
                text = await reply.text()
        assert "tf_controller_is_leader 1.0" in text
        assert "tf_controller_leadership_acquired_total 1.0" in text
    finally:
        await served.close()
        await replica.api.close()
    lease = await client.CoordinationV1Api(kube.api_client()).read_namespaced_lease(
        "tensor-fusion-controller-leader", "default"
    )
    assert not lease.spec.holder_identity  # shutdown released it


async def _status(http: aiohttp.ClientSession, path: str) -> int:
    async with http.get(path) as reply:
        return reply.status


def replica_is_leader(replica: Replica):  # type: ignore[no-untyped-def]
    async def probe() -> bool:
        return replica.is_leader()

    return probe


async def test_a_pool_the_api_server_refuses_is_a_ready_false_condition(kube: KubeEmulator) -> None:
    api = Cluster(kube)
    cluster = spec_cluster()
    long_name = "c" * 248  # valid for the cluster; its pool's name (<cluster>-<pool>) is over 253
    cluster["metadata"]["name"] = long_name
    async with replicas(kube, "solo"):
        await api.create("tensorfusionclusters", cluster)
        found = await wait_for(
            lambda: api.get("tensorfusionclusters", long_name),
            lambda c: (c.get("status") or {}).get("conditions", [{}])[0].get("reason") == "PoolRejected",
        )
        ready = found["status"]["conditions"][0]
        assert ready["type"] == "Ready"
        assert ready["status"] == "False"
        assert "refused by the API server" in ready["message"]
        assert "must consist of lower case alphanumeric" in ready["message"]  # the API server's own words
