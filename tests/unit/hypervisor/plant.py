"""A synthetic GPU for controller tests: launch cost -> GPU time, with lag and contention.

Each tenant wants `demand` of the GPU (0 idle, 1 flat out); its bucket lets through
rate / true_gain of it.  The GPU runs one kernel at a time, so when the admitted shares add
up to more than the GPU, everyone is slowed in proportion.  NVML reports the previous
period's utilization (one tick of lag), like the real and the simulated NVML.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from tfcore.hypervisor import GPUController, TenantCommand, TenantSample, TenantShare


@dataclass
class FakeTenant:
    share: TenantShare
    demand: float = 1.0
    true_gain: float = 5.0e10
    noise: float = 0.0  # relative noise on measured utilization
    rate: int = 0  # 0: unlimited
    reported: float | None = None
    reported_cost: float | None = None
    throttled: bool = False
    history: list[float] = field(default_factory=list)


class FakeGPU:
    def __init__(self, tenants: dict[str, FakeTenant], seed: int = 0) -> None:
        self.tenants = tenants
        self.random = random.Random(seed)
        self.device_utilization: float | None = None

    def run_period(self) -> None:
        allowed = {k: t.demand if t.rate == 0 else min(t.demand, t.rate / t.true_gain) for k, t in self.tenants.items()}
        total = sum(allowed.values())
        scale = 1.0 / total if total > 1.0 else 1.0
        self.device_utilization = min(1.0, total)
        for k, t in self.tenants.items():
            used = allowed[k] * scale
            t.throttled = t.rate != 0 and t.demand > t.rate / t.true_gain + 1e-9
            t.history.append(used)
            measured = used * (1.0 + self.random.gauss(0.0, t.noise)) if t.noise else used
            # Admitted work beyond the GPU queues (FIFO, as on the simulated GPU): the bucket
            # let `allowed` through, the GPU ran `used` of it.
            t.reported, t.reported_cost = max(0.0, measured), allowed[k] * t.true_gain

    def samples(self) -> list[TenantSample]:
        return [
            TenantSample(k, t.share, t.reported, t.reported_cost, t.throttled, launch_cost=1000.0)
            for k, t in self.tenants.items()
        ]

    def apply(self, commands: list[TenantCommand]) -> None:
        for c in commands:
            self.tenants[c.key].rate = c.rate


def run(gpu: FakeGPU, controller: GPUController, ticks: int, dt: float = 0.1) -> list[list[TenantCommand]]:
    """Closed loop: the controller sees last period's figures, the plant then runs a period."""
    log = []
    for _ in range(ticks):
        commands = controller.step(gpu.samples(), dt, gpu.device_utilization)
        gpu.apply(commands)
        gpu.run_period()
        log.append(commands)
    return log


def settling_ticks(history: list[float], target: float, tolerance: float = 0.02) -> int:
    """The first tick from which the series stays within tolerance of target."""
    for i in range(len(history)):
        if all(abs(v - target) <= tolerance for v in history[i:]):
            return i
    return len(history)
