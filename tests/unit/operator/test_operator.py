"""Pure reconciliation logic: node selectors, capacity, pool plans, conditions, workloads."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tfcore.model.codec import decode
from tfcore.model.errors import ValidationError
from tfcore.model.node import GPU
from tfcore.model.pool import NodeSelector
from tfcore.operator import cluster as clusters
from tfcore.operator import fleet, workload
from tfcore.operator.capacity import node_totals
from tfcore.operator.conditions import condition
from tfcore.operator.selectors import node_matches
from tfcore.sched.state import PoolInfo

GI = 1 << 30
CLUSTER: dict[str, Any] = {
    "apiVersion": "tensor-fusion.ai/v1",
    "kind": "TensorFusionCluster",
    "metadata": {"name": "c", "uid": "uid-c", "generation": 2},
    "spec": {
        "gpuPools": [
            {"name": "shared", "specTemplate": {"capacityConfig": {"oversubscription": {"tflopsOversellRatio": 300}}}}
        ]
    },
}


def selector(*expressions: dict[str, Any], fields: list[dict[str, Any]] | None = None) -> NodeSelector:
    term: dict[str, Any] = {"matchExpressions": list(expressions)}
    if fields:
        term["matchFields"] = fields
    return decode({"nodeSelectorTerms": [term]}, NodeSelector)


@pytest.mark.parametrize(
    ("expression", "labels", "expected"),
    [
        ({"key": "gpu", "operator": "In", "values": ["a", "b"]}, {"gpu": "b"}, True),
        ({"key": "gpu", "operator": "In", "values": ["a"]}, {}, False),
        ({"key": "gpu", "operator": "NotIn", "values": ["a"]}, {}, True),
        ({"key": "gpu", "operator": "NotIn", "values": ["a"]}, {"gpu": "a"}, False),
        ({"key": "gpu", "operator": "Exists"}, {"gpu": ""}, True),
        ({"key": "gpu", "operator": "DoesNotExist"}, {"gpu": ""}, False),
        ({"key": "count", "operator": "Gt", "values": ["4"]}, {"count": "8"}, True),
        ({"key": "count", "operator": "Lt", "values": ["4"]}, {"count": "8"}, False),
        ({"key": "count", "operator": "Gt", "values": ["4"]}, {"count": "eight"}, False),
    ],
)
def test_node_selector_operators(expression: dict[str, Any], labels: dict[str, str], expected: bool) -> None:
    assert node_matches(selector(expression), labels, {"metadata.name": "n"}) is expected


def test_terms_are_ored_and_empty_terms_match_nothing() -> None:
    either = decode(
        {
            "nodeSelectorTerms": [
                {"matchExpressions": [{"key": "a", "operator": "Exists"}]},
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]},
            ]
        },
        NodeSelector,
    )
    assert node_matches(either, {}, {"metadata.name": "n1"})
    assert node_matches(either, {"a": "x"}, {"metadata.name": "n2"})
    assert not node_matches(either, {}, {"metadata.name": "n2"})
    assert not node_matches(decode({"nodeSelectorTerms": [{}]}, NodeSelector), {"a": "x"}, {})


@given(st.dictionaries(st.sampled_from(["a", "b", "c"]), st.sampled_from(["1", "2", "x"])), st.sampled_from(["a", "b"]))
def test_in_and_notin_are_complements(labels: dict[str, str], key: str) -> None:
    values = ["1", "x"]
    inside = node_matches(selector({"key": key, "operator": "In", "values": values}), labels, {})
    outside = node_matches(selector({"key": key, "operator": "NotIn", "values": values}), labels, {})
    assert inside != outside


def gpu(tflops: str, vram: str, *, available: tuple[str, str] | None = None, used_by: str = "tensor-fusion") -> GPU:
    status: dict[str, Any] = {"capacity": {"tflops": tflops, "vram": vram}, "usedBy": used_by, "phase": "Running"}
    if available:
        status["available"] = {"tflops": available[0], "vram": available[1]}
    return decode(
        {"apiVersion": "tensor-fusion.ai/v1", "kind": "GPU", "metadata": {"name": "g"}, "status": status}, GPU
    )


def test_virtual_capacity_follows_the_oversubscription_rules() -> None:
    pool = PoolInfo("p", tflops_oversell_ratio=300, vram_expand_to_host_mem=40, vram_expand_to_host_disk=20)
    totals = node_totals(
        pool, [gpu("100", "16Gi", available=("40", "10Gi")), gpu("100", "16Gi")], ram_bytes=100 * GI, disk_bytes=50 * GI
    )
    assert (totals.tflops, totals.virtual_tflops) == (200_000, 600_000)
    assert totals.available_tflops == 140_000
    assert totals.virtual_available_tflops == 600_000 - 60_000  # what is used counts against virtual too
    assert totals.vram == 32 * GI
    assert totals.virtual_vram == 32 * GI + 40 * GI + 10 * GI
    assert totals.virtual_available_vram == totals.virtual_vram - 6 * GI


def test_device_plugin_gpus_are_not_sold() -> None:
    totals = node_totals(
        PoolInfo("p"), [gpu("100", "16Gi", used_by="nvidia-device-plugin")], ram_bytes=GI, disk_bytes=GI
    )
    assert (totals.tflops, totals.vram, totals.virtual_vram) == (0, 0, 0)


def test_pool_plan_creates_updates_and_deletes_only_owned_pools() -> None:
    plan = clusters.plan_pools(CLUSTER, [])
    assert [p["metadata"]["name"] for p in plan.create] == ["c-shared"]
    created = plan.create[0] | {"metadata": plan.create[0]["metadata"] | {"uid": "uid-p"}}
    assert clusters.plan_pools(CLUSTER, [created]).update == []  # idempotent
    changed = dict(
        created, spec={"capacityConfig": {"oversubscription": {"tflopsOversellRatio": 500}}, "qosConfig": {}}
    )
    (update,) = clusters.plan_pools(CLUSTER, [changed]).update
    assert update == (
        "c-shared",
        {"spec": {"capacityConfig": {"oversubscription": {"tflopsOversellRatio": 300}}, "qosConfig": None}},
    )
    foreign = dict(created, metadata={"name": "c-shared", "ownerReferences": []})
    assert clusters.plan_pools(CLUSTER, [foreign]).update == []
    stale = dict(created, metadata=created["metadata"] | {"name": "c-old"})
    assert clusters.plan_pools(CLUSTER, [created, stale]).delete == ["c-old"]


def test_duplicate_pool_names_are_rejected_with_the_field() -> None:
    bad = dict(CLUSTER, spec={"gpuPools": [{"name": "a"}, {"name": "a"}]})
    with pytest.raises(ValidationError) as error:
        clusters.check_cluster(bad)
    assert error.value.problems[0].field == "spec.gpuPools[1].name"


def test_conditions_keep_their_transition_time_while_unchanged() -> None:
    first = condition("Ready", "True", "R", "m", now="t1", generation=1, previous=None)
    same = condition("Ready", "True", "R", "m2", now="t2", generation=2, previous=[first])
    flipped = condition("Ready", "False", "R", "m", now="t3", generation=2, previous=[same])
    assert (first["lastTransitionTime"], same["lastTransitionTime"], flipped["lastTransitionTime"]) == (
        "t1",
        "t1",
        "t3",
    )


def test_status_change_detection_ignores_condition_times() -> None:
    status = {
        "phase": "Running",
        "conditions": [condition("Ready", "True", "R", "m", now="t1", generation=1, previous=None)],
    }
    again = {
        "phase": "Running",
        "conditions": [condition("Ready", "True", "R", "m", now="t9", generation=1, previous=None)],
    }
    assert not fleet.changed(status, again)
    assert fleet.changed(status, again | {"phase": "Pending"})


def test_pool_membership_is_first_matching_pool_by_name() -> None:
    from tfcore.model.pool import GPUPool

    def pool(name: str, value: str) -> GPUPool:
        spec = {
            "nodeManagerConfig": {
                "nodeSelector": {
                    "nodeSelectorTerms": [{"matchExpressions": [{"key": "gpu", "operator": "In", "values": [value]}]}]
                }
            }
        }
        return decode(
            {"apiVersion": "tensor-fusion.ai/v1", "kind": "GPUPool", "metadata": {"name": name}, "spec": spec}, GPUPool
        )

    pools = [pool("zeta", "l4"), pool("alpha", "l4"), pool("beta", "h100")]
    assert fleet.pool_for_node(pools, {"metadata": {"name": "n", "labels": {"gpu": "l4"}}}) == "alpha"
    assert fleet.pool_for_node(pools, {"metadata": {"name": "n", "labels": {"gpu": "a100"}}}) is None


def test_gpu_patch_labels_and_owns_and_clears_the_pool() -> None:
    node = {
        "apiVersion": "tensor-fusion.ai/v1",
        "kind": "GPUNode",
        "metadata": {"name": "n", "uid": "u", "labels": {"tensor-fusion.ai/gpupool": "p"}},
    }
    patch = fleet.gpu_patch({"metadata": {"name": "g"}}, node)
    assert patch is not None
    assert patch["metadata"]["labels"] == {"tensor-fusion.ai/gpupool": "p"}
    assert patch["metadata"]["ownerReferences"][0]["uid"] == "u"
    done = {
        "metadata": {
            "name": "g",
            "labels": {"tensor-fusion.ai/gpupool": "p"},
            "ownerReferences": patch["metadata"]["ownerReferences"],
        }
    }
    assert fleet.gpu_patch(done, node) is None
    assert fleet.gpu_patch(done, None) == {"metadata": {"labels": {"tensor-fusion.ai/gpupool": None}}}


def test_workload_replicas_are_capped_by_the_canary() -> None:
    pod = {
        "metadata": {
            "name": "p",
            "labels": {"tensor-fusion.ai/enabled": "true", "tensor-fusion.ai/workload": "w"},
            "annotations": {
                "tensor-fusion.ai/tflops-limit": "10",
                "tensor-fusion.ai/vram-limit": "1Gi",
                "tensor-fusion.ai/enabled-replicas": "2",
            },
        },
        "spec": {"containers": [{"name": "main"}]},
    }
    assert workload.workload_key(pod) == ("default", "w")
    spec = workload.desired_spec([pod], owner_replicas=5)
    assert spec["replicas"] == 2
    assert spec["resources"]["requests"] == {"tflops": "10", "vram": "1Gi"}  # a missing request is its limit
    assert workload.desired_spec([pod], owner_replicas=None).get("replicas") is None
