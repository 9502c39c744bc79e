"""The firing/resolving state machine, the outbox, and the evaluator on a real DuckDB store."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from tfcore.alerts.evaluator import AlertEvaluator
from tfcore.alerts.outbox import Outbox
from tfcore.alerts.rules import compile_rules
from tfcore.alerts.state import Alert, RuleState
from tfcore.metrics.embedded import DuckDBStore
from tfcore.metrics.lineproto import Point
from tfcore.metrics.store import QueryResult, StoreUnavailable

T0 = datetime(2026, 1, 1, tzinfo=UTC)
STEP = timedelta(seconds=15)
RULE = {
    "name": "Hot",
    "query": "SELECT node, max(temperature) AS t FROM tf_gpu_usage WHERE {{ .Conditions }} "
    "GROUP BY node HAVING max(temperature) > {{ .Threshold }}",
    "threshold": 90,
    "evaluationInterval": "15s",
    "consecutiveCount": 3,
    "severity": "P1",
    "summary": "{{ .node }} hot",
    "description": "{{ .node }} at {{ .t }} (limit {{ .Threshold }})",
    "alertTargetInstance": "{{ .node }}",
}


def state(**changes: object) -> RuleState:
    (compiled,) = compile_rules([{**RULE, **changes}])
    return RuleState(compiled, resend_interval=timedelta(minutes=1))


def test_fires_after_consecutive_hits_then_resolves() -> None:
    s = state()
    row = [{"node": "n1", "t": 95.0}]
    assert s.observe(row, T0) == []
    assert s.observe(row, T0 + STEP) == []
    (fired,) = s.observe(row, T0 + 2 * STEP)
    assert fired.firing
    assert dict(fired.labels) == {"alertname": "Hot", "severity": "P1", "instance": "n1", "job": "tensor-fusion"}
    assert dict(fired.annotations) == {"summary": "n1 hot", "description": "n1 at 95 (limit 90)"}
    assert fired.starts_at == T0 + 2 * STEP
    assert fired.ends_at == T0 + 2 * STEP + timedelta(minutes=4)
    assert s.observe(row, T0 + 3 * STEP) == []  # no duplicate until the resend interval
    (resent,) = s.observe(row, T0 + 6 * STEP)
    assert resent.starts_at == fired.starts_at
    (resolved,) = s.observe([], T0 + 7 * STEP)
    assert not resolved.firing
    assert resolved.ends_at == T0 + 7 * STEP
    assert s.observe([], T0 + 8 * STEP) == []


def test_a_miss_resets_the_count() -> None:
    s = state()
    row = [{"node": "n1", "t": 95.0}]
    s.observe(row, T0)
    s.observe(row, T0 + STEP)
    assert s.observe([], T0 + 2 * STEP) == []  # pending, never fired: nothing to resolve
    assert s.observe(row, T0 + 3 * STEP) == []
    assert s.observe(row, T0 + 4 * STEP) == []
    assert len(s.observe(row, T0 + 5 * STEP)) == 1


def test_instances_are_independent_and_changed_annotations_resend() -> None:
    s = state(consecutiveCount=1)
    both = s.observe([{"node": "a", "t": 91.0}, {"node": "b", "t": 92.0}], T0)
    assert sorted(a.labels["instance"] for a in both) == ["a", "b"]
    (changed,) = s.observe([{"node": "a", "t": 91.0}, {"node": "b", "t": 99.0}], T0 + STEP)
    assert changed.labels["instance"] == "b"
    (gone,) = s.observe([{"node": "b", "t": 99.0}], T0 + 2 * STEP)
    assert (gone.labels["instance"], gone.firing) == ("a", False)


def test_outbox_keeps_only_the_latest_state_and_resyncs_active() -> None:
    fired = state(consecutiveCount=1).observe([{"node": "a", "t": 95.0}], T0)[0]
    resolved = Alert(fired.labels, fired.annotations, fired.starts_at, T0 + STEP, False)
    box = Outbox()
    box.put([fired])
    batch = box.take(10)
    box.put([resolved])
    box.give_back(batch)  # the failed older firing must not overwrite the newer resolution
    assert box.take(10) == [resolved]
    box.put([fired])
    box.take(10)
    box.resync()
    assert box.take(10) == [fired]


def test_a_delayed_firing_alert_is_not_sent_already_expired() -> None:
    fired = state(consecutiveCount=1).observe([{"node": "a", "t": 95.0}], T0)[0]
    late = fired.as_sent_at(T0 + timedelta(hours=1))
    assert late.ends_at == T0 + timedelta(hours=1, minutes=4)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


async def test_evaluator_runs_rules_on_duckdb_and_isolates_failures() -> None:
    store = await DuckDBStore(":memory:").open()
    clock = Clock()
    published: list[Alert] = []
    leader = [True]
    evaluator = AlertEvaluator(store, published.extend, lambda: leader[0], clock=clock)
    broken = {**RULE, "name": "Broken", "query": "SELECT node FROM tf_gpu_usage WHERE {{ .Conditions }}"}
    bad_sql = {**RULE, "name": "BadSQL", "query": "SELECT nope FROM tf_gpu_usage WHERE {{ .Conditions }}"}
    problems = await evaluator.set_rules(compile_rules([{**RULE, "consecutiveCount": 2}, broken, bad_sql]))
    assert sorted(p.field for p in problems) == ["BadSQL.query", "Broken"]  # .t missing; unknown column
    assert [r.name for r in evaluator.rules] == ["Hot"]
    try:
        for step in range(3):
            clock.now = T0 + step * STEP
            t_ns = int((clock.now - timedelta(seconds=1)).timestamp()) * 10**9
            await store.write([Point("tf_gpu_usage", {"node": "n1"}, {"temperature": 95.0}, t_ns)])
            await evaluator.evaluate("Hot")
        (fired,) = published  # fired at the 2nd hit; the 3rd is within the resend interval
        assert fired.firing
        assert fired.labels["instance"] == "n1"
        clock.now += STEP  # no new sample in the window: resolves
        (resolved,) = await evaluator.evaluate("Hot")
        assert not resolved.firing
        assert evaluator.stats.rules["Hot"].evaluations == 4
    finally:
        await store.close()


class DownStore:
    dialect = DuckDBStore(":memory:").dialect

    async def query(self, sql: str) -> QueryResult:
        raise StoreUnavailable("connection refused")

    async def columns(self, sql: str) -> list[str]:
        raise StoreUnavailable("connection refused")


async def test_unreachable_store_keeps_state_and_is_counted_not_raised() -> None:
    published: list[Sequence[Alert]] = []
    evaluator = AlertEvaluator(DownStore(), published.append, lambda: True)
    problems = await evaluator.set_rules(compile_rules([RULE]))
    assert problems == []  # cannot check now: accepted, checked when it runs
    assert await evaluator.evaluate("Hot") == []
    stats = evaluator.stats.rules["Hot"]
    assert (stats.evaluations, stats.failures) == (1, 1)
    assert "connection refused" in stats.last_error
    assert published == []


async def test_reload_keeps_state_of_unchanged_rules_and_only_leader_evaluates() -> None:
    store = await DuckDBStore(":memory:").open()
    leader = [False]
    published: list[Alert] = []
    evaluator = AlertEvaluator(store, published.extend, lambda: leader[0], clock=lambda: T0)
    try:
        await evaluator.set_rules(compile_rules([RULE]))
        before = evaluator._states["Hot"]
        await evaluator.set_rules(compile_rules([RULE, {**RULE, "name": "Other"}]))
        assert evaluator._states["Hot"] is before
        await evaluator.set_rules(compile_rules([{**RULE, "threshold": 80}]))
        assert evaluator._states["Hot"] is not before
        assert [r.name for r in evaluator.rules] == ["Hot"]
    finally:
        await store.close()
