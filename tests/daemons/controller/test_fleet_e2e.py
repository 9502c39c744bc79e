"""Fleet passes against the API emulator: a hypervisor rollout in batches inside its window, a
controller killed mid-rollout and mid-provision resuming without a second action, and a
Provisioned pool on a moto EC2 server."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from daemons.controller import fleet_loop
from daemons.controller.aws import AwsProvider, session_for
from daemons.controller.capacity import reconcile_capacity
from daemons.controller.fleet_io import FleetApi
from daemons.controller.rollout import ANNOTATION, reconcile_rollouts
from tests.kubeapi.emulator import KubeEmulator
from tests.kubeapi.objects import eventually
from tests.unit.fleet import cluster
from tfcore.fleet.provider import CloudProvider, Instance, LaunchRequest
from tfcore.k8s import KubeClient, request_json
from tfcore.model.pool import ComputingVendorConfig
from tfcore.operator.fleet import pool_status

WINDOW_OPEN = datetime(2026, 3, 2, 1, 0, 30, tzinfo=UTC)  # 02:00:30 in Berlin
POLICY = {
    "autoUpdate": True,
    "batchPercentage": 40,
    "batchInterval": "1m",
    "maxDuration": "1h",
    "maintenanceWindow": {"includes": ["0 2 * * *"], "timezone": "Europe/Berlin"},
}
PATHS = {
    "Pod": "/api/v1/pods",
    "GPUPool": "/apis/tensor-fusion.ai/v1/gpupools",
    "GPUNodeClaim": "/apis/tensor-fusion.ai/v1/gpunodeclaims",
}


class Crash(BaseException):  # a kill, which no handler in the controller may swallow
    """The controller process dies here."""


def fence_after(writes: int) -> Any:
    """A fence that lets `writes` writes through and then kills the 'process'."""
    count = {"n": 0}

    def fence() -> None:
        count["n"] += 1
        if count["n"] > writes:
            raise Crash

    return fence


def alive() -> None:
    return None


async def create(api: KubeClient, obj: dict[str, Any]) -> dict[str, Any]:
    kind, meta = obj["kind"], obj["metadata"]
    ns = meta.get("namespace")
    group = obj["apiVersion"]
    base = f"/api/{group}" if "/" not in group else f"/apis/{group}"
    plural = {"GPUNodeClass": "gpunodeclasses"}.get(kind, kind.lower() + "s")
    path = f"{base}/namespaces/{ns}/{plural}" if ns else f"{base}/{plural}"
    status = obj.get("status")
    created: dict[str, Any] = await request_json(api, "POST", path, body=obj)
    if status:
        created = await request_json(
            api,
            "PATCH",
            f"{path}/{meta['name']}/status",
            body={"status": status},
            content_type="application/merge-patch+json",
        )
    return created


async def items(api: KubeClient, kind: str) -> list[dict[str, Any]]:
    return list((await request_json(api, "GET", PATHS[kind]))["items"])


def owned_by(obj: dict[str, Any], uid: str) -> dict[str, Any]:
    """The object with its DaemonSet owner's real uid (the API server assigns it; GC checks it)."""
    for ref in obj["metadata"].get("ownerReferences") or ():
        ref["uid"] = uid
    obj["metadata"].pop("creationTimestamp", None)
    return obj


async def rollout_fleet(api: KubeClient, nodes: int) -> str:
    await create(api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": cluster.NAMESPACE}})
    objects = cluster.rolling_fleet(nodes, policy=POLICY)
    daemonset = next(o for o in objects if o["kind"] == "DaemonSet")
    daemonset["metadata"].pop("uid")
    uid = str((await create(api, daemonset))["metadata"]["uid"])
    for obj in objects:
        if obj is not daemonset:
            await create(api, owned_by(obj, uid))
    return uid


async def daemonset_controller(api: KubeClient, uid: str, hash_: str = "bbb") -> int:
    """What the DaemonSet controller does under OnDelete: a new-revision pod where one is missing."""
    pods = await items(api, "Pod")
    covered = {p["spec"]["nodeName"] for p in pods if p["metadata"]["namespace"] == cluster.NAMESPACE}
    made = 0
    for node in (
        g["metadata"]["name"] for g in (await request_json(api, "GET", "/apis/tensor-fusion.ai/v1/gpunodes"))["items"]
    ):
        if node not in covered:
            await create(api, owned_by(cluster.hypervisor_pod(node, hash_), uid))
            made += 1
    return made


def revisions(pods: list[dict[str, Any]]) -> dict[str, str]:
    return {p["spec"]["nodeName"]: p["metadata"]["labels"]["controller-revision-hash"] for p in pods}


async def test_rollout_in_batches_inside_the_window(kube: KubeEmulator) -> None:
    api = kube.api_client()
    uid = await rollout_fleet(api, 5)
    fleet = FleetApi(api, alive)
    # 03:30 in Berlin: the window (02:00 + maxDuration 1h) is closed, nothing is touched.
    plan = (await reconcile_rollouts(fleet, WINDOW_OPEN + timedelta(hours=1, minutes=30)))[0]
    assert plan.decision.action == "wait"
    assert len(await items(api, "Pod")) == 5
    now = WINDOW_OPEN
    batches: list[tuple[str, ...]] = []
    for _ in range(12):
        plan = (await reconcile_rollouts(fleet, now))[0]
        if plan.decision.action == "replace":
            batches.append(plan.decision.nodes)
        down = 5 - len([p for p in await items(api, "Pod") if not p["metadata"].get("deletionTimestamp")])
        assert down <= 2  # max(1, floor(40% x 5))
        if plan.decision.action == "done":
            break
        await daemonset_controller(api, uid)
        now += timedelta(seconds=30)
    assert batches == [("gpu-0", "gpu-1"), ("gpu-2", "gpu-3"), ("gpu-4",)]
    assert set(revisions(await items(api, "Pod")).values()) == {"bbb"}
    [pool] = await items(api, "GPUPool")
    assert ANNOTATION not in (pool["metadata"].get("annotations") or {})


async def test_controller_killed_mid_rollout_finishes_the_same_batch(kube: KubeEmulator) -> None:
    api = kube.api_client()
    await rollout_fleet(api, 5)
    with pytest.raises(Crash):  # state written, killed before the first pod deletion
        await reconcile_rollouts(FleetApi(api, fence_after(1)), WINDOW_OPEN)
    [pool] = await items(api, "GPUPool")
    assert "gpu-0" in pool["metadata"]["annotations"][ANNOTATION]
    assert len(await items(api, "Pod")) == 5
    plan = (await reconcile_rollouts(FleetApi(api, alive), WINDOW_OPEN + timedelta(minutes=5)))[0]
    assert plan.decision.action == "wait"  # no second batch...
    assert sorted(plan.pods) == ["gpu-0", "gpu-1"]  # ...the first one's deletions are sent
    left = revisions(await items(api, "Pod"))
    assert sorted(left) == ["gpu-2", "gpu-3", "gpu-4"]


@pytest.fixture
def ec2_endpoint(monkeypatch: pytest.MonkeyPatch, moto_endpoint: str) -> str:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    return moto_endpoint


class Passes:
    """The AWS provider, every call passed through: subclasses break `launch`."""

    def __init__(self, inner: AwsProvider) -> None:
        self.inner = inner

    def launch(self, request: LaunchRequest) -> Instance:
        return self.inner.launch(request)

    def find(self, claim: str) -> Instance | None:
        return self.inner.find(claim)

    def describe(self, instance_id: str) -> Instance | None:
        return self.inner.describe(instance_id)

    def terminate(self, instance_id: str) -> None:
        self.inner.terminate(instance_id)


class DiesAfterLaunch(Passes):
    """A provider whose process is killed right after EC2 accepted the launch."""

    def launch(self, request: LaunchRequest) -> Instance:
        self.inner.launch(request)
        raise Crash


async def test_provisioned_pool_never_provisions_twice_across_restarts(kube: KubeEmulator, ec2_endpoint: str) -> None:
    api = kube.api_client()
    vendor = {"type": "aws", "authType": "serviceAccountRole", "enable": True, "params": {"defaultRegion": "us-east-1"}}
    aws = AwsProvider(session_for(ComputingVendorConfig(type="aws")), "us-east-1", endpoint_url=ec2_endpoint)
    image = aws.ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    await create(
        api,
        {
            "apiVersion": "tensor-fusion.ai/v1",
            "kind": "TensorFusionCluster",
            "metadata": {"name": "tf"},
            "spec": {"computingVendor": vendor},
        },
    )
    await create(
        api,
        {
            "apiVersion": "tensor-fusion.ai/v1",
            "kind": "GPUNodeClass",
            "metadata": {"name": "tf-node-class"},
            "spec": {"osImageSelectorTerms": [{"id": image}]},
        },
    )
    manager = {
        "provisioningMode": "Provisioned",
        "nodeProvisioner": {
            "nodeClass": "tf-node-class",
            "gpuRequirements": [
                {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["g6.xlarge"]},
                {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]},
            ],
        },
    }
    await create(api, cluster.pool(manager=manager, capacityConfig={"minResources": {"tflops": "200"}}))

    def provider_for(crashing: bool) -> Any:
        def make(_vendor: ComputingVendorConfig) -> CloudProvider:
            return DiesAfterLaunch(aws) if crashing else aws

        return make

    now = datetime.now(UTC)  # claims age from the creationTimestamp the server gives them
    # Killed after creating the first claim.
    with pytest.raises(Crash):
        await reconcile_capacity(FleetApi(api, fence_after(1)), now, provider_for(False))
    assert [c["metadata"]["name"] for c in await items(api, "GPUNodeClaim")] == ["shared-0"]
    # Restarted: asks only for what is missing, then dies right after the first launch.
    with pytest.raises(Crash):
        await reconcile_capacity(FleetApi(api, alive), now, provider_for(True))
    claims = await items(api, "GPUNodeClaim")
    assert [c["metadata"]["name"] for c in claims] == ["shared-0", "shared-1"]
    assert not any((c.get("status") or {}).get("instanceID") for c in claims)
    # Restarted again, twice: the launched instance is found by its tag, one more is launched.
    for _ in range(2):
        await reconcile_capacity(FleetApi(api, alive), now, provider_for(False))
    claims = await items(api, "GPUNodeClaim")
    assert len(claims) == 2
    ids = {c["status"]["instanceID"] for c in claims}
    running = [
        i["InstanceId"]
        for r in aws.ec2.describe_instances()["Reservations"]
        for i in r["Instances"]
        if i["State"]["Name"] in ("pending", "running")
    ]
    assert sorted(running) == sorted(ids)
    assert len(running) == 2
    # Not Ready within 15 minutes: the claims are deleted (their finalizer terminates the instances).
    later = now + timedelta(minutes=16)
    await reconcile_capacity(FleetApi(api, alive), later, provider_for(False))
    await reconcile_capacity(FleetApi(api, alive), later, provider_for(False))
    states = {
        i["InstanceId"]: i["State"]["Name"]
        for r in aws.ec2.describe_instances()["Reservations"]
        for i in r["Instances"]
    }
    assert all(states[i] in ("shutting-down", "terminated") for i in ids)


def tf_pod(name: str, node: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "infer"}},
        "spec": {
            "nodeName": node,
            "initContainers": [{"name": "tf-shim-install", "image": image}],
            "containers": [{"name": "app", "image": "infer:1"}],
        },
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    }


async def test_client_shim_rolls_by_eviction_within_disruption_budgets(kube: KubeEmulator) -> None:
    api = kube.api_client()
    await create(api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": cluster.NAMESPACE}})
    webhook = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "webhook",
            "namespace": cluster.NAMESPACE,
            "labels": {"app.kubernetes.io/component": "webhook"},
        },
        "spec": {
            "selector": {"matchLabels": {"app": "webhook"}},
            "template": {
                "metadata": {"labels": {"app": "webhook"}},
                "spec": {"containers": [{"name": "webhook", "image": "tf:2", "args": ["webhook", "--image", "tf:2"]}]},
            },
        },
    }
    await create(api, webhook)
    policy = {"autoUpdateClient": True, "batchPercentage": 50, "batchInterval": "1s", "maxDuration": "1h"}
    await create(api, cluster.pool(policy=policy))
    for node in ("gpu-0", "gpu-1"):
        await create(api, cluster.gpunode(node))
    for i in range(4):
        await create(api, tf_pod(f"infer-{i}", f"gpu-{i % 2}", "tf:1"))
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "infer", "namespace": "default"},
        "spec": {"minAvailable": 3, "selector": {"matchLabels": {"app": "infer"}}},
    }
    await create(api, pdb)

    async def names() -> list[str]:
        return sorted(p["metadata"]["name"] for p in await items(api, "Pod") if p["metadata"]["namespace"] == "default")

    now = datetime.now(UTC)
    plans = await reconcile_rollouts(FleetApi(api, alive), now)
    client = next(p for p in plans if p.target == "tf:2")
    assert client.decision.nodes == ("default/infer-0", "default/infer-1")  # max(1, floor(50% x 4))
    assert await names() == ["infer-1", "infer-2", "infer-3"]  # the budget (minAvailable 3) refused infer-1
    await reconcile_rollouts(FleetApi(api, alive), now + timedelta(seconds=5))
    assert await names() == ["infer-1", "infer-2", "infer-3"]  # still refused, and no new batch
    await create(api, tf_pod("infer-4", "gpu-0", "tf:2"))  # the ReplicaSet's replacement, Ready
    await reconcile_rollouts(FleetApi(api, alive), now + timedelta(seconds=10))
    assert await names() == ["infer-2", "infer-3", "infer-4"]


async def test_the_loop_writes_only_while_leading(kube: KubeEmulator) -> None:
    api = kube.api_client()
    await rollout_fleet(api, 2)
    policy = {"batchPercentage": 50, "maintenanceWindow": None}  # no window: rolls at once
    await request_json(
        api,
        "PATCH",
        f"{PATHS['GPUPool']}/shared",
        body={"spec": {"nodeManagerConfig": {"nodePoolRollingUpdatePolicy": policy}}},
        content_type="application/merge-patch+json",
    )
    leading = {"now": False}
    task = asyncio.create_task(fleet_loop.run(api, is_leader=lambda: leading["now"], interval=0.05))
    try:
        await asyncio.sleep(0.3)
        assert len(await items(api, "Pod")) == 2  # a follower touches nothing
        leading["now"] = True
        await eventually(lambda: items(api, "Pod"), lambda pods: len(pods) == 1, timeout=5)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


NODECLAIM_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "nodeclaims.karpenter.sh"},
    "spec": {
        "group": "karpenter.sh",
        "scope": "Cluster",
        "names": {"plural": "nodeclaims", "singular": "nodeclaim", "kind": "NodeClaim", "listKind": "NodeClaimList"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            }
        ],
    },
}


async def test_karpenter_pool_claims_then_compacts_an_empty_node(kube: KubeEmulator) -> None:
    api = kube.api_client()
    await create(api, NODECLAIM_CRD)
    claims_path = "/apis/karpenter.sh/v1/nodeclaims"
    manager = {
        "provisioningMode": "Karpenter",
        "nodeProvisioner": {
            "karpenterNodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "gpu"},
            "gpuRequirements": [{"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["g6.xlarge"]}],
        },
        "nodeCompaction": {"period": "5m"},
    }
    await create(api, cluster.pool(manager=manager, capacityConfig={"minResources": {"tflops": "100"}}))
    now = datetime.now(UTC)
    await reconcile_capacity(FleetApi(api, alive), now, lambda _v: None)
    await reconcile_capacity(FleetApi(api, alive), now, lambda _v: None)  # a second pass adds nothing
    [claim] = (await request_json(api, "GET", claims_path))["items"]
    assert claim["metadata"]["name"] == "shared-0"
    assert "karpenter.sh/do-not-disrupt" not in claim["metadata"].get("annotations", {})
    # Karpenter launches it; the node joins with more than min needs once a second one is there.
    for name in ("gpu-a", "gpu-b"):
        node = cluster.node(name, created="2026-01-01T00:00:00Z")
        node["metadata"].pop("creationTimestamp")
        await create(api, node)
        await create(api, cluster.gpunode(name))
    await request_json(
        api,
        "PATCH",
        f"{claims_path}/shared-0/status",
        body={"status": {"nodeName": "gpu-b"}},
        content_type="application/merge-patch+json",
    )
    later = now + timedelta(minutes=10)  # nodes older than 5 minutes, the period due
    plans = await reconcile_capacity(FleetApi(api, alive), later, lambda _v: None)
    assert plans[0].verdict is not None
    assert (await request_json(api, "GET", claims_path))["items"] == []  # gpu-b's claim went; gpu-a is not ours
    [pool] = await items(api, "GPUPool")
    assert pool["status"]["lastCompactionTime"]
    plans = await reconcile_capacity(FleetApi(api, alive), later + timedelta(minutes=1), lambda _v: None)
    assert plans[0].verdict is None  # not due again before the period


class RefusesOne(Passes):
    """EC2 refusing one claim (no capacity for it), as botocore's ClientError would."""

    def __init__(self, inner: AwsProvider, refused: str) -> None:
        super().__init__(inner)
        self.refused = refused

    def launch(self, request: LaunchRequest) -> Instance:
        if request.claim == self.refused:
            raise RuntimeError("InsufficientInstanceCapacity")
        return super().launch(request)


async def test_a_refused_launch_fails_its_claim_only(kube: KubeEmulator, ec2_endpoint: str) -> None:
    api = kube.api_client()
    aws = AwsProvider(session_for(ComputingVendorConfig(type="aws")), "us-east-1", endpoint_url=ec2_endpoint)
    image = aws.ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    vendor = {"type": "aws", "enable": True, "params": {"defaultRegion": "us-east-1"}}
    await create(
        api,
        {
            "apiVersion": "tensor-fusion.ai/v1",
            "kind": "TensorFusionCluster",
            "metadata": {"name": "tf"},
            "spec": {"computingVendor": vendor},
        },
    )
    await create(
        api,
        {
            "apiVersion": "tensor-fusion.ai/v1",
            "kind": "GPUNodeClass",
            "metadata": {"name": "c"},
            "spec": {"osImageSelectorTerms": [{"id": image}]},
        },
    )
    manager = {
        "provisioningMode": "Provisioned",
        "nodeProvisioner": {
            "nodeClass": "c",
            "gpuRequirements": [{"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["g6.xlarge"]}],
            "gpuNodeLabels": {"tensor-fusion.ai/arch": "Ampere"},
            "gpuNodeAnnotations": {"tensor-fusion.ai/provisioned": "true"},
            "gpuTaints": [{"key": "group", "value": "gpu", "effect": "NoSchedule"}],
        },
    }
    await create(api, cluster.pool(manager=manager, capacityConfig={"minResources": {"tflops": "200"}}))
    provider = RefusesOne(aws, "shared-0")
    for _ in range(2):  # the first pass creates the claims, the second launches them
        await reconcile_capacity(FleetApi(api, alive), datetime.now(UTC), lambda _v: provider)
    phases = {c["metadata"]["name"]: (c.get("status") or {}).get("phase") for c in await items(api, "GPUNodeClaim")}
    assert phases == {"shared-0": "Failed", "shared-1": "Provisioning"}
    # The instance's kubelet registers; the node gets the pool's labels, annotations and taints.
    [launched] = [c for c in await items(api, "GPUNodeClaim") if c["metadata"]["name"] == "shared-1"]
    instance = launched["status"]["instanceID"]
    node = cluster.node("ip-10-0-1-5", gpu="false")
    node["metadata"].pop("creationTimestamp")
    node["spec"] = {"providerID": f"aws:///us-east-1b/{instance}"}
    await create(api, node)
    await reconcile_capacity(FleetApi(api, alive), datetime.now(UTC), lambda _v: provider)
    joined = await request_json(api, "GET", "/api/v1/nodes/ip-10-0-1-5")
    assert joined["metadata"]["labels"]["tensor-fusion.ai/gpupool"] == "shared"
    assert joined["metadata"]["labels"]["tensor-fusion.ai/arch"] == "Ampere"
    assert joined["metadata"]["annotations"]["tensor-fusion.ai/provisioned"] == "true"
    assert joined["spec"]["taints"] == [{"key": "group", "value": "gpu", "effect": "NoSchedule"}]
    [running] = [c for c in await items(api, "GPUNodeClaim") if c["metadata"]["name"] == "shared-1"]
    assert running["status"]["phase"] == "Running"
    assert running["status"]["nodeName"] == "ip-10-0-1-5"


async def test_max_duration_pauses_with_a_condition_the_pool_reconciler_keeps(kube: KubeEmulator) -> None:
    api = kube.api_client()
    uid = await rollout_fleet(api, 4)
    policy = {"batchPercentage": 25, "maxDuration": "2m", "maintenanceWindow": None}
    await request_json(
        api,
        "PATCH",
        f"{PATHS['GPUPool']}/shared",
        body={"spec": {"nodeManagerConfig": {"nodePoolRollingUpdatePolicy": policy}}},
        content_type="application/merge-patch+json",
    )
    fleet = FleetApi(api, alive)
    start = datetime.now(UTC)
    assert (await reconcile_rollouts(fleet, start))[0].decision.action == "replace"
    await daemonset_controller(api, uid)
    paused = (await reconcile_rollouts(fleet, start + timedelta(minutes=3)))[0]
    assert paused.decision.action == "paused"
    [pool] = await items(api, "GPUPool")
    [condition] = [c for c in pool["status"]["conditions"] if c["type"] == "HypervisorRolloutPaused"]
    assert condition["status"] == "True"
    assert "maxDuration" in condition["message"]
    # The pool reconciler's own status write keeps it.
    status = pool_status(pool, [], now="2026-03-02T00:00:00Z")
    assert "HypervisorRolloutPaused" in [c["type"] for c in status["conditions"]]
