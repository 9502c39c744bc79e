"""Rolling replacement of a per-node component (the hypervisor) across a pool, batch by batch.

The DaemonSet runs with `updateStrategy: OnDelete`; this planner decides which old-revision pods
to delete next. Rules (the spec's nodePoolRollingUpdatePolicy, notes/fleet-features.md section 2):
- at most max(1, floor(batchPercentage x nodes)) nodes unavailable or updating at once;
- the next batch only when every node of the previous one runs the new revision and is Ready,
  and `batchInterval` after the previous batch started;
- batches start only inside the maintenance window; a run older than `maxDuration` pauses
  (until the next window opens, or, without a window, until the target revision changes);
- a replaced node not Ready on the new revision within NODE_TIMEOUT counts as failed; more
  failures than FAILURE_BUDGET_PERCENT of the pool pause the rollout until the revision changes.

The progress lives in a pool annotation (RolloutState), written before any pod is deleted, so a
restarted controller resumes the batch it started instead of starting another.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from tfcore.fleet.window import MaintenanceWindow, window
from tfcore.model.errors import ValidationError
from tfcore.model.meta import parse_duration
from tfcore.model.pool import (
    DEFAULT_BATCH_INTERVAL,
    DEFAULT_BATCH_PERCENTAGE,
    DEFAULT_MAX_DURATION,
    NodeRollingUpdatePolicy,
)

NODE_TIMEOUT: Final = timedelta(minutes=10)
FAILURE_BUDGET_PERCENT: Final = 10
STATE_ANNOTATION: Final = "tensor-fusion.ai/{component}-rollout"

Component = Literal["hypervisor", "worker", "client"]
Action = Literal["disabled", "done", "wait", "replace", "paused"]
PAUSE_MAX_DURATION: Final = "MaxDurationExceeded"
PAUSE_FAILURES: Final = "FailureBudgetExceeded"


@dataclass(frozen=True, slots=True)
class Member:
    """One node's copy of the component: the revision its pod runs (None: no pod) and readiness."""

    node: str
    revision: str | None
    ready: bool


@dataclass(frozen=True, slots=True)
class Policy:
    enabled: bool
    batch_percentage: int
    batch_interval: timedelta
    max_duration: timedelta
    window: MaintenanceWindow

    @classmethod
    def from_model(cls, model: NodeRollingUpdatePolicy | None, component: Component = "hypervisor") -> Policy:
        """The policy as the controller applies it. The component's own flag wins over `autoUpdate`;
        both unset means off (the CRD's default): the chart turns it on explicitly."""
        model = model or NodeRollingUpdatePolicy()
        own = {
            "hypervisor": model.auto_update_hypervisor,
            "worker": model.auto_update_worker,
            "client": model.auto_update_client,
        }[component]
        enabled = own if own is not None else bool(model.auto_update)
        max_duration = parse_duration(model.max_duration or DEFAULT_MAX_DURATION)
        includes = model.maintenance_window.includes if model.maintenance_window else None
        timezone = model.maintenance_window.timezone if model.maintenance_window else None
        return cls(
            enabled=enabled,
            batch_percentage=DEFAULT_BATCH_PERCENTAGE if model.batch_percentage is None else model.batch_percentage,
            batch_interval=parse_duration(model.batch_interval or DEFAULT_BATCH_INTERVAL),
            max_duration=max_duration,
            window=window(includes, max_duration, timezone),
        )


def batch_size(percentage: int, nodes: int) -> int:
    """max(1, floor(percentage x nodes)): never above the percentage, never zero (0% still moves)."""
    return max(1, math.floor(percentage * nodes / 100))


def failure_budget(nodes: int) -> int:
    return math.floor(FAILURE_BUDGET_PERCENT * nodes / 100)


@dataclass(frozen=True, slots=True)
class RolloutState:
    """Progress towards `revision`, kept in the pool annotation STATE_ANNOTATION."""

    revision: str
    started: datetime | None = None  # first batch of the current run (the maxDuration clock)
    last_batch: datetime | None = None
    in_flight: Mapping[str, datetime] = field(default_factory=dict)  # node -> when its pod was deleted
    failed: tuple[str, ...] = ()
    paused: str | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "revision": self.revision,
                "started": _text(self.started),
                "lastBatch": _text(self.last_batch),
                "inFlight": {node: _text(at) for node, at in sorted(self.in_flight.items())},
                "failed": list(self.failed),
                "paused": self.paused,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str, *, where: str = "rollout state") -> RolloutState:
        """Parse the annotation; ValidationError naming the field on anything malformed."""
        try:
            data = json.loads(text)
        except ValueError:
            raise ValidationError.single(where, "not JSON", 'a JSON object like {"revision": "abc"}') from None
        if not isinstance(data, dict):
            raise ValidationError.single(where, "not an object", 'a JSON object like {"revision": "abc"}')
        revision = data.get("revision")
        if not isinstance(revision, str) or not revision:
            raise ValidationError.single(f"{where}.revision", "missing", "the target revision as a string")
        in_flight = data.get("inFlight") or {}
        failed = data.get("failed") or []
        paused = data.get("paused")
        if not isinstance(in_flight, dict) or not all(isinstance(k, str) for k in in_flight):
            raise ValidationError.single(f"{where}.inFlight", "not an object", "node name -> RFC 3339 time")
        if not isinstance(failed, list) or not all(isinstance(n, str) for n in failed):
            raise ValidationError.single(f"{where}.failed", "not a list of names", "a list of node names")
        if paused is not None and not isinstance(paused, str):
            raise ValidationError.single(f"{where}.paused", "not a string", "a reason or null")
        times = {n: _time(t, f"{where}.inFlight.{n}") for n, t in in_flight.items()}
        return cls(
            revision=revision,
            started=_optional_time(data.get("started"), f"{where}.started"),
            last_batch=_optional_time(data.get("lastBatch"), f"{where}.lastBatch"),
            in_flight={n: t for n, t in times.items() if t is not None},
            failed=tuple(failed),
            paused=paused,
        )


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: str
    nodes: tuple[str, ...] = ()  # whose pods to delete now (action "replace")
    state: RolloutState | None = None  # to persist; None removes the annotation


def plan(members: Sequence[Member], target: str, policy: Policy, state: RolloutState | None, now: datetime) -> Decision:
    """What to do next for one pool and one component whose current revision is `target`."""
    if not policy.enabled:
        return Decision("disabled", "autoUpdate is off for this pool", state=state)
    by_node = {m.node: m for m in members}
    if state is None or state.revision != target:
        state = RolloutState(revision=target)
    state = _settle(state, by_node, target, now)
    outdated = [m for m in members if m.revision != target and m.node not in state.in_flight]
    if not outdated and not state.in_flight:
        return Decision("done", f"all {len(members)} node(s) run revision {target}")

    opened = policy.window.opened_at(now)
    if state.paused == PAUSE_MAX_DURATION and opened is not None and state.started and opened > state.started:
        state = replace(state, paused=None, started=None)  # a new window: a new run, a new clock
    budget = failure_budget(len(members))
    if state.paused == PAUSE_FAILURES and len(state.failed) <= budget:
        state = replace(state, paused=None)  # the failed nodes were fixed
    if state.paused == PAUSE_MAX_DURATION:
        return Decision("paused", _pause_text(state.paused, policy, now), state=state)
    if len(state.failed) > budget:
        state = replace(state, paused=PAUSE_FAILURES)
        return Decision("paused", _pause_text(PAUSE_FAILURES, policy, now, state.failed, budget), state=state)
    if state.started is not None and now - state.started >= policy.max_duration:
        state = replace(state, paused=PAUSE_MAX_DURATION)
        return Decision("paused", _pause_text(PAUSE_MAX_DURATION, policy, now), state=state)
    if state.in_flight:
        waiting = ", ".join(sorted(state.in_flight))
        return Decision("wait", f"waiting for {waiting} to be Ready on revision {target}", state=state)
    if not policy.window.is_open(now):
        opening = policy.window.next_opening(now)
        return Decision("wait", f"outside the maintenance window; next opens {_text(opening)}", state=state)
    if state.last_batch is not None and now - state.last_batch < policy.batch_interval:
        due = state.last_batch + policy.batch_interval
        return Decision("wait", f"batchInterval: next batch at {_text(due)}", state=state)

    size = batch_size(policy.batch_percentage, len(members))
    candidates = sorted((m for m in outdated if m.node not in state.failed), key=lambda m: (m.ready, m.node))
    chosen_set = {m.node for m in candidates}
    # Nodes already down that this batch does not touch use up the batch's room (maxUnavailable).
    down = sum(1 for m in members if not m.ready and m.node not in chosen_set)
    room = size - down
    if not candidates:
        return Decision("wait", f"only failed nodes left on an old revision: {', '.join(state.failed)}", state=state)
    if room <= 0:
        return Decision("wait", f"{down} node(s) unavailable, batch size {size}: waiting for them", state=state)
    chosen = tuple(m.node for m in candidates[:room])
    state = replace(
        state,
        started=state.started or now,
        last_batch=now,
        in_flight={**state.in_flight, **dict.fromkeys(chosen, now)},
    )
    left = len(outdated) - len(chosen)
    return Decision("replace", f"batch of {len(chosen)} (size {size}); {left} node(s) left after it", chosen, state)


def _settle(state: RolloutState, by_node: Mapping[str, Member], target: str, now: datetime) -> RolloutState:
    """Drop in-flight nodes that are done (Ready on target) or gone; time out the rest as failures."""
    in_flight: dict[str, datetime] = {}
    failed = list(state.failed)
    for node, since in state.in_flight.items():
        member = by_node.get(node)
        if member is None or (member.revision == target and member.ready):
            continue
        if now - since >= NODE_TIMEOUT:
            failed.append(node)
        else:
            in_flight[node] = since
    failed = [n for n in dict.fromkeys(failed) if n in by_node and not _done(by_node[n], target)]
    return replace(state, in_flight=in_flight, failed=tuple(failed))


def _done(member: Member, target: str) -> bool:
    return member.revision == target and member.ready


def _pause_text(reason: str, policy: Policy, now: datetime, failed: Sequence[str] = (), budget: int = 0) -> str:
    if reason == PAUSE_FAILURES:
        return f"{len(failed)} node(s) failed ({', '.join(failed)}), budget {budget}: fix them or change the revision"
    if policy.window.includes:
        return f"maxDuration reached; resumes when the window opens {_text(policy.window.next_opening(now))}"
    return "maxDuration reached; resumes with the next revision or when the rollout annotation is removed"


def _text(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment is not None else None


def _time(value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise ValidationError.single(where, "not a time", "an RFC 3339 time such as 2026-01-02T03:04:05Z")
    return parse_time(value, where)


def _optional_time(value: Any, where: str) -> datetime | None:
    return None if value is None else _time(value, where)


def parse_time(text: str, where: str = "time") -> datetime:
    """An RFC 3339 time with a zone ("Z" or an offset); ValidationError naming `where` otherwise."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ValidationError.single(where, f"invalid time {text!r}", "an RFC 3339 time such as 2026-01-02T03:04:05Z")
    return moment
