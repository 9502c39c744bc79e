from __future__ import annotations

from typing import Any

import pytest

from tests.unit.sched.fleet import GiB, T, fleet, framework, pod
from tfcore.model.errors import ValidationError
from tfcore.sched import Allocator, Code, CycleState, Handle, NodeSpec, PodRequest
from tfcore.sched.plugins.gpu_resources_fit import (
    GPUResourcesFit,
    GPUResourcesFitArgs,
    gpu_score,
    model_matches,
    node_score,
    parse_args,
)
from tfcore.sched.request import LabelRequirement


def test_gpu_score_is_the_weighted_used_percentage() -> None:
    allocator = fleet(1, 1)
    allocator.allocate(pod("a", tflops=50, vram_gib=10), ["gpu-0-0"])  # 50% TFLOPS, 25% VRAM
    gpu = allocator.gpus["gpu-0-0"]
    args = GPUResourcesFitArgs()
    assert gpu_score(gpu, args, used=True) == 33  # 25 x 0.7 + 50 x 0.3 = 32.5, rounded half up
    assert gpu_score(gpu, args, used=False) == 68  # 75 * 0.7 + 50 * 0.3 = 67.5 -> 68
    assert gpu_score(gpu, GPUResourcesFitArgs(vram_weight=1.0, tflops_weight=1.0), used=True) == 75
    assert gpu_score(gpu, GPUResourcesFitArgs(vram_weight=0.0, tflops_weight=0.0), used=True) == 0


def test_node_score_is_the_mean_of_its_gpu_scores() -> None:
    allocator = fleet(1, 2)
    allocator.allocate(pod("a", tflops=100, vram_gib=40), ["gpu-0-0"])  # 100
    allocator.allocate(pod("b", tflops=0, vram_gib=1), ["gpu-0-1"])  # 1.75 -> 2
    assert node_score(allocator.nodes["node-0"], GPUResourcesFitArgs(), used=True) == 51


def test_compact_first_packs_the_fullest_node_and_spreads_over_its_gpus() -> None:
    allocator = fleet(3, 2)
    allocator.allocate(pod("seed", tflops=20, vram_gib=10), ["gpu-1-0"])
    result = framework(allocator).schedule(pod("p"))
    assert result.ok
    assert result.node == "node-1"
    assert result.gpus == ("gpu-1-1",)  # low-load GPU within the node


def test_low_load_first_spreads_over_nodes() -> None:
    allocator = fleet(3, 2)
    allocator.allocate(pod("seed0", tflops=20, vram_gib=10), ["gpu-0-0"])
    allocator.allocate(pod("seed1", tflops=20, vram_gib=10), ["gpu-1-0"])
    result = framework(allocator, GPUResourcesFitArgs(placement_mode="LowLoadFirst")).schedule(pod("p"))
    assert result.node == "node-2"


def test_compact_first_mode_also_packs_gpus() -> None:
    allocator = fleet(1, 2)
    allocator.allocate(pod("seed", tflops=20, vram_gib=10), ["gpu-0-1"])
    result = framework(allocator, GPUResourcesFitArgs(placement_mode="CompactFirst")).schedule(pod("p"))
    assert result.gpus == ("gpu-0-1",)


def _stage(allocator: Allocator, request: PodRequest, cap: int = 256) -> tuple[Code, str]:
    plugin = GPUResourcesFit(GPUResourcesFitArgs(max_worker_per_node=cap), Handle(allocator))
    state = CycleState(diagnose=True)
    assert plugin.pre_filter(state, request).ok
    status = plugin.filter(state, request, allocator.nodes["node-0"])
    return status.code, status.stage


@pytest.mark.parametrize(
    ("fields", "stage"),
    [
        ({"gpu_indices": frozenset({7})}, "index"),
        ({"tflops": 101 * T}, "resource"),
        ({"vram": 41 * GiB}, "resource"),
        ({"gpu_model": "H100"}, "model"),
        ({"vendor": "AMD"}, "vendor"),
        ({"node_selector": {"zone": "b"}}, "affinity"),
        ({"affinity_terms": ((LabelRequirement("zone", "NotIn", ("a",)),),)}, "affinity"),
        ({"gpu_count": 3}, "count"),
    ],
)
def test_each_filter_stage_names_itself(fields: dict[str, Any], stage: str) -> None:
    allocator = fleet(1, 2, labels={"zone": "a"})
    request = pod("p", **fields)
    code, failed = _stage(allocator, request)
    assert failed == stage
    assert code is not Code.SUCCESS


def test_isolation_and_worker_cap_stages() -> None:
    allocator = fleet(1, 2)
    allocator.allocate(pod("whole", dedicated=True), ["gpu-0-0"])
    allocator.allocate(pod("other"), ["gpu-0-1"])
    assert _stage(allocator, pod("p", dedicated=True))[1] == "isolation"
    assert _stage(allocator, pod("p"), cap=2)[1] == "workers"  # cap of 2 workers per node reached


def test_affinity_expressions_match() -> None:
    allocator = fleet(1, 1, labels={"zone": "a", "gen": "5"})
    for op, values, ok in [("In", ("a", "b"), True), ("Exists", (), True), ("DoesNotExist", (), False),
                           ("Gt", ("4",), True), ("Lt", ("4",), False)]:  # fmt: skip
        request = pod("p", affinity_terms=((LabelRequirement("gen" if op in "GtLt" else "zone", op, values),),))
        assert (_stage(allocator, request)[0] is Code.SUCCESS) is ok, op


def test_model_matching_is_by_whole_words() -> None:
    assert model_matches("A100", "NVIDIA A100-SXM4-80GB")
    assert model_matches("nvidia l4", "NVIDIA L4")
    assert not model_matches("A10", "NVIDIA A100")
    assert not model_matches("A100", "NVIDIA A1000")


def test_node_of_another_pool_is_rejected_unresolvably() -> None:
    allocator = fleet(1, 1)
    allocator.set_node(NodeSpec("node-0", "other"))
    result = framework(allocator).schedule(pod("p", pool="shared"), dry_run=True, diagnose=True)
    assert not result.ok


def test_args_defaults_and_validation() -> None:
    assert parse_args(None) == GPUResourcesFitArgs(256, 0.7, 0.3)
    assert parse_args({"maxWorkerPerNode": 10, "vramWeight": 1, "tflopsWeight": 0}).vram_weight == 1.0
    with pytest.raises(ValidationError) as info:
        parse_args({"maxWorkerPerNode": -1, "vramWeight": 1.5, "tflopsWeight": "x", "bogus": 1}, "args")
    fields = {p.field: p for p in info.value.problems}
    assert set(fields) == {"args.maxWorkerPerNode", "args.vramWeight", "args.tflopsWeight", "args.bogus"}
    assert "unknown argument of GPUResourcesFit" in fields["args.bogus"].message
    with pytest.raises(ValidationError, match="maxWorkerPerNode"):
        parse_args({"maxWorkerPerNode": True})
    with pytest.raises(ValidationError, match="placementMode"):
        parse_args({"placementMode": "Random"})
    with pytest.raises(ValidationError, match="must be a mapping"):
        parse_args([1, 2])  # type: ignore[arg-type]
