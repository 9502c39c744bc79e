from __future__ import annotations

import pytest

from tests.unit.sched.fleet import GiB, T, framework, plain_pool, pod
from tfcore.model.errors import ValidationError
from tfcore.sched import Allocator, GPUSpec, NodeSpec
from tfcore.sched.plugins.topology import TopologyArgs, parse_args
from tfcore.sched.state import parse_nvlink_groups


def _node(name: str, numa: list[int], nvlink: str = "") -> tuple[NodeSpec, list[GPUSpec]]:
    spec = NodeSpec(name, "shared", nvlink_groups=parse_nvlink_groups(nvlink))
    gpus = [GPUSpec(f"{name}-g{i}", name, 100 * T, 40 * GiB, index=i, numa_node=n) for i, n in enumerate(numa)]
    return spec, gpus


def _allocator(*nodes: tuple[NodeSpec, list[GPUSpec]]) -> Allocator:
    return Allocator.build(
        [plain_pool()], [n for n, _ in nodes], [g for _, gs in nodes for g in gs], default_pool="shared"
    )


def test_soft_mode_prefers_nvlink_then_numa() -> None:
    allocator = _allocator(_node("a", [0, 1, 0, 1]), _node("b", [0, 0, 1, 1], nvlink="0-1;2-3"), _node("c", [-1] * 4))
    fw = framework(allocator)
    result = fw.schedule(pod("p", gpu_count=2), dry_run=True, diagnose=True)
    assert result.node == "b"
    assert set(result.gpus) in ({"b-g0", "b-g1"}, {"b-g2", "b-g3"})
    assert result.scores["b"] > result.scores["a"] > result.scores["c"]


def test_gpus_are_steered_to_one_numa_node() -> None:
    allocator = _allocator(_node("a", [0, 1, 0, 1]))
    result = framework(allocator).schedule(pod("p", gpu_count=2))
    assert {allocator.gpus[g].spec.numa_node for g in result.gpus} == {0} or len(
        {allocator.gpus[g].spec.numa_node for g in result.gpus}
    ) == 1


def test_hard_mode_rejects_nodes_below_the_required_tier() -> None:
    allocator = _allocator(_node("a", [0, 1]), _node("b", [-1, -1]))
    fw = framework(allocator, topology=TopologyArgs(mode="hard", required_tier="NUMA"))
    result = fw.schedule(pod("p", gpu_count=2), dry_run=True, diagnose=True)
    assert not result.ok
    assert result.rejected["a"].plugin == "GPUNetworkTopologyAware"
    assert "NUMA" in result.rejected["a"].reasons[0]


def test_single_gpu_pods_are_unaffected() -> None:
    allocator = _allocator(_node("a", [0, 1]))
    fw = framework(allocator, topology=TopologyArgs(mode="hard", required_tier="NVLink"))
    assert fw.schedule(pod("p")).ok


def test_args_accept_the_specs_bandwidth_and_reject_unknowns() -> None:
    assert parse_args({"totalIntranetBandWidthGBps": 100}).total_intranet_bandwidth_gbps == 100.0
    with pytest.raises(ValidationError, match="totalIntranetBandWidthGBps"):
        parse_args({"totalIntranetBandWidthGBps": -5})
    with pytest.raises(ValidationError, match="unknown argument of GPUNetworkTopologyAware"):
        parse_args({"bandwidth": 1})


def test_nvlink_groups_parse() -> None:
    assert parse_nvlink_groups("0-3;4,5") == (frozenset({0, 1, 2, 3}), frozenset({4, 5}))
    assert parse_nvlink_groups("") == ()
    for bad in ("a-b", "3-1", "0;;x"):
        with pytest.raises(ValidationError, match="nvlink-groups"):
            parse_nvlink_groups(bad)
