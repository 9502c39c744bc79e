from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tfcore.fleet.rollout import (
    NODE_TIMEOUT,
    PAUSE_FAILURES,
    PAUSE_MAX_DURATION,
    Member,
    Policy,
    RolloutState,
    batch_size,
    failure_budget,
    plan,
)
from tfcore.model.errors import ValidationError
from tfcore.model.pool import MaintenanceWindow, NodeRollingUpdatePolicy

T0 = datetime(2026, 3, 2, 1, 1, tzinfo=UTC)


def policy(**fields: object) -> Policy:
    fields.setdefault("auto_update", True)
    return Policy.from_model(NodeRollingUpdatePolicy(**fields))  # type: ignore[arg-type]


def pool(n: int, revision: str = "old", ready: bool = True) -> list[Member]:
    return [Member(f"node-{i:02}", revision, ready) for i in range(n)]


@given(st.integers(0, 100), st.integers(1, 500))
def test_batch_size_never_above_the_percentage_and_never_zero(percentage: int, nodes: int) -> None:
    size = batch_size(percentage, nodes)
    assert size >= 1
    assert size == 1 or size <= percentage * nodes / 100
    assert batch_size(percentage, nodes) >= percentage * nodes // 100


def test_batch_size_rounds_down_where_the_reference_rounded_up() -> None:
    assert batch_size(30, 95) == 28  # the reference operator took 29 of 95 for 30%
    assert batch_size(0, 10) == 1  # 0% does not divide by zero; it moves one node at a time


def test_disabled_never_replaces() -> None:
    decision = plan(pool(5), "new", policy(auto_update=False), None, T0)
    assert decision.action == "disabled"
    assert not decision.nodes


def test_component_flag_wins_over_auto_update() -> None:
    assert not Policy.from_model(NodeRollingUpdatePolicy(auto_update=True, auto_update_hypervisor=False)).enabled
    assert Policy.from_model(NodeRollingUpdatePolicy(auto_update_hypervisor=True)).enabled
    assert not Policy.from_model(None).enabled


def test_first_batch_then_waits_for_readiness_then_interval() -> None:
    p = policy(batch_percentage=20, batch_interval="5m")
    members = pool(10)
    first = plan(members, "new", p, None, T0)
    assert first.action == "replace"
    assert first.nodes == ("node-00", "node-01")
    # The replaced pods come back on the new revision but are not Ready yet: wait.
    members = [Member(m.node, "new", False) if m.node in first.nodes else m for m in members]
    waiting = plan(members, "new", p, first.state, T0 + timedelta(minutes=6))
    assert waiting.action == "wait"
    assert "Ready" in waiting.reason
    members = [Member(m.node, "new", True) if m.node in first.nodes else m for m in members]
    early = plan(members, "new", p, waiting.state, T0 + timedelta(minutes=2))
    assert early.action == "wait"
    assert "batchInterval" in early.reason
    second = plan(members, "new", p, early.state, T0 + timedelta(minutes=5))
    assert second.action == "replace"
    assert second.nodes == ("node-02", "node-03")


def test_outside_the_window_nothing_starts_and_the_zone_is_honoured() -> None:
    window = MaintenanceWindow(includes=["0 2 * * *"], timezone="Europe/Berlin")
    p = policy(maintenance_window=window, max_duration="30m")
    at_two_utc = datetime(2026, 1, 10, 2, 5, tzinfo=UTC)  # 03:05 in Berlin: closed
    assert plan(pool(3), "new", p, None, at_two_utc).action == "wait"
    at_one_utc = datetime(2026, 1, 10, 1, 5, tzinfo=UTC)  # 02:05 in Berlin: open
    assert plan(pool(3), "new", p, None, at_one_utc).action == "replace"
    summer = datetime(2026, 7, 10, 0, 10, tzinfo=UTC)  # 02:10 CEST
    assert plan(pool(3), "new", p, None, summer).action == "replace"


def test_max_duration_pauses_until_the_next_window() -> None:
    window = MaintenanceWindow(includes=["1 1 * * *"])
    p = policy(maintenance_window=window, max_duration="10m", batch_percentage=10, batch_interval="1s")
    members = pool(10)
    state = None
    now = T0
    replaced: list[str] = []
    for _ in range(20):
        decision = plan(members, "new", p, state, now)
        state = decision.state
        if decision.action == "replace":
            replaced.extend(decision.nodes)
            members = [Member(m.node, "new", True) if m.node in decision.nodes else m for m in members]
        now += timedelta(minutes=3)
    assert state is not None
    assert state.paused == PAUSE_MAX_DURATION
    assert len(replaced) == 4  # at 0, 3, 6 and 9 minutes; the run is paused at 12
    assert plan(members, "new", p, state, T0 + timedelta(hours=12)).action == "paused"
    next_day = plan(members, "new", p, state, T0 + timedelta(days=1))
    assert next_day.action == "replace"


def test_max_duration_without_a_window_pauses_until_the_revision_changes() -> None:
    p = policy(max_duration="10m", batch_percentage=10)
    members = pool(10)
    first = plan(members, "new", p, None, T0)
    members = [Member(m.node, "new", True) if m.node in first.nodes else m for m in members]
    late = plan(members, "new", p, first.state, T0 + timedelta(minutes=11))
    assert late.action == "paused"
    assert plan(members, "newer", p, late.state, T0 + timedelta(minutes=12)).action == "replace"


def test_failures_beyond_the_budget_pause_and_clear_when_fixed() -> None:
    p = policy(batch_percentage=20, max_duration="1h")
    members = pool(10)
    first = plan(members, "new", p, None, T0)
    members = [Member(m.node, "new", False) if m.node in first.nodes else m for m in members]
    assert failure_budget(10) == 1
    later = plan(members, "new", p, first.state, T0 + NODE_TIMEOUT)
    assert later.action == "paused"
    assert later.state is not None
    assert later.state.paused == PAUSE_FAILURES
    fixed = [Member(m.node, "new", True) if m.node in first.nodes else m for m in members]
    assert plan(fixed, "new", p, later.state, T0 + NODE_TIMEOUT).action == "replace"


def test_down_nodes_use_up_the_batch_but_broken_outdated_ones_go_first() -> None:
    p = policy(batch_percentage=20)
    members = [*pool(8), Member("node-98", "old", False), Member("node-99", "new", False)]
    decision = plan(members, "new", p, None, T0)
    assert decision.nodes == ("node-98",)  # node-99 is down and counts against the batch of 2


def test_done_clears_the_state() -> None:
    decision = plan(pool(3, "new"), "new", policy(), RolloutState("new"), T0)
    assert decision.action == "done"
    assert decision.state is None


def test_state_round_trips_and_restart_does_not_start_a_second_batch() -> None:
    p = policy(batch_percentage=50)
    members = pool(4)
    first = plan(members, "new", p, None, T0)
    assert first.state is not None
    restored = RolloutState.from_json(first.state.to_json())
    assert restored == first.state
    # Killed after writing the state but before the pods were deleted: no new batch starts.
    again = plan(members, "new", p, restored, T0 + timedelta(seconds=30))
    assert again.action == "wait"
    assert not again.nodes


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("nope", "rollout state"),
        ("[]", "rollout state"),
        ("{}", "rollout state.revision"),
        ('{"revision": "a", "inFlight": {"n": "yesterday"}}', "rollout state.inFlight.n"),
        ('{"revision": "a", "started": "2026-01-01T00:00:00"}', "rollout state.started"),
        ('{"revision": "a", "failed": [1]}', "rollout state.failed"),
    ],
)
def test_bad_state_names_the_field(text: str, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        RolloutState.from_json(text)
    assert caught.value.problems[0].field == field


@given(st.text(max_size=80))
def test_state_parser_only_raises_validation_errors(text: str) -> None:
    with contextlib.suppress(ValidationError):
        RolloutState.from_json(text)


def test_bad_timezone_is_rejected_by_the_model() -> None:
    with pytest.raises(ValueError, match="timezone"):
        MaintenanceWindow(includes=["1 1 * * *"], timezone="Mars/Olympus")


@settings(max_examples=60, deadline=None)
@given(
    nodes=st.integers(1, 40),
    percentage=st.integers(0, 100),
    ready_after=st.lists(st.booleans(), min_size=1, max_size=30),
)
def test_simulated_rollout_respects_the_batch_and_finishes(
    nodes: int, percentage: int, ready_after: list[bool]
) -> None:
    """Pods come back Ready after a step or not (cycling through `ready_after`); the number of
    nodes down or updating never exceeds the batch size, and the rollout finishes."""
    p = policy(batch_percentage=percentage, batch_interval="1m", max_duration="1000h")
    size = batch_size(percentage, nodes)
    members = {m.node: m for m in pool(nodes)}
    state = None
    now = T0
    for step in range(nodes * 6 + 10):
        decision = plan(list(members.values()), "new", p, state, now)
        state = decision.state
        if decision.action == "done":
            break
        assert decision.action in ("replace", "wait")
        for node in decision.nodes:
            members[node] = Member(node, "new", False)
        down = sum(not m.ready for m in members.values())
        assert down <= size
        for node, member in members.items():
            if not member.ready and (ready_after[step % len(ready_after)] or step % 3 == 0):
                members[node] = Member(node, "new", True)
        now += timedelta(minutes=1)
    assert decision.action == "done"
