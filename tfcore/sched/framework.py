"""A plugin framework shaped like the Kubernetes scheduler framework, over the Allocator.

One small Protocol per extension point (PreFilter, Filter, Score, Reserve/Unreserve, Bind);
plugins answer with a Status, never an exception; a CycleState carries data between the
points of one scheduling cycle. A Framework runs a cycle for one pod over candidate nodes and
returns a ScheduleResult: chosen node and GPUs, per-plugin (and per-filter-stage) before/after
node lists and the reason each rejected node was rejected. `dry_run` allocates nothing.

Fast path: when one score plugin can list nodes best-first from an incremental index
(`RankedScorePlugin`) and every other one either gives all nodes the same score for this pod
or bounds its score (`BoundedScorePlugin`), the cycle walks that order and stops at the first
feasible node, or (with bounded scorers) once no later node can beat the best total found. It
picks exactly the node the full scan would pick (highest total score, ties by node name); a
property test checks that.
Diagnosis (`diagnose=True`, what simulate-schedule uses) always takes the full scan.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol, cast, runtime_checkable

from tfcore.model.errors import ValidationError
from tfcore.sched.allocator import Allocation, Allocator
from tfcore.sched.request import PodRequest
from tfcore.sched.state import GPUState, NodeState

MAX_NODE_SCORE = 100


class Code(Enum):
    SUCCESS = "Success"
    UNSCHEDULABLE = "Unschedulable"
    UNSCHEDULABLE_AND_UNRESOLVABLE = "UnschedulableAndUnresolvable"
    ERROR = "Error"


@dataclass(frozen=True, slots=True)
class Status:
    """The answer of a plugin: a code, human-readable reasons, who said it and at which stage."""

    code: Code = Code.SUCCESS
    reasons: tuple[str, ...] = ()
    plugin: str = ""
    stage: str = ""  # a filter's internal step (GPUResourcesFit: index, isolation, resource, ...)

    @property
    def ok(self) -> bool:
        return self.code is Code.SUCCESS

    @classmethod
    def unschedulable(cls, plugin: str, reason: str, stage: str = "") -> Status:
        return cls(Code.UNSCHEDULABLE, (reason,), plugin, stage)

    @classmethod
    def unresolvable(cls, plugin: str, reason: str, stage: str = "") -> Status:
        return cls(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, (reason,), plugin, stage)

    @classmethod
    def error(cls, plugin: str, reason: str) -> Status:
        return cls(Code.ERROR, (reason,), plugin)

    def message(self) -> str:
        where = f"{self.plugin}/{self.stage}" if self.stage else self.plugin
        return f"{where}: {'; '.join(self.reasons)}" if where else "; ".join(self.reasons)

    def to_builtins(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code.value, "plugin": self.plugin, "reasons": list(self.reasons)}
        if self.stage:
            out["stage"] = self.stage
        return out


SUCCESS = Status()
_OK = Code.SUCCESS
NOT_MANAGED = "node has no GPUs managed by tensor-fusion"
_UNMANAGED = Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, (NOT_MANAGED,))


class CycleState:
    """Data shared by the plugins during one pod's cycle; discarded afterwards.

    `gpu_candidates[node]` holds the GPUs of a node that can take the pod (written by the
    resource filter, possibly narrowed by later filters); `chosen_gpus` and `allocation` are
    written by Reserve. `data` is free for plugins, keyed by plugin name.
    """

    __slots__ = ("allocation", "chosen_gpus", "data", "diagnose", "dry_run", "gpu_candidates")

    def __init__(self, *, diagnose: bool = False, dry_run: bool = False) -> None:
        self.diagnose = diagnose
        self.dry_run = dry_run
        self.data: dict[str, Any] = {}
        self.gpu_candidates: dict[str, list[GPUState]] = {}
        self.chosen_gpus: list[GPUState] = []
        self.allocation: Allocation | None = None


class Plugin(Protocol):
    @property
    def name(self) -> str: ...


@runtime_checkable
class PreFilterPlugin(Protocol):
    """Once per cycle, before any node: check the pod itself (quota, pool exists...)."""

    @property
    def name(self) -> str: ...

    def pre_filter(self, state: CycleState, pod: PodRequest) -> Status: ...


@runtime_checkable
class FilterPlugin(Protocol):
    """Can the pod run on this node?"""

    @property
    def name(self) -> str: ...

    def filter(self, state: CycleState, pod: PodRequest, node: NodeState) -> Status: ...


@runtime_checkable
class ScorePlugin(Protocol):
    """How good is this (feasible) node, 0..100, higher is better."""

    @property
    def name(self) -> str: ...

    def score(self, state: CycleState, pod: PodRequest, node: NodeState) -> int: ...

    def uniform(self, state: CycleState, pod: PodRequest) -> bool:
        """True when every node gets the same score for this pod (lets the fast path ignore it)."""
        ...


@runtime_checkable
class RankedScorePlugin(ScorePlugin, Protocol):
    """A score plugin that can list nodes best-first (score descending, then name ascending)."""

    def ranked_nodes(self, state: CycleState, pod: PodRequest) -> Iterable[NodeState] | None: ...


@runtime_checkable
class BoundedScorePlugin(ScorePlugin, Protocol):
    """A score plugin that can bound, per pod, the score any node can get from it."""

    def max_score(self, state: CycleState, pod: PodRequest) -> int: ...


@runtime_checkable
class ReservePlugin(Protocol):
    """Claim the resources on the chosen node (in a dry run: only decide, claim nothing)."""

    @property
    def name(self) -> str: ...

    def reserve(self, state: CycleState, pod: PodRequest, node: NodeState) -> Status: ...

    def unreserve(self, state: CycleState, pod: PodRequest, node: NodeState) -> None: ...


@runtime_checkable
class BindPlugin(Protocol):
    """Make the placement real (e.g. write the allocation annotations and bind the pod)."""

    @property
    def name(self) -> str: ...

    def bind(self, state: CycleState, pod: PodRequest, node: NodeState) -> Status: ...


@dataclass(frozen=True, slots=True)
class Handle:
    """What a plugin factory gets besides its args (like the Kubernetes framework.Handle)."""

    allocator: Allocator


PluginFactory = Callable[[Any, Handle], Plugin]
ArgsParser = Callable[[Mapping[str, Any] | None, str], Any]


@dataclass(frozen=True, slots=True)
class PluginEntry:
    """A registered plugin: its factory, its args parser and the extension points it implements."""

    factory: PluginFactory
    parse_args: ArgsParser
    points: frozenset[str]


Registry = dict[str, PluginEntry]  # name -> entry; build one with tfcore.sched.plugins.default_registry()

EXTENSION_POINTS = ("preFilter", "filter", "score", "reserve", "bind")


@dataclass(frozen=True, slots=True)
class PluginUse:
    """A plugin enabled in a profile: name, parsed args, the points it runs at, score weight."""

    name: str
    args: Any = None
    points: frozenset[str] = frozenset(EXTENSION_POINTS)
    weight: int = 1


@dataclass(frozen=True, slots=True)
class FilterStep:
    """Which nodes went into a filter (or one stage of it) and which came out."""

    plugin: str
    before: tuple[str, ...]
    after: tuple[str, ...]

    def to_builtins(self) -> dict[str, Any]:
        return {"plugin": self.plugin, "before": list(self.before), "after": list(self.after)}


@dataclass(slots=True)
class ScheduleResult:
    """The outcome of one cycle: what simulate-schedule returns and what the extender binds."""

    pod: str
    status: Status
    node: str | None = None
    gpus: tuple[str, ...] = ()
    gpu_indices: tuple[int, ...] = ()
    allocation: Allocation | None = None
    dry_run: bool = False
    steps: list[FilterStep] = field(default_factory=list)
    rejected: dict[str, Status] = field(default_factory=dict)
    scores: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status.ok

    def annotations(self) -> dict[str, str]:
        """The annotations bind writes on the pod (empty when nothing was placed)."""
        return self.allocation.to_annotations() if self.allocation else {}

    def to_builtins(self) -> dict[str, Any]:
        return {
            "pod": self.pod,
            "status": self.status.to_builtins(),
            "node": self.node,
            "gpus": list(self.gpus),
            "gpuIndices": list(self.gpu_indices),
            "dryRun": self.dry_run,
            "allocation": self.allocation.to_builtins() if self.allocation else None,
            "filters": [s.to_builtins() for s in self.steps],
            "rejected": {node: status.to_builtins() for node, status in sorted(self.rejected.items())},
            "scores": dict(sorted(self.scores.items())),
        }


class Framework:
    """One scheduling profile: plugins at their extension points over one Allocator."""

    def __init__(self, allocator: Allocator, uses: Sequence[PluginUse], registry: Registry) -> None:
        self.allocator = allocator
        handle = Handle(allocator)
        self.pre_filters: list[PreFilterPlugin] = []
        self.filters: list[FilterPlugin] = []
        self.scorers: list[tuple[ScorePlugin, int]] = []
        self.reservers: list[ReservePlugin] = []
        self.binders: list[BindPlugin] = []
        self.plugins: dict[str, Plugin] = {}
        self._ranked: set[str] = set()
        self._bounded: set[str] = set()
        for use in uses:
            entry = registry.get(use.name)
            if entry is None:
                raise ValidationError.single(
                    f"plugins.{use.name}", "unknown plugin", "one of " + ", ".join(sorted(registry))
                )
            plugin = entry.factory(use.args if use.args is not None else entry.parse_args(None, use.name), handle)
            self.plugins[use.name] = plugin
            self._wire(plugin, use, entry.points)

    def _wire(self, plugin: Plugin, use: PluginUse, points: frozenset[str]) -> None:
        active = use.points & points
        if "preFilter" in active and isinstance(plugin, PreFilterPlugin):
            self.pre_filters.append(plugin)
        if "filter" in active and isinstance(plugin, FilterPlugin):
            self.filters.append(plugin)
        if "score" in active and isinstance(plugin, ScorePlugin) and use.weight:
            self.scorers.append((plugin, use.weight))
            if isinstance(plugin, RankedScorePlugin):
                self._ranked.add(plugin.name)
            if isinstance(plugin, BoundedScorePlugin):
                self._bounded.add(plugin.name)
        if "reserve" in active and isinstance(plugin, ReservePlugin):
            self.reservers.append(plugin)
        if "bind" in active and isinstance(plugin, BindPlugin):
            self.binders.append(plugin)

    def close(self) -> None:
        """Detach plugins from the allocator (before replacing this framework on a config reload)."""
        for plugin in self.plugins.values():
            closer = getattr(plugin, "close", None)
            if callable(closer):
                closer()

    # ---- one cycle ------------------------------------------------------------------------

    def schedule(
        self,
        pod: PodRequest,
        nodes: Iterable[str] | None = None,
        *,
        dry_run: bool = False,
        diagnose: bool = False,
    ) -> ScheduleResult:
        """Run PreFilter, Filter, Score, Reserve (and Bind unless dry-run) for `pod`.

        `nodes` limits the candidates (the extender's node list); default: every known node.
        A pod that already holds an allocation gets it back unchanged (idempotent).
        """
        existing = self.allocator.allocations.get(pod.key)
        if existing is not None:
            return self._result_for(pod, existing, dry_run)
        state = CycleState(diagnose=diagnose, dry_run=dry_run)
        result = ScheduleResult(pod=pod.key, status=SUCCESS, dry_run=dry_run)
        status = self.run_pre_filters(state, pod)
        if not status.ok:
            result.status = status
            return result
        candidates = self._candidates(nodes)
        chosen = None if diagnose else self._fast_pick(state, pod, nodes, candidates)
        if chosen is None:  # full scan; also when the fast path found nothing, to say why
            feasible = self._filter_all(state, pod, candidates, result)
            if not feasible:
                result.status = _no_fit(len(candidates), result.rejected)
                return result
            result.scores = self.score_nodes(state, pod, feasible)
            best = max(result.scores.values())
            chosen = next(n for n in feasible if result.scores[n.name] == best)  # feasible is sorted by name
        return self._reserve_and_bind(state, pod, chosen, result)

    def run_pre_filters(self, state: CycleState, pod: PodRequest) -> Status:
        for plugin in self.pre_filters:
            status = plugin.pre_filter(state, pod)
            if not status.ok:
                return status
        return SUCCESS

    def filter_node(self, state: CycleState, pod: PodRequest, node: NodeState) -> Status:
        for plugin in self.filters:
            status = plugin.filter(state, pod, node)
            if status.code is not _OK:
                return status
        return SUCCESS

    def score_nodes(self, state: CycleState, pod: PodRequest, nodes: Sequence[NodeState]) -> dict[str, int]:
        totals = dict.fromkeys((n.name for n in nodes), 0)
        for plugin, weight in self.scorers:
            for node in nodes:
                totals[node.name] += weight * plugin.score(state, pod, node)
        return totals

    def _candidates(self, nodes: Iterable[str] | None) -> list[NodeState]:
        known = self.allocator.nodes
        if nodes is None:
            return list(known.values())
        return [known[name] for name in nodes if name in known]

    def _fast_pick(
        self, state: CycleState, pod: PodRequest, nodes: Iterable[str] | None, candidates: list[NodeState]
    ) -> NodeState | None:
        """The best feasible node by walking one ranked scorer's order; None if none or no order applies.

        Other scorers must give every node the same score, or bound theirs (`max_score`): the
        walk stops once the ranked score plus those bounds cannot reach the best total found.
        """
        varying = [(p, w) for p, w in self.scorers if not p.uniform(state, pod)]
        ranked = [(p, w) for p, w in varying if p.name in self._ranked]
        others = [(p, w) for p, w in varying if p.name not in self._ranked]
        if len(ranked) > 1 or (others and (not ranked or any(p.name not in self._bounded for p, _ in others))):
            return None
        order: Iterable[NodeState] | None
        if ranked:
            order = cast(RankedScorePlugin, ranked[0][0]).ranked_nodes(state, pod)
        else:
            order = sorted(candidates, key=lambda n: n.name)
        if order is None:
            return None
        allowed = None if nodes is None else {n.name for n in candidates}
        filters = self.filters
        if not others:  # the order is the total order: the first feasible node wins
            for node in order:
                if allowed is not None and node.name not in allowed:
                    continue
                for plugin in filters:
                    if plugin.filter(state, pod, node).code is not _OK:
                        break
                else:
                    return node
            return None
        lead, lead_weight = ranked[0]
        headroom = sum(w * cast(BoundedScorePlugin, p).max_score(state, pod) for p, w in others)
        best: NodeState | None = None
        best_total = -1
        for node in order:
            if allowed is not None and node.name not in allowed:
                continue
            lead_score = lead_weight * lead.score(state, pod, node)
            if lead_score + headroom < best_total:
                break  # scores only fall from here on
            for plugin in filters:
                if plugin.filter(state, pod, node).code is not _OK:
                    break
            else:
                total = lead_score + sum(w * p.score(state, pod, node) for p, w in others)
                if total > best_total or (total == best_total and best is not None and node.name < best.name):
                    best, best_total = node, total
        return best

    def _filter_all(
        self, state: CycleState, pod: PodRequest, candidates: list[NodeState], result: ScheduleResult
    ) -> list[NodeState]:
        surviving = sorted(candidates, key=lambda n: n.name)
        for plugin in self.filters:
            before = surviving
            surviving = []
            failed: dict[str, Status] = {}
            for node in before:
                status = plugin.filter(state, pod, node)
                if status.ok:
                    surviving.append(node)
                else:
                    failed[node.name] = status
            result.rejected.update(failed)
            if state.diagnose:
                result.steps.extend(_steps(plugin, before, failed))
            if not surviving:
                break
        return surviving

    def _reserve_and_bind(
        self, state: CycleState, pod: PodRequest, node: NodeState, result: ScheduleResult
    ) -> ScheduleResult:
        result.node = node.name
        done: list[ReservePlugin] = []
        for plugin in self.reservers:
            status = plugin.reserve(state, pod, node)
            if not status.ok:
                for undo in reversed(done):
                    undo.unreserve(state, pod, node)
                result.status = status
                return result
            done.append(plugin)
        if not state.dry_run:
            for binder in self.binders:
                status = binder.bind(state, pod, node)
                if not status.ok:
                    for undo in reversed(done):
                        undo.unreserve(state, pod, node)
                    result.status = status
                    state.allocation = None
                    break
        result.gpus = tuple(g.name for g in state.chosen_gpus)
        result.gpu_indices = tuple(g.spec.index for g in state.chosen_gpus)
        result.allocation = state.allocation
        return result

    def _result_for(self, pod: PodRequest, allocation: Allocation, dry_run: bool) -> ScheduleResult:
        return ScheduleResult(
            pod=pod.key,
            status=SUCCESS,
            node=allocation.node,
            gpus=allocation.gpu_ids,
            gpu_indices=tuple(s.index for s in allocation.shares),
            allocation=allocation,
            dry_run=dry_run,
        )

    # ---- what the kube-scheduler extender needs ---------------------------------------------

    def filter_nodes(self, state: CycleState, pod: PodRequest, nodes: Iterable[str]) -> dict[str, Status]:
        """Extender filter verb, after run_pre_filters passed on `state`: each node's verdict, in
        the order given (each once). A node we do not know is unresolvable."""
        known = self.allocator.nodes
        filter_node = self.filter_node
        verdicts: dict[str, Status] = {}
        for name in nodes:
            node = known.get(name)
            verdicts[name] = filter_node(state, pod, node) if node is not None else _UNMANAGED
        return verdicts

    def prioritize(self, state: CycleState, pod: PodRequest, nodes: Iterable[str]) -> dict[str, int]:
        """Extender prioritize verb, after run_pre_filters passed on `state`: the weighted totals of
        the known nodes among `nodes` (feasible or not), in the order given, each once."""
        known = self.allocator.nodes
        return self.score_nodes(state, pod, [known[name] for name in dict.fromkeys(nodes) if name in known])

    def reserve_on(self, pod: PodRequest, node_name: str, *, dry_run: bool = False) -> ScheduleResult:
        """Extender bind verb: place `pod` on the node kube-scheduler chose (runs its filters again)."""
        existing = self.allocator.allocations.get(pod.key)
        if existing is not None:
            return self._result_for(pod, existing, dry_run)
        state = CycleState(dry_run=dry_run)
        result = ScheduleResult(pod=pod.key, status=SUCCESS, dry_run=dry_run)
        status = self.run_pre_filters(state, pod)
        node = self.allocator.nodes.get(node_name)
        if status.ok and node is None:
            status = Status.unresolvable("", f"node {node_name} has no GPUs managed by tensor-fusion")
        if status.ok and node is not None:
            status = self.filter_node(state, pod, node)
        if not status.ok or node is None:
            result.status = status
            result.rejected[node_name] = status
            return result
        return self._reserve_and_bind(state, pod, node, result)

    def forget(self, pod_key: str) -> Allocation | None:
        """Undo a reservation whose binding failed outside the framework (e.g. the API call)."""
        return self.allocator.release(pod_key)


def _no_fit(total: int, rejected: Mapping[str, Status]) -> Status:
    counts: dict[str, int] = {}
    unresolvable = True
    for status in rejected.values():
        counts[status.message()] = counts.get(status.message(), 0) + 1
        unresolvable = unresolvable and status.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    parts = [f"{count} {message}" for message, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    text = f"0/{total} nodes are available" + (": " + ", ".join(parts[:5]) if parts else "")
    code = Code.UNSCHEDULABLE_AND_UNRESOLVABLE if rejected and unresolvable else Code.UNSCHEDULABLE
    return Status(code, (text,), "")


def _steps(plugin: FilterPlugin, before: list[NodeState], failed: Mapping[str, Status]) -> Iterator[FilterStep]:
    """One step per filter; a filter with internal stages also reports one step per stage."""
    names = tuple(n.name for n in before)
    stages: Sequence[str] = getattr(plugin, "stages", ())
    if stages:
        remaining = names
        for stage in stages:
            after = tuple(n for n in remaining if n not in failed or failed[n].stage != stage)
            yield FilterStep(f"{plugin.name}/{stage}", remaining, after)
            remaining = after
    yield FilterStep(plugin.name, names, tuple(n for n in names if n not in failed))
