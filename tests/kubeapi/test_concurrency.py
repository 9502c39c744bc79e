"""Optimistic concurrency: a stale metadata.resourceVersion is 409 Conflict (leader election relies on it)."""

# The generated client's annotations ask for model objects, but it serializes plain dicts as
# they are; these tests send wire-shaped dicts on purpose, and pass `_content_type`, which the
# annotations do not list.
# mypy: disable-error-code="arg-type,call-arg"

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
from kubernetes_asyncio import client

from tests.kubeapi import KubeEmulator


def _lease(holder: str, resource_version: str | None = None) -> client.V1Lease:
    meta = client.V1ObjectMeta(name="tensor-fusion-leader", resource_version=resource_version)
    return client.V1Lease(metadata=meta, spec=client.V1LeaseSpec(holder_identity=holder, lease_duration_seconds=15))


async def test_stale_lease_update_conflicts_and_only_one_candidate_wins(kube: KubeEmulator) -> None:
    leases = client.CoordinationV1Api(kube.api_client())
    created = await leases.create_namespaced_lease("kube-system", _lease("alpha"))
    seen = created.metadata.resource_version
    # Two candidates read the same version and both try to take the lease.
    won = await leases.replace_namespaced_lease("tensor-fusion-leader", "kube-system", _lease("beta", seen))
    assert won.spec.holder_identity == "beta"
    assert won.metadata.resource_version != seen
    with pytest.raises(client.ApiException) as lost:
        await leases.replace_namespaced_lease("tensor-fusion-leader", "kube-system", _lease("gamma", seen))
    status = json.loads(lost.value.body)
    assert lost.value.status == 409
    assert status["reason"] == "Conflict"
    assert status["kind"] == "Status"
    assert status["details"] == {"name": "tensor-fusion-leader", "kind": "leases", "group": "coordination.k8s.io"}
    assert "the object has been modified" in status["message"]
    current = await leases.read_namespaced_lease("tensor-fusion-leader", "kube-system")
    assert current.spec.holder_identity == "beta"


async def test_a_second_create_of_the_lease_is_already_exists(kube: KubeEmulator) -> None:
    leases = client.CoordinationV1Api(kube.api_client())
    await leases.create_namespaced_lease("kube-system", _lease("alpha"))
    with pytest.raises(client.ApiException) as taken:
        await leases.create_namespaced_lease("kube-system", _lease("beta"))
    assert taken.value.status == 409
    assert json.loads(taken.value.body)["reason"] == "AlreadyExists"


async def test_patch_carrying_a_stale_resource_version_conflicts(kube: KubeEmulator) -> None:
    core = client.CoreV1Api(kube.api_client())
    made = await core.create_namespaced_config_map("default", {"metadata": {"name": "a"}, "data": {"k": "1"}})
    await core.patch_namespaced_config_map("a", "default", {"data": {"k": "2"}})
    stale = {"metadata": {"resourceVersion": made.metadata.resource_version}, "data": {"k": "3"}}
    with pytest.raises(client.ApiException) as conflict:
        await core.patch_namespaced_config_map("a", "default", stale)
    assert conflict.value.status == 409
    current = await core.read_namespaced_config_map("a", "default")
    fresh = {"metadata": {"resourceVersion": current.metadata.resource_version}, "data": {"k": "3"}}
    assert (await core.patch_namespaced_config_map("a", "default", fresh)).data == {"k": "3"}


async def test_unconditional_updates_are_allowed_for_built_ins_but_not_custom_resources(kube: KubeEmulator) -> None:
    api = kube.api_client()
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    await core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    replaced = await core.replace_namespaced_config_map("a", "default", {"metadata": {"name": "a"}, "data": {"k": "v"}})
    assert replaced.data == {"k": "v"}  # no resourceVersion: last write wins
    gpu = {"apiVersion": "tensor-fusion.ai/v1", "kind": "GPU", "metadata": {"name": "gpu-0"}}
    await custom.create_cluster_custom_object("tensor-fusion.ai", "v1", "gpus", gpu)
    with pytest.raises(client.ApiException) as refused:
        await custom.replace_cluster_custom_object("tensor-fusion.ai", "v1", "gpus", "gpu-0", gpu)
    assert refused.value.status == 422
    assert json.loads(refused.value.body)["details"]["causes"][0]["field"] == "metadata.resourceVersion"


async def test_delete_preconditions(kube: KubeEmulator) -> None:
    core = client.CoreV1Api(kube.api_client())
    made = await core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    await core.patch_namespaced_config_map("a", "default", {"data": {"k": "2"}})
    stale = client.V1DeleteOptions(
        preconditions=client.V1Preconditions(resource_version=made.metadata.resource_version)
    )
    with pytest.raises(client.ApiException) as conflict:
        await core.delete_namespaced_config_map("a", "default", body=stale)
    assert conflict.value.status == 409
    right = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=made.metadata.uid))
    await core.delete_namespaced_config_map("a", "default", body=right)


async def test_kubernetes_asyncio_leader_election_takes_the_lease(kube: KubeEmulator) -> None:
    """The client's own LeaseLock path (get -> create -> replace with the read resourceVersion)."""
    from kubernetes_asyncio.leaderelection import electionconfig, leaderelection
    from kubernetes_asyncio.leaderelection.resourcelock.leaselock import LeaseLock

    leading = asyncio.Event()

    async def started() -> None:
        leading.set()

    async def stopped() -> None:
        return None

    lock = LeaseLock("tensor-fusion-leader", "kube-system", "alpha", kube.api_client())
    config = electionconfig.Config(lock, 3, 2, 1, started, stopped)
    candidate = asyncio.create_task(leaderelection.LeaderElection(config).run())
    try:
        async with asyncio.timeout(5):
            await leading.wait()
    finally:
        candidate.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await candidate
    lease = await client.CoordinationV1Api(kube.api_client()).read_namespaced_lease(
        "tensor-fusion-leader", "kube-system"
    )
    assert lease.spec.holder_identity == "alpha"
