"""Runs the rules: each at its own evaluationInterval, on the leader only.

A rule whose SQL fails (or whose rows do not fit its templates) is logged and counted, keeps
its state (no false resolution while the store is down) and the other rules keep running.
Rule changes from a config reload keep the state of rules that did not change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from tfcore.alerts.rules import CompiledRule, check_columns
from tfcore.alerts.state import DEFAULT_JOB, DEFAULT_RESEND, Alert, RuleState
from tfcore.metrics.store import Dialect, QueryFailed, QueryResult, StoreUnavailable
from tfcore.model.errors import Problem, ValidationError

log = logging.getLogger(__name__)


class RuleStore(Protocol):
    @property
    def dialect(self) -> Dialect: ...

    async def query(self, sql: str) -> QueryResult: ...

    async def columns(self, sql: str) -> list[str]: ...


@dataclass(slots=True)
class RuleStats:
    evaluations: int = 0
    failures: int = 0
    last_error: str = ""


@dataclass(slots=True)
class EvaluatorStats:
    rules: dict[str, RuleStats] = field(default_factory=dict)


class AlertEvaluator:
    def __init__(
        self,
        store: RuleStore,
        publish: Callable[[Sequence[Alert]], None],
        is_leader: Callable[[], bool],
        *,
        job: str = DEFAULT_JOB,
        resend_interval: timedelta = DEFAULT_RESEND,
        generator_url: str = "",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._publish = publish
        self._is_leader = is_leader
        self._job = job
        self._resend = resend_interval
        self._generator_url = generator_url
        self._clock = clock
        self._states: dict[str, RuleState] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._running = False
        self.stats = EvaluatorStats()

    @property
    def rules(self) -> list[CompiledRule]:
        return [s.rule for s in self._states.values()]

    async def set_rules(self, rules: Sequence[CompiledRule]) -> list[Problem]:
        """Install a new rule set. Returns the rules rejected against the store's schema.

        A rule whose query names an unknown column, or whose templates name a column the
        query does not return, is left out and reported; if the store is unreachable the
        check is skipped (the rule runs, and any mismatch is reported when it evaluates).
        """
        problems: list[Problem] = []
        accepted: list[CompiledRule] = []
        for rule in rules:
            try:
                columns = await self._store.columns(rule.render_query(self._store.dialect, self._clock()))
            except QueryFailed as exc:
                problems.append(
                    Problem(f"{rule.name}.query", str(exc), "one SELECT over the metrics tables, valid for the store")
                )
                continue
            except StoreUnavailable as exc:
                log.warning("rule %r not checked against the store (unavailable): %s", rule.name, exc)
                accepted.append(rule)
                continue
            found = check_columns(rule, columns)
            if found:
                problems.extend(found)
            else:
                accepted.append(rule)
        for problem in problems:
            log.error("alert rule rejected: %s", problem)
        self._install(accepted)
        return problems

    def _install(self, rules: Sequence[CompiledRule]) -> None:
        wanted = {r.name: r for r in rules}
        for name in list(self._states):
            if name not in wanted or wanted[name].rule != self._states[name].rule.rule:
                del self._states[name]
                task = self._tasks.pop(name, None)
                if task:
                    task.cancel()
        for name, rule in wanted.items():
            if name not in self._states:
                self._states[name] = RuleState(rule, self._job, self._resend, self._generator_url)
                self.stats.rules.setdefault(name, RuleStats())
                if self._running:
                    self._start(name)
        for name in list(self.stats.rules):
            if name not in wanted:
                del self.stats.rules[name]

    async def evaluate(self, name: str) -> list[Alert]:
        """Evaluate one rule now and publish what changed. Failures are recorded, never raised."""
        state = self._states[name]
        stats = self.stats.rules[name]
        stats.evaluations += 1
        now = self._clock()
        try:
            result = await self._store.query(state.rule.render_query(self._store.dialect, now))
            alerts = state.observe(result.records(), now)
        except (QueryFailed, StoreUnavailable, ValidationError) as exc:
            stats.failures += 1
            stats.last_error = str(exc)
            log.error("alert rule %r failed (state kept): %s", name, exc)
            return []
        stats.last_error = ""
        self._publish(alerts)
        return alerts

    async def run(self) -> None:
        """Evaluate every rule at its interval until cancelled."""
        self._running = True
        try:
            for name in self._states:
                self._start(name)
            await asyncio.Event().wait()
        finally:
            self._running = False
            for task in self._tasks.values():
                task.cancel()
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
            self._tasks.clear()

    def _start(self, name: str) -> None:
        self._tasks[name] = asyncio.create_task(self._loop(name), name=f"alert-rule:{name}")

    async def _loop(self, name: str) -> None:
        loop = asyncio.get_running_loop()
        interval = self._states[name].rule.interval.total_seconds()
        next_tick = loop.time()
        while True:
            state = self._states.get(name)
            if state is None:
                return
            if self._is_leader():
                await self.evaluate(name)
            elif state.instances:
                state.instances.clear()  # the new leader owns these alerts now
            next_tick += interval
            now = loop.time()
            if next_tick < now:  # an evaluation overran: skip the missed ticks, do not burst
                next_tick = now + interval - (now - next_tick) % interval
            await asyncio.sleep(next_tick - now)
