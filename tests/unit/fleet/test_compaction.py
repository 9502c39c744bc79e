from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from tfcore.fleet.capacity import Amount, Bounds
from tfcore.fleet.compaction import NodeView, PodView, Verdict, plan_compaction

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(hours=1)
GPU = Amount(121_000, 24 * 2**30)
NO_BOUNDS = Bounds(Amount(), Amount(), Amount())


def gpu_node(name: str, *, created: datetime = OLD, used: bool = False, **extra: object) -> NodeView:
    available = Amount(0, 0) if used else GPU
    return NodeView(
        name=name,
        created=created,
        ready=True,
        schedulable=True,
        labels={"pool": "gpu"},
        taints=(),
        cpu_milli=4000,
        memory=16 * 2**30,
        pods=110,
        pool_member=True,
        capacity=GPU,
        available=available,
        **extra,  # type: ignore[arg-type]
    )


def cpu_node(name: str, cpu: int = 8000, **extra: object) -> NodeView:
    extra.setdefault("taints", ())
    return NodeView(
        name=name,
        created=OLD,
        ready=True,
        schedulable=True,
        labels={"pool": "cpu"},
        cpu_milli=cpu,
        memory=32 * 2**30,
        pods=110,
        **extra,  # type: ignore[arg-type]
    )


def pod(key: str, node: str, cpu: int = 500, **extra: object) -> PodView:
    fields: dict[str, object] = {"daemonset": False, "do_not_disrupt": False, "uses_gpu": False, "memory": 2**30}
    fields.update(extra)
    return PodView(key=key, node=node, cpu_milli=cpu, **fields)  # type: ignore[arg-type]


def run(nodes: list[NodeView], pods: list[PodView], bounds: Bounds = NO_BOUNDS) -> Verdict:
    members = [n for n in nodes if n.pool_member]
    total = Amount(sum(n.capacity.tflops or 0 for n in members), sum(n.capacity.vram or 0 for n in members))
    free = Amount(sum(n.available.tflops or 0 for n in members), sum(n.available.vram or 0 for n in members))
    return plan_compaction(nodes=nodes, pods=pods, bounds=bounds, total=total, available=free, now=NOW)


def test_empty_old_node_goes_and_its_cpu_pod_has_a_landing_spot() -> None:
    verdict = run([gpu_node("g1"), cpu_node("c1")], [pod("ns/web", "g1"), pod("kube/ds", "g1", daemonset=True)])
    assert [r.node for r in verdict.removals] == ["g1"]
    assert verdict.removals[0].landings == {"ns/web": "c1"}


def test_a_pod_without_landing_spot_keeps_the_node() -> None:
    verdict = run([gpu_node("g1"), cpu_node("c1", cpu=100)], [pod("ns/web", "g1", cpu=500)])
    assert not verdict.removals
    assert "nowhere" in verdict.kept["g1"]


def test_non_tf_pods_are_simulated_with_selectors_and_taints() -> None:
    tainted = cpu_node("c1", taints=({"key": "dedicated", "value": "x", "effect": "NoSchedule"},))
    assert not run([gpu_node("g1"), tainted], [pod("ns/web", "g1")]).removals
    tolerant = pod("ns/web", "g1", tolerations=({"key": "dedicated", "operator": "Exists"},))
    assert run([gpu_node("g1"), tainted], [tolerant]).removals
    picky = pod("ns/web", "g1", node_selector={"pool": "gpu"})
    assert not run([gpu_node("g1"), cpu_node("c1")], [picky]).removals


def test_do_not_disrupt_young_and_busy_nodes_stay() -> None:
    verdict = run(
        [
            gpu_node("a", do_not_disrupt=True),
            gpu_node("b", created=NOW - timedelta(minutes=2)),
            gpu_node("c", used=True),
            gpu_node("d"),
            gpu_node("e"),
            cpu_node("c1"),
        ],
        [pod("ns/keep", "d", do_not_disrupt=True), pod("ns/train", "e", uses_gpu=True)],
    )
    assert not verdict.removals
    assert set(verdict.kept) == {"a", "b", "c", "d", "e"}


def test_min_and_warm_hold_after_removal() -> None:
    warm = Bounds(Amount(), Amount(121_000), Amount())
    verdict = run([gpu_node("g1"), gpu_node("g2"), gpu_node("g3")], [], warm)
    assert len(verdict.removals) == 2  # one node's worth stays warm
    minimum = Bounds(Amount(200_000), Amount(), Amount())
    assert len(run([gpu_node("g1"), gpu_node("g2"), gpu_node("g3")], [], minimum).removals) == 1


def test_two_removals_never_count_on_the_same_room() -> None:
    verdict = run(
        [gpu_node("g1"), gpu_node("g2"), cpu_node("c1", cpu=1000)], [pod("a/x", "g1", 800), pod("a/y", "g2", 800)]
    )
    assert len(verdict.removals) == 1


@settings(max_examples=80, deadline=None)
@given(
    gpu_nodes=st.integers(1, 6),
    cpu_nodes=st.lists(st.integers(0, 4000), max_size=3),
    pods=st.lists(st.tuples(st.integers(0, 8), st.integers(0, 3000), st.booleans()), max_size=14),
)
def test_compaction_never_strands_a_pod(
    gpu_nodes: int, cpu_nodes: list[int], pods: list[tuple[int, int, bool]]
) -> None:
    nodes = [gpu_node(f"g{i}") for i in range(gpu_nodes)] + [cpu_node(f"c{i}", cpu) for i, cpu in enumerate(cpu_nodes)]
    placed = [pod(f"ns/p{i}", nodes[n % len(nodes)].name, cpu, daemonset=ds) for i, (n, cpu, ds) in enumerate(pods)]
    verdict = run(nodes, placed)
    gone = {r.node for r in verdict.removals}
    landings = {k: v for r in verdict.removals for k, v in r.landings.items()}
    used = {n.name: sum(p.cpu_milli for p in placed if p.node == n.name and p.node not in gone) for n in nodes}
    for p in placed:
        if p.node in gone and not p.daemonset:
            target = landings[p.key]
            assert target not in gone
            used[target] += p.cpu_milli
    for n in nodes:
        if n.name not in gone:
            assert used[n.name] <= max(n.cpu_milli, sum(p.cpu_milli for p in placed if p.node == n.name))
