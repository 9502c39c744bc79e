"""Canary convergence decisions: which pod (if any) the controller replaces, and when."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tfcore.operator.canary import Replace, Wait, enabled_replicas, rebalance

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
RS_UID = "rs-uid"


def owner(replicas: int = 5, enabled: str | None = "2") -> dict[str, Any]:
    annotations = {"tensor-fusion.ai/enabled-replicas": enabled} if enabled is not None else {}
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "web-1", "uid": RS_UID},
        "spec": {"replicas": replicas, "template": {"metadata": {"annotations": annotations}}},
    }


def pod(name: str, mode: str, age: float = 600, **meta: Any) -> dict[str, Any]:
    created = (NOW - timedelta(seconds=age)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "creationTimestamp": created,
            "annotations": {"tensor-fusion.ai/admission": mode},
            "ownerReferences": [{"kind": "ReplicaSet", "name": "web-1", "uid": RS_UID, "controller": True}],
            **meta,
        },
        "status": {"phase": "Running"},
    }


def test_balanced_owners_are_left_alone() -> None:
    pods = [pod("a", "tensor-fusion"), pod("b", "tensor-fusion"), *(pod(f"n{i}", "native") for i in range(3))]
    assert rebalance(owner(), pods, NOW) is None


def test_one_tf_pod_too_many_replaces_the_youngest_tf_pod() -> None:
    pods = [pod("a", "tensor-fusion", 900), pod("b", "tensor-fusion", 100), pod("c", "tensor-fusion", 500)]
    pods += [pod("n1", "native", 60), pod("n2", "native")]
    decision = rebalance(owner(), pods, NOW)
    assert decision == Replace(
        "b",
        "uid-b",
        "3 of 5 pods run on TensorFusion, enabled-replicas is 2: replacing b (its replacement runs as native)",
    )


def test_too_few_tf_pods_replace_the_youngest_native_pod() -> None:
    pods = [pod("a", "tensor-fusion"), pod("n1", "native", 300), pod("n2", "native", 100), pod("n3", "native", 900)]
    pods.append(pod("n4", "native", 200))
    decision = rebalance(owner(), pods, NOW)
    assert isinstance(decision, Replace)
    assert decision.pod == "n2"
    assert "its replacement runs as a TensorFusion pod" in decision.message


def test_nothing_moves_while_the_replicaset_is_busy_or_young() -> None:
    three_tf = [pod(x, "tensor-fusion") for x in "abc"] + [pod("n1", "native"), pod("n2", "native")]
    assert rebalance(owner(replicas=6), three_tf, NOW) == Wait(45.0)  # a pod still to be created
    terminating = [*three_tf, pod("gone", "native", deletionTimestamp="2026-11-23T11:59:00Z")]
    assert rebalance(owner(), terminating, NOW) == Wait(45.0)
    young = [*three_tf[:-1], pod("n2", "native", age=15)]
    assert rebalance(owner(), young, NOW) == Wait(30.0)


def test_scaled_below_n_every_pod_may_be_tf_and_rollback_to_zero_replaces_them() -> None:
    assert (
        rebalance(owner(replicas=2, enabled="3"), [pod("a", "tensor-fusion"), pod("b", "tensor-fusion")], NOW) is None
    )
    decision = rebalance(owner(replicas=2, enabled="0"), [pod("a", "tensor-fusion", 100), pod("b", "native")], NOW)
    assert isinstance(decision, Replace)
    assert decision.pod == "a"


def test_other_owners_pods_and_finished_pods_do_not_count() -> None:
    stranger = pod("x", "tensor-fusion")
    stranger["metadata"]["ownerReferences"][0]["uid"] = "other"
    done = pod("d", "tensor-fusion")
    done["status"]["phase"] = "Succeeded"
    pods = [pod("a", "tensor-fusion"), pod("b", "tensor-fusion"), *(pod(f"n{i}", "native") for i in range(3))]
    assert rebalance(owner(), [*pods, stranger], NOW) is None
    assert rebalance(owner(), [*pods, done], NOW) is None  # evicted pods linger; they are not replicas


def test_only_replicasets_with_a_valid_enabled_replicas() -> None:
    pods = [pod("a", "tensor-fusion")]
    assert rebalance(owner(enabled=None), pods, NOW) is None
    assert rebalance(owner(enabled="lots"), pods, NOW) is None
    statefulset = {**owner(), "kind": "StatefulSet"}  # decided by ordinal: always exact
    assert rebalance(statefulset, pods, NOW) is None
    assert enabled_replicas(owner(enabled="3")) == 3
