"""The canary ledger and owner helpers (pure); the ReplicaSet simulation is in tests/daemons/webhook."""

from __future__ import annotations

from tests.unit.admission.pods import owner_ref, tf_pod
from tfcore.admission.canary import (
    CanaryLedger,
    Owner,
    Sibling,
    controller_owner,
    statefulset_ordinal,
    tf_deletion_cost,
    workload_name,
)
from tfcore.model.pods import Mode

TF, NATIVE = Mode.TENSOR_FUSION, Mode.NATIVE


def pods(*modes: Mode, terminating: int = 0) -> list[Sibling]:
    return [Sibling(f"p{i}", m, f"t{i}", i < terminating) for i, m in enumerate(modes)]


def test_concurrent_decisions_before_any_pod_is_visible_admit_exactly_n() -> None:
    ledger = CanaryLedger(ttl_seconds=30)
    modes = [ledger.decide("rs", 3, [], f"req-{i}", now=0.0) for i in range(10)]
    assert modes.count(TF) == 3
    assert ledger.pending("rs") == 3


def test_visible_pods_release_their_reservation_and_are_not_counted_twice() -> None:
    ledger = CanaryLedger()
    assert ledger.decide("rs", 2, [], "a", 0.0) is TF
    visible = [Sibling("pa", TF, "a", False)]
    assert ledger.decide("rs", 2, visible, "b", 1.0) is TF
    assert ledger.pending("rs") == 1  # a released, b reserved
    assert ledger.decide("rs", 2, visible, "c", 2.0) is NATIVE


def test_expired_reservations_stop_counting() -> None:
    ledger = CanaryLedger(ttl_seconds=5)
    assert ledger.decide("rs", 1, [], "a", 0.0) is TF  # its pod was rejected later and never appears
    assert ledger.decide("rs", 1, [], "b", 4.0) is NATIVE
    assert ledger.decide("rs", 1, [], "c", 6.0) is TF


def test_terminating_tf_pods_do_not_count() -> None:
    ledger = CanaryLedger()
    assert ledger.decide("rs", 2, pods(TF, TF, NATIVE, terminating=1), "x", 0.0) is TF


def test_owners_are_independent_and_memory_is_bounded() -> None:
    ledger = CanaryLedger(ttl_seconds=1)
    assert ledger.decide("a", 1, [], "1", 0.0) is TF
    assert ledger.decide("b", 1, [], "2", 0.0) is TF
    ledger.forget_expired(5.0)
    assert ledger.pending("a") == ledger.pending("b") == 0
    assert ledger.decide("c", 0, [], "3", 0.0) is NATIVE
    assert ledger.pending("c") == 0


def test_deletion_cost_adds_to_the_users_and_clamps() -> None:
    assert tf_deletion_cost(None) == "1000"
    assert tf_deletion_cost("-50") == "950"
    assert tf_deletion_cost("2147483000") == "2147483647"
    assert tf_deletion_cost("abc") == "1000"


def test_owner_and_workload_names() -> None:
    pod = tf_pod(owner=owner_ref("ReplicaSet", "api-5f6d8", "u"), labels={"pod-template-hash": "5f6d8"})
    owner = controller_owner(pod)
    assert owner == Owner("ReplicaSet", "api-5f6d8", "u", "apps/v1")
    assert workload_name(pod, owner) == "api"
    bare_rs = tf_pod(owner=owner_ref("ReplicaSet", "batch", "u"))
    assert workload_name(bare_rs, controller_owner(bare_rs)) == "batch"
    assert workload_name(tf_pod(), None) == "web"
    assert workload_name(tf_pod(name="solo"), None) == "solo"


def test_statefulset_ordinals_from_name_or_index_label() -> None:
    owner = Owner("StatefulSet", "db", "u")
    assert statefulset_ordinal(tf_pod(name="db-12"), owner) == 12
    assert statefulset_ordinal(tf_pod(name="other-1"), owner) is None
    assert statefulset_ordinal(tf_pod(name="x", labels={"apps.kubernetes.io/pod-index": "4"}), owner) == 4


def test_dry_runs_decide_without_reserving() -> None:
    ledger = CanaryLedger()
    assert ledger.decide("rs", 1, [], "dry", 0.0, reserve=False) is TF
    assert ledger.pending("rs") == 0
    assert ledger.decide("rs", 1, [], "real", 0.0) is TF


def test_a_watched_pod_ends_its_reservation_even_if_deleted_before_any_listing() -> None:
    ledger = CanaryLedger()
    assert ledger.decide("rs-1", 1, [], "t1", 0.0) is TF
    pod = tf_pod(owner=owner_ref("ReplicaSet", "web-1", "rs-1"))
    pod["metadata"]["annotations"]["tensor-fusion.ai/canary-ticket"] = "t1"
    ledger.observe(pod)
    assert ledger.total_pending() == 0
    # The pod was deleted at once: its replacement is TF again.
    assert ledger.decide("rs-1", 1, [], "t2", 1.0) is TF
    ledger.observe(tf_pod())  # pods without owner or ticket are ignored
    assert ledger.pending("rs-1") == 1
