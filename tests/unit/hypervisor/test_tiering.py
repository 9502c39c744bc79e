"""The VRAM tiering policy (tfcore.hypervisor.tiering): TTLs, pressure, active workers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tfcore.hypervisor.tiering import (
    DEFAULT_FREEZE_TTLS,
    TierAction,
    TierCandidate,
    TierSettings,
    parse_duration,
    parse_freeze_ttl,
    plan_tiers,
    tier_capacity,
)
from tfcore.model.errors import ValidationError

GIB = 1 << 30
TIERED = TierSettings(expand_to_host_mem_percent=50, expand_to_host_disk_percent=70, tier_dir="/tier")


def cand(
    name: str,
    qos: str = "medium",
    idle: float = 0.0,
    *,
    active: bool = False,
    where: str = "device",
    resident: int = 10 * GIB,
    request: int = 10 * GIB,
    pending: bool = False,
    moved: int = 0,
) -> TierCandidate:
    return TierCandidate(name, qos, idle, active, where, resident, request, pending, moved)


def test_defaults_follow_the_spec() -> None:
    assert DEFAULT_FREEZE_TTLS == {
        "low": (60, 3600),
        "medium": (120, 7200),
        "high": (86400, 604800),
        "critical": (None, None),
    }


@pytest.mark.parametrize(
    ("qos", "idle", "where", "to"),
    [
        ("low", 59, "device", None),
        ("low", 60, "device", "host"),
        ("low", 3600, "host", "disk"),
        ("medium", 119, "device", None),
        ("medium", 120, "device", "host"),
        ("medium", 7200, "device", "disk"),
        ("high", 86399, "device", None),
        ("high", 86400, "device", "host"),
        ("high", 604800, "host", "disk"),
        ("critical", 10**9, "device", None),
        ("low", 60, "host", None),
        ("low", 4000, "disk", None),
    ],
)
def test_idle_workers_freeze_after_their_qos_ttls(qos: str, idle: float, where: str, to: str | None) -> None:
    actions = plan_tiers(80 * GIB, [cand("w", qos, idle, where=where)], TIERED)
    assert actions == ([TierAction("w", to, "ttl")] if to else [])


def test_no_tier_directory_means_no_disk() -> None:
    settings = TierSettings(expand_to_host_mem_percent=50)
    assert plan_tiers(80 * GIB, [cand("w", "low", 10**6, where="host")], settings) == []


def test_an_active_worker_is_never_moved_even_under_pressure() -> None:
    workers = [
        cand("busy", "low", active=True, resident=70 * GIB, request=70 * GIB),
        cand("idle", "critical", 5, resident=20 * GIB),
    ]
    assert plan_tiers(80 * GIB, workers, TIERED) == []  # critical never moves; busy is active


def test_pressure_freezes_lowest_qos_then_longest_idle_until_it_fits() -> None:
    workers = [
        cand("active", "low", active=True, resident=10 * GIB, request=40 * GIB),  # may grow to 40
        cand("high", "high", 30, resident=20 * GIB),
        cand("low-recent", "low", 5, resident=20 * GIB),
        cand("low-old", "low", 50, resident=20 * GIB),
    ]
    # need = 40 + 20 + 20 + 20 = 100 > 80: one 20 GiB idle worker must go, the lowest QoS and oldest.
    assert plan_tiers(80 * GIB, workers, TIERED) == [TierAction("low-old", "host", "pressure")]


def test_pending_requests_are_left_alone() -> None:
    assert plan_tiers(10 * GIB, [cand("w", "low", 10**5, pending=True)], TIERED) == []


def test_virtual_vram_sells_both_tiers_only_with_a_directory() -> None:
    assert TIERED.virtual_vram(80 * GIB) == 80 * GIB * 220 // 100
    assert TierSettings(expand_to_host_mem_percent=40).virtual_vram(80 * GIB) == 112 * GIB


def test_settings_reject_bad_values_naming_the_flag() -> None:
    with pytest.raises(ValidationError) as info:
        TierSettings(expand_to_host_mem_percent=-1, expand_to_host_disk_percent=20)
    assert [p.field for p in info.value.problems] == ["--vram-expand-to-host-mem", "--tier-dir"]


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("low=1m/1h", ("low", 60, 3600)),
        ("high=30s/never", ("high", 30, None)),
        ("critical=never/never", ("critical", None, None)),
    ],
)
def test_freeze_ttl_parses(text: str, parsed: tuple[str, float | None, float | None]) -> None:
    assert parse_freeze_ttl(text) == parsed


@pytest.mark.parametrize("text", ["low", "low=1m", "urgent=1m/1h", "low=1x/1h", "low=1h/1m", "low=-1m/1h", "=/"])
def test_freeze_ttl_rejects_bad_input_naming_the_flag(text: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_freeze_ttl(text)
    assert all(p.field == "--freeze-ttl" and p.expected for p in info.value.problems)


@given(st.text(max_size=20))
def test_freeze_ttl_parser_never_crashes(text: str) -> None:
    try:
        qos, mem, disk = parse_freeze_ttl(text)
    except ValidationError as exc:
        problems = exc.problems
    else:
        problems = []
        assert qos in DEFAULT_FREEZE_TTLS
        assert mem is None or mem >= 0
        assert disk is None or disk >= 0
    assert all(p.field == "--freeze-ttl" for p in problems)


@given(st.text(max_size=12))
def test_duration_parser_never_crashes(text: str) -> None:
    try:
        value = parse_duration(text, field="ttl")
    except ValidationError as exc:
        fields = [p.field for p in exc.problems]
        value = 0
    else:
        fields = ["ttl"]
    assert fields == ["ttl"]
    assert value is None or value >= 0


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["low", "medium", "high", "critical"]),
            st.integers(0, 10**6),
            st.booleans(),
            st.integers(0, 100),
            st.integers(0, 100),
        ),
        max_size=8,
    ),
    st.integers(1, 200),
)
def test_plans_never_touch_active_or_critical_workers(
    rows: list[tuple[str, int, bool, int, int]], physical_gib: int
) -> None:
    workers = [
        cand(f"w{i}", q, idle, active=a, resident=r * GIB, request=rq * GIB, moved=(r * GIB) // 2 if a else 0)
        for i, (q, idle, a, r, rq) in enumerate(rows)
    ]
    actions = plan_tiers(physical_gib * GIB, workers, TIERED)
    by_name = {w.name: w for w in workers}
    assert len({a.name for a in actions}) == len(actions)
    for action in actions:
        worker = by_name[action.name]
        if action.to == "resume":  # only active workers are brought back, and only into room
            assert worker.active
            assert worker.moved_bytes > 0
        else:  # freezes never touch an active or a critical worker
            assert not worker.active
            assert worker.qos != "critical"
    kept = sum(
        w.resident_bytes for w in workers if by_name[w.name].name not in {a.name for a in actions if a.to != "resume"}
    )
    back = sum(by_name[a.name].moved_bytes for a in actions if a.to == "resume")
    assert back == 0 or kept + back <= physical_gib * GIB


def capacity(settings: TierSettings, **machine: int) -> tuple[int, int, bool]:
    figures = {"ram_available": 512 * GIB, "ram_total": 1024 * GIB, "disk_free": 4000 * 10**9, **machine}
    cap = tier_capacity(settings, 80 * GIB, 8, **figures)
    return cap.host_bytes, cap.disk_bytes, cap.disk_ok


def test_capacity_sells_the_percentages_when_the_machine_has_room() -> None:
    assert capacity(TIERED) == (40 * GIB, 56 * GIB, True)


def test_host_tier_is_capped_by_available_ram_less_the_nodes_tenth() -> None:
    # 200 GiB available, 102.4 GiB kept for the node: ~12.2 GiB per GPU of the 8.
    host, _, _ = capacity(TIERED, ram_available=200 * GIB)
    assert host == (200 * GIB - 1024 * GIB // 10) // 8


def test_disk_tier_is_capped_by_free_space_and_refused_below_the_guidance() -> None:
    assert capacity(TIERED, disk_free=200 * 10**9)[1:] == (200 * 10**9 // 8, True)
    cap = tier_capacity(TIERED, 80 * GIB, 8, ram_available=512 * GIB, ram_total=1024 * GIB, disk_free=99 * 10**9)
    assert (cap.disk_bytes, cap.disk_ok) == (0, False)
    assert "99 GB free, below the 100 GB" in cap.message


def test_no_tier_directory_sells_no_disk_and_raises_nothing() -> None:
    assert capacity(TierSettings(expand_to_host_mem_percent=50), disk_free=0) == (40 * GIB, 0, True)


def test_an_active_worker_left_on_the_warm_tier_comes_back_when_there_is_room() -> None:
    partly = cand("back", active=True, resident=10 * GIB, request=30 * GIB, moved=20 * GIB)
    idle = cand("idle", "low", 5, resident=40 * GIB)
    # 10 + 20 moved + 40 idle = 70 <= 80: room now.
    assert plan_tiers(80 * GIB, [partly, idle], TIERED) == [TierAction("back", "resume", "room")]
    # A bigger idle neighbour: pressure moves it out first, then there is room.
    crowded = cand("idle", "low", 5, resident=60 * GIB)
    assert plan_tiers(80 * GIB, [partly, crowded], TIERED) == [
        TierAction("idle", "host", "pressure"),
        TierAction("back", "resume", "room"),
    ]
    # No room and nothing to move (critical neighbour): it stays on the warm tier.
    stuck = cand("idle", "critical", 5, resident=60 * GIB)
    assert plan_tiers(80 * GIB, [partly, stuck], TIERED) == []
