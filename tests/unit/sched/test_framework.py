from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.sched.fleet import fleet, framework, pod
from tfcore.model.errors import ValidationError
from tfcore.sched import (
    SUCCESS,
    Code,
    CycleState,
    Framework,
    PluginEntry,
    PluginUse,
    PodRequest,
    Status,
    default_registry,
)
from tfcore.sched.state import NodeState


def test_dry_run_reports_the_choice_and_allocates_nothing() -> None:
    allocator = fleet(3, 2)
    before = allocator.state_fingerprint()
    result = framework(allocator).schedule(pod("p"), dry_run=True, diagnose=True)
    assert result.ok
    assert result.dry_run
    assert result.node == "node-0"
    assert result.gpus == ("gpu-0-0",)
    assert result.gpu_indices == (0,)
    assert result.allocation is None
    assert allocator.allocations == {}
    assert allocator.state_fingerprint() == before


def test_schedule_allocates_and_is_idempotent() -> None:
    allocator = fleet(2, 2)
    fw = framework(allocator)
    first = fw.schedule(pod("p"))
    assert first.allocation is not None
    assert first.annotations() == {"tensor-fusion.ai/gpu-ids": first.gpus[0], "tensor-fusion.ai/index": "0"}
    again = fw.schedule(pod("p"))
    assert (again.node, again.gpus) == (first.node, first.gpus)
    assert len(allocator.allocations) == 1


def test_diagnosis_lists_before_and_after_per_plugin_and_stage() -> None:
    allocator = fleet(3, 1)
    allocator.allocate(pod("big", tflops=95), ["gpu-1-0"])
    allocator.set_gpu(replace(allocator.gpus["gpu-2-0"].spec, model="NVIDIA L4"))
    result = framework(allocator).schedule(pod("p", tflops=10, gpu_model="A100"), dry_run=True, diagnose=True)
    steps = {s.plugin: s for s in result.steps}
    assert steps["GPUResourcesFit/resource"].before == ("node-0", "node-1", "node-2")
    assert steps["GPUResourcesFit/resource"].after == ("node-0", "node-2")
    assert steps["GPUResourcesFit/model"].after == ("node-0",)
    assert steps["GPUResourcesFit"].after == ("node-0",)
    assert steps["GPUNetworkTopologyAware"].before == ("node-0",)
    assert result.rejected["node-1"].stage == "resource"
    assert "most free: 5 TFLOPS" in result.rejected["node-1"].reasons[0]
    assert result.rejected["node-2"].code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    out = result.to_builtins()
    assert out["node"] == "node-0"
    assert out["rejected"]["node-1"]["stage"] == "resource"


def test_unschedulable_pod_gets_a_summary_of_reasons() -> None:
    allocator = fleet(2, 1)
    result = framework(allocator).schedule(pod("p", tflops=500))
    assert result.status.code is Code.UNSCHEDULABLE
    assert result.status.reasons[0].startswith("0/2 nodes are available: 2 GPUResourcesFit/resource")
    assert set(result.rejected) == {"node-0", "node-1"}
    assert allocator.allocations == {}


def test_unknown_pool_fails_in_pre_filter() -> None:
    result = framework(fleet(1, 1)).schedule(pod("p", pool="nope"))
    assert result.status.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert result.status.plugin == "GPUResourcesFit"
    assert "nope" in result.status.reasons[0]


def test_candidate_nodes_limit_the_choice() -> None:
    allocator = fleet(3, 1)
    result = framework(allocator).schedule(pod("p"), nodes=["node-2", "unknown"])
    assert result.node == "node-2"


@dataclass
class FailingBinder:
    calls: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return "FailingBinder"

    def bind(self, state: CycleState, pod: PodRequest, node: NodeState) -> Status:
        self.calls.append(node.name)
        return Status.error(self.name, "API server said no")


def test_a_failed_bind_unreserves() -> None:
    allocator = fleet(1, 1)
    binder = FailingBinder()
    registry = default_registry()
    registry["FailingBinder"] = PluginEntry(lambda args, handle: binder, lambda raw, where: None, frozenset({"bind"}))
    fw = Framework(allocator, [PluginUse("GPUResourcesFit"), PluginUse("FailingBinder")], registry)
    result = fw.schedule(pod("p"))
    assert binder.calls == ["node-0"]
    assert result.status.code is Code.ERROR
    assert result.allocation is None
    assert allocator.allocations == {}
    assert allocator.gpus["gpu-0-0"].used_tflops == 0
    assert fw.schedule(pod("q"), dry_run=True).ok
    assert binder.calls == ["node-0"]


def test_unknown_plugin_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="unknown plugin"):
        Framework(fleet(1, 1), [PluginUse("Nope")], default_registry())


def test_extender_verbs() -> None:
    allocator = fleet(3, 1)
    allocator.allocate(pod("big", tflops=95), ["gpu-1-0"])
    fw = framework(allocator)
    state = CycleState()
    assert fw.run_pre_filters(state, pod("p")).ok
    verdicts = fw.filter_nodes(state, pod("p"), ["node-0", "node-1", "node-2", "cpu-node"])
    fits = [name for name, status in verdicts.items() if status.ok]
    failed = {name: status.message() for name, status in verdicts.items() if not status.ok}
    assert fits == ["node-0", "node-2"]
    assert failed["node-1"].startswith("GPUResourcesFit/resource:")
    assert "no GPUs managed" in failed["cpu-node"]
    scores = fw.prioritize(state, pod("p"), ["node-0", "node-1", "node-2"])
    assert scores["node-1"] > scores["node-0"] == scores["node-2"]
    bound = fw.reserve_on(pod("p"), "node-2")
    assert bound.ok
    assert bound.gpus == ("gpu-2-0",)
    assert "p" in allocator.allocations
    refused = fw.reserve_on(pod("q", tflops=10), "node-1")
    assert not refused.ok
    assert "q" not in allocator.allocations
    assert fw.forget("p") is not None
    assert "p" not in allocator.allocations


def test_status_helpers() -> None:
    assert SUCCESS.ok
    assert SUCCESS.code is Code.SUCCESS
    status = Status.unschedulable("Plugin", "why", "stage")
    assert status.message() == "Plugin/stage: why"
    assert status.to_builtins() == {"code": "Unschedulable", "plugin": "Plugin", "reasons": ["why"], "stage": "stage"}


def test_close_detaches_the_score_index() -> None:
    allocator = fleet(1, 1)
    fw = framework(allocator)
    fw.close()
    allocator.allocate(pod("p"), ["gpu-0-0"])  # no listener left to update
    assert not allocator._listeners


_VARIANTS = [
    {},
    {},
    {"gpu_model": "L4"},
    {"vendor": "NVIDIA"},
    {"dedicated": True},
    {"percent_ppm": 300_000, "percent_limit_ppm": 300_000},
    {"gpu_indices": frozenset({1, 2})},
    {"node_selector": {"zone": "b"}},
]


@given(
    fills=st.lists(
        st.tuples(st.integers(0, 5), st.integers(0, 3), st.integers(1, 60), st.integers(1, 30)), max_size=25
    ),
    requests=st.lists(
        st.tuples(st.integers(1, 80), st.integers(1, 40), st.sampled_from([1, 1, 1, 2]), st.sampled_from(_VARIANTS)),
        max_size=8,
    ),
    low_load=st.booleans(),
    topology=st.sampled_from(["none", "numa", "nvlink"]),
)
def test_fast_path_picks_what_the_full_scan_picks(
    fills: list[tuple[int, int, int, int]],
    requests: list[tuple[int, int, int, dict[str, Any]]],
    low_load: bool,
    topology: str,
) -> None:
    from tfcore.sched.plugins import GPUResourcesFitArgs
    from tfcore.sched.state import parse_nvlink_groups

    allocator = fleet(6, 4)
    for name in ("node-4", "node-5"):  # a second model and zone
        allocator.set_node(replace(allocator.nodes[name].spec, labels={"zone": "b"}))
        for device in list(allocator.nodes[name].gpus):
            allocator.set_gpu(replace(device.spec, model="NVIDIA L4"))
    if topology != "none":  # some nodes know their NUMA layout, one its NVLink domains
        for name in ("node-1", "node-3"):
            for device in list(allocator.nodes[name].gpus):
                allocator.set_gpu(replace(device.spec, numa_node=device.spec.index % 2))
    if topology == "nvlink":
        allocator.set_node(replace(allocator.nodes["node-2"].spec, nvlink_groups=parse_nvlink_groups("0,1;2,3")))
    args = GPUResourcesFitArgs(placement_mode="LowLoadFirst" if low_load else "NodeCompactGPULowLoad")
    fw = framework(allocator, args)
    for n, (node, gpu, tflops, vram) in enumerate(fills):
        request = pod(f"fill-{n}", tflops=tflops, vram_gib=vram)
        if allocator.check(request, [allocator.gpus[f"gpu-{node}-{gpu}"]]) is None:
            allocator.allocate(request, [f"gpu-{node}-{gpu}"])
    for n, (tflops, vram, count, variant) in enumerate(requests):
        request = pod(f"p-{n}", tflops=0 if "percent_ppm" in variant else tflops, vram_gib=vram, gpu_count=count)
        request = replace(request, **variant)
        full = fw.schedule(request, dry_run=True, diagnose=True)
        fast = fw.schedule(request)
        assert (fast.ok, fast.node, fast.gpus) == (full.ok, full.node, full.gpus)
    assert all(g.used_tflops <= g.virtual_tflops and g.used_vram <= g.virtual_vram for g in allocator.gpus.values())
