"""The per-GPU controller on synthetic utilization traces (tests/unit/hypervisor/plant.py)."""

from __future__ import annotations

import pytest

from tests.unit.hypervisor.plant import FakeGPU, FakeTenant, run, settling_ticks
from tfcore.hypervisor import ControllerSettings, GPUController, TenantSample, TenantShare

TICK = 0.1
SETTLE_TICKS = 20  # 2 s at 100 ms


def _split(shares: list[tuple[float, float]], gains: list[float] | None = None) -> FakeGPU:
    gains = gains or [5.0e10] * len(shares)
    return FakeGPU(
        {
            f"t{i}": FakeTenant(TenantShare(req, lim), true_gain=g)
            for i, ((req, lim), g) in enumerate(zip(shares, gains, strict=True))
        }
    )


@pytest.mark.parametrize(
    ("shares", "expected"),
    [
        ([(0.1, 0.1), (0.9, 0.9)], [0.1, 0.9]),
        ([(0.3, 0.3), (0.7, 0.7)], [0.3, 0.7]),
        ([(0.25, 0.25)] * 4, [0.25] * 4),
        ([(0.1, 1.0), (0.3, 1.0)], [0.25, 0.75]),  # idle capacity split in proportion to requests
        ([(0.2, 0.4), (0.2, 0.3)], [0.4, 0.3]),  # both at their limits; the rest stays idle
    ],
)
def test_busy_tenants_converge_within_two_points_in_two_seconds(
    shares: list[tuple[float, float]], expected: list[float]
) -> None:
    # True gains 3x and 1/4 of the controller's prior: feed-forward must learn them.
    gpu = _split(shares, [1.5e11 if i % 2 else 1.25e10 for i in range(len(shares))])
    run(gpu, GPUController(), 60)
    for (name, tenant), target in zip(gpu.tenants.items(), expected, strict=True):
        assert abs(tenant.history[-1] - target) <= 0.02, (name, tenant.history[-10:])
        assert settling_ticks(tenant.history, target) <= SETTLE_TICKS, (name, tenant.history[:25])


def test_a_tenant_alone_is_held_to_its_limit() -> None:
    gpu = _split([(0.1, 0.3)])
    log = run(gpu, GPUController(), 40)
    assert abs(gpu.tenants["t0"].history[-1] - 0.3) <= 0.02
    assert max(gpu.tenants["t0"].history[SETTLE_TICKS:]) <= 0.32
    assert log[-1][0].target == pytest.approx(0.3)


def test_burst_while_others_idle_and_back_when_they_wake() -> None:
    gpu = _split([(0.3, 0.8), (0.5, 0.7)])
    b = gpu.tenants["t1"]
    b.demand = 0.0
    controller = GPUController()
    run(gpu, controller, 30)
    assert abs(gpu.tenants["t0"].history[-1] - 0.8) <= 0.02  # bursts to its limit
    b.demand = 1.0
    start = len(b.history)
    run(gpu, controller, 30)
    # the spare 0.2 is split by request: a gets 0.3 plus 3/8 of it (0.375), b 0.5 plus 5/8 (0.625)
    assert abs(gpu.tenants["t0"].history[-1] - 0.375) <= 0.02
    assert abs(b.history[-1] - 0.625) <= 0.02
    assert settling_ticks(b.history[start:], 0.625) <= SETTLE_TICKS
    # The woken tenant has its request from the first period on: tokens were kept for it.
    assert min(b.history[start + 2 :]) >= 0.5 * 0.95


def test_a_tenant_that_uses_less_than_its_request_leaves_the_rest_to_others() -> None:
    gpu = _split([(0.5, 0.5), (0.2, 1.0)])
    gpu.tenants["t0"].demand = 0.2
    run(gpu, GPUController(), 40)
    assert abs(gpu.tenants["t0"].history[-1] - 0.2) <= 0.02
    assert abs(gpu.tenants["t1"].history[-1] - 0.8) <= 0.02


def test_anti_windup_an_idle_tenant_does_not_accumulate_error() -> None:
    gpu = _split([(0.4, 0.4)])
    gpu.tenants["t0"].demand = 0.0
    controller = GPUController()
    run(gpu, controller, 50)
    gpu.tenants["t0"].demand = 1.0
    run(gpu, controller, 3)
    # No overshoot beyond the limit when it wakes after a long idle spell.
    assert max(gpu.tenants["t0"].history[-3:]) <= 0.4 + 0.02


def test_noisy_measurements_still_land_within_two_points() -> None:
    gpu = _split([(0.3, 0.3), (0.7, 0.7)])
    for tenant in gpu.tenants.values():
        tenant.noise = 0.03
    run(gpu, GPUController(), 80)
    for name, target in (("t0", 0.3), ("t1", 0.7)):
        tail = gpu.tenants[name].history[-20:]
        assert abs(sum(tail) / len(tail) - target) <= 0.02, (name, tail)


def test_oversold_requests_are_scaled_down_in_proportion() -> None:
    gpu = _split([(0.6, 0.6), (0.6, 0.6)])
    run(gpu, GPUController(), 40)
    assert [round(t.history[-1], 2) for t in gpu.tenants.values()] == [0.5, 0.5]


def test_rates_are_never_zero_because_zero_means_unlimited() -> None:
    controller = GPUController(ControllerSettings(initial_gain=1.0))
    commands = controller.step([TenantSample("a", TenantShare(0.0, 0.0), 0.0, 0.0, throttled=True)], TICK)
    assert commands[0].rate >= 1
    assert commands[0].burst >= 1


def test_departed_tenants_are_forgotten_and_new_ones_start_from_the_learned_gain() -> None:
    gpu = _split([(0.5, 0.5)], [2.0e11])
    controller = GPUController()
    run(gpu, controller, 10)
    learned = controller.tenants["t0"]
    assert learned == pytest.approx(2.0e11, rel=0.05)
    commands = controller.step([TenantSample("new", TenantShare(0.2, 0.2))], TICK)
    assert "t0" not in controller.tenants
    assert commands[0].gain == pytest.approx(learned)


def test_measured_says_when_a_tenant_has_its_own_gain() -> None:
    gpu = _split([(0.5, 0.5)])
    controller = GPUController()
    assert not controller.measured("t0")
    run(gpu, controller, 5)
    assert controller.measured("t0")
