"""GPU ratings, TFLOPS -> share conversion, placement errors, cost history."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tfcore.hypervisor import CostHistory, GPUModel, TenantShare, parse_tflops_overrides, rated_tflops, share_of
from tfcore.hypervisor.paths import default_state_dir
from tfcore.hypervisor.placement import DoesNotFit, LocalGPU, local_allocator, place
from tfcore.model.errors import ValidationError
from tfcore.sched import PodRequest

GIB = 1024**3


@pytest.mark.parametrize(
    ("name", "tflops"),
    [
        ("NVIDIA H100 80GB HBM3", 989.4),
        ("NVIDIA H100 80GB HBM3 (simulated)", 989.4),
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA H100 NVL", 835.0),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA L40S", 362.0),
        ("NVIDIA L4", 121.0),
        ("Tesla T4", 65.0),
        ("NVIDIA GeForce RTX 4090", 165.0),
    ],
)
def test_known_models_are_rated_by_their_most_specific_pattern(name: str, tflops: float) -> None:
    assert rated_tflops(name) == tflops


def test_unknown_models_are_none_and_overrides_win() -> None:
    assert rated_tflops("NVIDIA A1000") is None  # whole words: not an A100
    assert rated_tflops("Mystery GPU 9000") is None
    overrides = parse_tflops_overrides(["Mystery GPU=123.5", "H100=700"])
    assert overrides == (GPUModel("Mystery GPU", 123.5), GPUModel("H100", 700.0))
    assert rated_tflops("Mystery GPU 9000", overrides) == 123.5
    assert rated_tflops("NVIDIA H100 80GB HBM3", overrides) == 700.0


@pytest.mark.parametrize("bad", ["H100", "=5", "H100=", "H100=fast", "H100=0", "H100=-3"])
def test_bad_overrides_name_the_flag_and_the_form(bad: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_tflops_overrides(["L4=100", bad])
    (problem,) = caught.value.problems
    assert problem.field == "--gpu-tflops"
    assert "NAME=TFLOPS" in (problem.expected or "")


@given(st.text(max_size=40))
def test_override_parser_never_fails_other_than_by_validation_error(text: str) -> None:
    try:
        parsed = parse_tflops_overrides([text])
    except ValidationError:
        return
    assert parsed[0].tflops > 0


def test_shares_of_the_rated_tflops() -> None:
    assert share_of(98_940, 197_880, 989.4) == TenantShare(pytest.approx(0.1), pytest.approx(0.2))  # type: ignore[arg-type]
    assert share_of(100_000, 0, 100.0) == TenantShare(1.0, 1.0)  # no limit: the request is the limit
    assert share_of(0, 50_000, 100.0) == TenantShare(0.0, 0.5)  # best effort up to the limit
    assert share_of(0, 0, 100.0) == TenantShare(0.0, 1.0)  # best effort
    assert share_of(500_000, 900_000, 100.0) == TenantShare(1.0, 1.0)  # capped at the whole GPU


@pytest.mark.parametrize(
    ("request_milli", "limit_milli", "rated", "field"),
    [(200, 100, 1.0, "tflops"), (-1, 0, 1.0, "tflops"), (1, 1, 0.0, "rated_tflops")],
)
def test_bad_shares_are_refused(request_milli: int, limit_milli: int, rated: float, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        share_of(request_milli, limit_milli, rated)
    assert caught.value.problems[0].field == field


def _node() -> list[LocalGPU]:
    return [LocalGPU("GPU-a", 0, "H100", 989_400, 80 * GIB), LocalGPU("GPU-b", 1, "H100", 989_400, 80 * GIB)]


def test_placement_takes_the_least_loaded_gpus_and_refuses_with_what_is_short() -> None:
    allocator = local_allocator(_node())
    first = place(allocator, PodRequest(key="a", tflops=600_000, tflops_limit=600_000, vram=GIB, vram_limit=GIB))
    second = place(allocator, PodRequest(key="b", tflops=600_000, tflops_limit=600_000, vram=GIB, vram_limit=GIB))
    assert {first.gpu_ids, second.gpu_ids} == {("GPU-a",), ("GPU-b",)}
    with pytest.raises(DoesNotFit) as caught:
        place(allocator, PodRequest(key="c", tflops=500_000, vram=79 * GIB, vram_limit=79 * GIB))
    message = str(caught.value)
    assert "compute: asked 500 TFLOPS per GPU, the most free on one GPU is 389.4 TFLOPS" in message
    assert "memory" not in message
    with pytest.raises(DoesNotFit, match="asked for 3 GPU"):
        place(allocator, PodRequest(key="d", tflops=1, vram=1, gpu_count=3))
    allocator.release("a")
    assert place(allocator, PodRequest(key="c", tflops=300_000, vram=GIB)).gpu_ids == ("GPU-a",)


def test_cost_history_interpolates_the_rate_over_a_past_period() -> None:
    history = CostHistory()
    assert history.rate(0, 1) is None
    for t, cost in ((0.0, 0), (0.1, 100), (0.2, 300), (0.3, 300)):
        history.add(t, cost)
    assert history.rate(0.0, 0.2) == pytest.approx(1500)
    assert history.rate(0.05, 0.15) == pytest.approx(1500)  # half of each segment
    assert history.rate(0.2, 0.3) == 0
    assert history.rate(-0.1, 0.2) is None  # not covered
    assert history.latest_rate(0.2) == pytest.approx(1000)


def test_state_dir_defaults() -> None:
    assert str(default_state_dir({"TF_STATE_DIR": "/x"}, 1000)) == "/x"
    assert str(default_state_dir({}, 0)) == "/run/tensor-fusion"
    assert str(default_state_dir({"XDG_RUNTIME_DIR": "/run/user/7"}, 7)) == "/run/user/7/tensor-fusion"
    assert str(default_state_dir({}, 7)) == "/tmp/tensor-fusion-7"


def test_up_hands_its_options_to_the_hypervisor_unchanged() -> None:
    import argparse

    from daemons.hypervisor.options import add_node_arguments, node_argv

    parser = argparse.ArgumentParser()
    add_node_arguments(parser)
    given = ["--port", "0", "--state-dir", "/s", "--gpu-tflops", "A=1", "--gpu-tflops", "B C=2", "--simulate"]
    first = parser.parse_args(given)
    assert parser.parse_args(node_argv(first)) == first
