"""Which VRAM expansion a node applies (tfcore.hypervisor.expansion): flags > its pool's
oversubscription > defaults, each with its basis, and what the pool's percentages come to."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tfcore.hypervisor.expansion import PoolExpansion, pool_expansion, resolve_expansion
from tfcore.hypervisor.tiering import OF_GPU, OF_HOST, TierSettings, tier_capacity
from tfcore.model.errors import ValidationError
from tfcore.sched.state import PoolInfo

GIB = 1 << 30
NODE = {"metadata": {"name": "n", "labels": {"tensor-fusion.ai/gpupool": "p"}}}


def pools(over: dict[str, Any] | None) -> dict[str, Any]:
    spec = {"capacityConfig": {"oversubscription": over}} if over is not None else {}
    return {"p": {"metadata": {"name": "p"}, "spec": spec}}


def test_a_pools_percentages_with_unset_fields_at_the_crd_defaults() -> None:
    assert pool_expansion(NODE, pools({"vramExpandToHostMem": 40})) == PoolExpansion(
        "p", 40, 70, "GPUPool/p", "default (GPUPool/p)"
    )
    assert pool_expansion(NODE, pools(None)) == PoolExpansion("p", 50, 70, "default (GPUPool/p)", "default (GPUPool/p)")


@pytest.mark.parametrize(
    "gpunode",
    [None, {"metadata": {"name": "n"}}, {"metadata": {"name": "n", "labels": {"tensor-fusion.ai/gpupool": "q"}}}],
)
def test_no_pool_means_none(gpunode: dict[str, Any] | None) -> None:
    assert pool_expansion(gpunode, pools({"vramExpandToHostMem": 40})) is None


def test_a_malformed_oversubscription_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError) as caught:
        pool_expansion(NODE, pools({"vramExpandToHostMem": 140}))
    assert "GPUPool/p.spec.capacityConfig.oversubscription" in str(caught.value)
    assert "vramExpandToHostMem" in str(caught.value)


def test_flags_win_per_tier_and_keep_their_gpu_basis() -> None:
    pool = PoolExpansion("p", 40, 20, "GPUPool/p", "GPUPool/p")
    got = resolve_expansion(30, None, pool, tier_dir="/tier")
    assert (got.mem_percent, got.mem_of, got.mem_source) == (30, OF_GPU, "--vram-expand-to-host-mem")
    assert (got.disk_percent, got.disk_of, got.disk_source) == (20, OF_HOST, "GPUPool/p")
    none = resolve_expansion(None, None, None, tier_dir="")
    assert (none.mem_percent, none.disk_percent, none.sources()) == (
        0,
        0,
        {"host_mem": "default", "host_disk": "default"},
    )


def test_a_pools_disk_tier_needs_a_tier_directory() -> None:
    got = resolve_expansion(None, None, PoolExpansion("p", 40, 70, "GPUPool/p", "GPUPool/p"), tier_dir="")
    assert (got.mem_percent, got.disk_percent) == (40, 0)
    assert got.disk_source == "GPUPool/p; no --tier-dir"
    got.applied_to(TierSettings())  # valid settings: no disk percentage without a directory


@given(
    mem=st.integers(0, 100),
    disk=st.integers(0, 100),
    gpus=st.integers(1, 8),
    ram=st.integers(0, 4096 * GIB),
    free=st.integers(0, 100_000 * GIB),
)
def test_a_node_with_room_backs_exactly_what_the_scheduler_sells_from_its_pool(
    mem: int, disk: int, gpus: int, ram: int, free: int
) -> None:
    """RAM x mem% + the reported disk (the tier directory's free space) x disk%, shared by the
    GPUs, as tfcore.sched sells it; never more than there is."""
    pool = PoolExpansion("p", mem, disk, "GPUPool/p", "GPUPool/p")
    settings = resolve_expansion(None, None, pool, tier_dir="/tier").applied_to(
        TierSettings(tier_dir="/tier", min_free_disk_bytes=0)
    )
    cap = tier_capacity(settings, 80 * GIB, gpus, ram_available=ram, ram_total=ram, disk_free=free)
    sold = PoolInfo("p", vram_expand_to_host_mem=mem, vram_expand_to_host_disk=disk)
    room = (ram - ram // 10) // gpus
    assert cap.host_bytes == min(ram // gpus * mem // 100, room)
    assert cap.disk_bytes == (free // gpus * disk // 100 if disk else 0)
    assert cap.host_bytes + cap.disk_bytes <= sold.host_vram_bytes(ram, free) // gpus + 1


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
KEYS = st.sampled_from(["vramExpandToHostMem", "vramExpandToHostDisk", "tflopsOversellRatio", "other"])


@given(over=st.dictionaries(KEYS, JSON, max_size=4) | JSON)
def test_any_oversubscription_decodes_or_is_refused_naming_the_pool(over: Any) -> None:
    pool = {"p": {"metadata": {"name": "p"}, "spec": {"capacityConfig": {"oversubscription": over}}}}
    problem = ""
    try:
        got = pool_expansion(NODE, pool)
    except ValidationError as exc:
        problem = str(exc)
    if problem:
        assert "GPUPool/p.spec.capacityConfig.oversubscription" in problem
        return
    assert got is not None
    assert 0 <= got.mem_percent <= 100
    assert 0 <= got.disk_percent <= 100
