"""The extender's decision cache: keyed by request shape, invalidated per node by the allocator."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.sched.fleet import fleet, framework, pod
from tfcore.sched import CycleState
from tfcore.sched.extender.cache import DecisionCache, host_priorities_json, host_priority_json
from tfcore.sched.extender.wire import HostPriority, encoder
from tfcore.sched.request import LabelRequirement, PodRequest

NODES = ["node-0", "node-1", "node-2", "cpu-node"]


def _cache(*, enabled: bool = True) -> tuple[DecisionCache, PodRequest]:
    allocator = fleet(3, 2)
    cache = DecisionCache(framework(allocator), enabled=enabled)
    allocator.subscribe(cache)
    return cache, pod("p", tflops=30)


def _fill(cache: DecisionCache, request: PodRequest) -> None:
    state = CycleState()
    assert cache.framework.run_pre_filters(state, request).ok
    entry = cache.for_shape(request.shape)
    cache.filter(entry, state, request, NODES)
    cache.score(entry, state, request, NODES)


def test_replicas_share_one_entry_and_a_changed_node_is_forgotten_alone() -> None:
    cache, request = _cache()
    _fill(cache, request)
    replica = replace(request, key="q", name="q", namespace="other", node_name="node-1")
    entry = cache.for_shape(replica.shape)
    assert set(entry.verdicts) == set(NODES)
    assert entry.unresolvable == {"cpu-node": "node has no GPUs managed by tensor-fusion"}
    assert set(entry.totals) == {"node-0", "node-1", "node-2"}  # unknown nodes are not scored
    cache.framework.allocator.allocate(pod("big", tflops=90), ["gpu-1-0"])
    assert set(entry.verdicts) == {"node-0", "node-2", "cpu-node"}
    assert set(entry.totals) == {"node-0", "node-2"}
    other = cache.for_shape(replace(request, tflops=31).shape)
    assert other is not entry
    assert not other.verdicts


def test_disabled_it_keeps_nothing_and_a_new_framework_starts_a_new_generation() -> None:
    cache, request = _cache(enabled=False)
    _fill(cache, request)
    assert not cache.for_shape(request.shape).verdicts
    enabled, request = _cache()
    _fill(enabled, request)
    generation = enabled.generation
    enabled.use(framework(enabled.framework.allocator))
    assert enabled.generation == generation + 1
    assert not enabled.for_shape(request.shape).verdicts


_IDENTITY = st.text(alphabet="abc-", min_size=1, max_size=6)


@settings(max_examples=60, deadline=None)
@given(
    tflops=st.sampled_from([1, 30, 60, 95]),
    selector=st.sampled_from([{}, {"zone": "a"}]),
    identity=st.tuples(_IDENTITY, _IDENTITY, st.none() | st.sampled_from(NODES), st.sampled_from([(), ("gpu-0-0",)])),
)
def test_filter_and_score_read_only_the_shape(
    tflops: int, selector: dict[str, str], identity: tuple[str, str, str | None, tuple[str, ...]]
) -> None:
    """What the cache keys on must be all that filters and scores read: pods that differ only in
    identity get the same verdict and score on every node."""
    namespace, name, node_name, gpu_ids = identity
    allocator = fleet(3, 2, labels={"zone": "a"})
    allocator.allocate(pod("big", tflops=60), ["gpu-1-0"])
    fw = framework(allocator)
    base = pod("p", tflops=tflops, node_selector=selector)
    other = replace(base, key=f"{namespace}/{name}", namespace=namespace, name=name, node_name=node_name)
    other = replace(other, gpu_ids=gpu_ids)
    assert other.shape == base.shape
    assert hash(other.shape) == hash(base.shape)
    answers = []
    for request in (base, other):
        state = CycleState()
        assert fw.run_pre_filters(state, request).ok
        answers.append((fw.filter_nodes(state, request, NODES), fw.prioritize(state, request, NODES)))
    assert answers[0] == answers[1]


def test_shapes_differ_in_every_field_but_the_identity() -> None:
    base = pod("p", tflops=30)
    variants = [
        replace(base, tflops=31),
        replace(base, node_selector={"zone": "b"}),
        replace(base, affinity_terms=((LabelRequirement("zone", "In", ("a",)),),)),
        replace(base, gpu_indices=frozenset({1})),
        replace(base, qos="high"),
    ]
    shapes = {v.shape for v in variants} | {base.shape}
    assert len(shapes) == len(variants) + 1


@given(host=st.text(max_size=20), score=st.integers(-3, 30))
def test_prioritize_items_are_what_the_encoder_writes(host: str, score: int) -> None:
    expected = encoder.encode(HostPriority(host, score))
    assert host_priority_json(host, score) == expected
    assert dict(host_priorities_json({host: score})) == {host: expected}
