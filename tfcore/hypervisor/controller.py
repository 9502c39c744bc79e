"""One GPU's compute controller: target shares by water-filling, refill rates by feedback.

Each tick the daemon hands in, per tenant, its request/limit share, its measured utilization
(NVML, the last complete sample period), the launch cost it was admitted over that same
period, and whether its launches had to wait (throttled: it wants more than it is given).
The controller answers each tenant's token-bucket refill rate in launch-cost units per
second.  Design (docs/hypervisor.md has the why):

- demand: a throttled tenant wants up to its limit; one that is not uses what it uses
  (plus a margin, so it can grow without first being throttled for long);
- targets: `water_fill` over the demands (requests guaranteed, the rest to busy tenants);
- feed-forward: the plant is launch cost -> GPU time.  Per tenant the controller learns the
  gain K = admitted cost per second / utilization (cost/s for the whole GPU), smoothed, and
  commands rate = K x command share, so a change of target is met in one step;
- feedback: a PI term on (target - measured) corrects what K cannot see (kernel mixes whose
  cost does not map linearly to time, contention).  Anti-windup: the integral only moves while
  the tenant is throttled (otherwise the error is missing demand, not a wrong rate) and it is
  clamped so the command stays within [0, limit + headroom];
- idle tenants keep at least their request's worth of tokens so they get it the moment they
  wake; the busy ones are cut back on the next tick.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from tfcore.hypervisor.shares import TenantShare
from tfcore.hypervisor.waterfill import Demand, water_fill


@dataclass(frozen=True, slots=True)
class ControllerSettings:
    kp: float = 0.3  # proportional gain (share per share of error)
    ki: float = 2.0  # integral gain (share per share-second of error)
    gain_smoothing: float = 0.3  # weight of a new sample in the gain's averages (EWMA)
    max_gain_step: float = 2.0  # one sample moves the gain by at most this factor
    gain_reset: float = 0.05  # a gain change beyond this fraction clears the integral
    saturation: float = 0.995  # device utilization from which the GPU counts as full
    min_utilization: float = 0.01  # below this a sample says nothing about the gain
    initial_gain: float = 5.0e10  # cost/s that fills a GPU, before anything is measured
    demand_margin: float = 0.03  # tokens above its use an unthrottled tenant may grow into
    busy_fraction: float = 0.05  # using all but this fraction of its tokens counts as busy
    integral_headroom: float = 0.2  # how far above its target the feedback may push a command
    burst_seconds: float = 0.005  # bucket depth in seconds of the tenant's rate
    capacity: float = 1.0  # the share of the GPU handed out in total


@dataclass(frozen=True, slots=True)
class TenantSample:
    key: str
    share: TenantShare
    utilization: float | None = None  # measured share of GPU time, None when no new sample
    cost_rate: float | None = None  # cost/s admitted over the utilization's period
    throttled: bool = False  # launches waited since the last tick
    launch_cost: float = 0.0  # mean cost of one launch lately (sizes the bucket)


@dataclass(frozen=True, slots=True)
class TenantCommand:
    key: str
    target: float  # share the tenant should get now
    command: float  # share the rate is computed for (target + feedback)
    rate: int  # refill, cost units per second (>= 1: 0 would mean unlimited)
    burst: int  # bucket depth, cost units
    busy: bool
    gain: float  # cost/s per whole GPU, as estimated for this tenant


@dataclass(slots=True)
class _Tenant:
    gain: float
    integral: float = 0.0
    demand: float = 0.0
    last_utilization: float = 0.0
    command: float = 0.0
    cost_avg: float = 0.0
    util_avg: float = 0.0
    was_throttled: bool = False
    measured: bool = False


@dataclass
class GPUController:
    settings: ControllerSettings = field(default_factory=ControllerSettings)
    _tenants: dict[str, _Tenant] = field(default_factory=dict)
    _gpu_gain: float = 0.0  # the last gain learned on this GPU: the prior of newcomers
    _saturated: bool = False

    @property
    def tenants(self) -> Mapping[str, float]:
        """Key -> learned gain (for the API and tests)."""
        return {k: t.gain for k, t in self._tenants.items()}

    def measured(self, key: str) -> bool:
        """Has the tenant's gain been learned from its own samples yet?"""
        tenant = self._tenants.get(key)
        return tenant is not None and tenant.measured

    def _prior_gain(self) -> float:
        measured = [t.gain for t in self._tenants.values() if t.measured]
        if measured:
            return sum(measured) / len(measured)
        return self._gpu_gain or self.settings.initial_gain

    def forget(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._tenants.pop(key, None)

    def step(
        self, samples: Iterable[TenantSample], dt: float, device_utilization: float | None = None
    ) -> list[TenantCommand]:
        """One tick.  device_utilization (the GPU's busy share over the last sample period)
        tells a saturated GPU: there, admitted work queues instead of running, so utilization
        understates what was admitted, and neither the gain nor the integral may grow on it."""
        s = self.settings
        samples = list(samples)
        self._saturated = device_utilization is not None and device_utilization >= s.saturation
        present = {x.key for x in samples}
        self.forget([k for k in self._tenants if k not in present])
        demands: dict[str, Demand] = {}
        busy: dict[str, bool] = {}
        for x in samples:
            tenant = self._tenants.get(x.key)
            if tenant is None:
                tenant = self._tenants[x.key] = _Tenant(gain=self._prior_gain(), demand=x.share.request)
            self._learn_gain(tenant, x)
            if x.utilization is not None:
                tenant.last_utilization = x.utilization
            # Busy: its bucket held it back, or it used (nearly) every token it had.
            near_tokens = x.utilization is not None and x.utilization >= tenant.command * (1.0 - s.busy_fraction)
            busy[x.key] = x.throttled or (near_tokens and tenant.command > 0)
            if busy[x.key]:
                tenant.demand = x.share.limit
            elif x.utilization is not None:
                tenant.demand = min(x.share.limit, x.utilization)
            demands[x.key] = Demand(x.share.request, x.share.limit, tenant.demand)
        targets = water_fill(demands, s.capacity)
        commands = [self._command(self._tenants[x.key], x, targets[x.key], busy[x.key], dt) for x in samples]
        return self._within_capacity(commands)

    def _within_capacity(self, commands: list[TenantCommand]) -> list[TenantCommand]:
        """Feedback may push busy tenants above their targets, but never the GPU as a whole
        above its capacity: an over-admitted GPU queues work, and queued work shows up in
        utilization late, which is what makes rate limiters oscillate."""
        total = sum(c.command for c in commands)
        excess = total - self.settings.capacity
        above = [c for c in commands if c.busy and c.command > c.target]
        room = sum(c.command - c.target for c in above)
        if excess <= 0 or room <= 0:
            return commands
        cut = min(1.0, excess / room)
        out = []
        for c in commands:
            if c.busy and c.command > c.target:
                command = c.command - (c.command - c.target) * cut
                self._tenants[c.key].command = command
                out.append(
                    TenantCommand(c.key, c.target, command, max(1, round(command * c.gain)), c.burst, c.busy, c.gain)
                )
            else:
                out.append(c)
        return out

    def _learn_gain(self, tenant: _Tenant, x: TenantSample) -> None:
        """Gain = smoothed cost rate / smoothed utilization (a ratio of averages, not an
        average of ratios, which small or lagging utilization samples would blow up).

        Only periods in which the tenant was held back by its bucket count: then what it was
        admitted is what its bucket allowed, a steady flow rather than a start-up burst.  On a
        saturated GPU admitted work queues, so cost / utilization overstates the gain by the
        over-admission factor: there the estimate may only lower the gain (which is exactly
        what drains the queue), never raise it.
        """
        s = self.settings
        steady = x.throttled and tenant.was_throttled
        tenant.was_throttled = x.throttled
        if not steady or x.utilization is None or x.cost_rate is None or x.utilization < s.min_utilization:
            return
        if tenant.util_avg <= 0:
            tenant.cost_avg, tenant.util_avg = x.cost_rate, x.utilization
        else:
            tenant.cost_avg += s.gain_smoothing * (x.cost_rate - tenant.cost_avg)
            tenant.util_avg += s.gain_smoothing * (x.utilization - tenant.util_avg)
        if tenant.cost_avg <= 0:
            return
        estimate = tenant.cost_avg / tenant.util_avg
        ceiling = tenant.gain if self._saturated else tenant.gain * s.max_gain_step
        previous, tenant.gain = tenant.gain, min(max(estimate, tenant.gain / s.max_gain_step), ceiling)
        if abs(tenant.gain / previous - 1.0) > s.gain_reset:
            # The error so far was the old gain's: the feed-forward now covers it.
            tenant.integral = 0.0
        tenant.measured = True
        self._gpu_gain = tenant.gain

    def _command(self, tenant: _Tenant, x: TenantSample, target: float, busy: bool, dt: float) -> TenantCommand:
        s = self.settings
        ceiling = min(1.0, x.share.limit + s.integral_headroom)
        if busy and x.utilization is not None:
            error = target - x.utilization
            proposed = tenant.integral + s.ki * error * dt
            if self._saturated:
                proposed = min(proposed, tenant.integral)  # a full GPU: asking for more only queues
            # Anti-windup: the integral alone may not push the command out of [0, ceiling].
            tenant.integral = min(max(proposed, -target), ceiling - target)
            command = target + s.kp * error + tenant.integral
        elif busy:
            command = target + tenant.integral
        else:
            # Not held back: tokens for what it uses plus a margin to grow into (using them
            # up makes it busy next tick), and at least its request so waking up is instant.
            # Tokens, not capacity: the water-fill gave busy tenants all this one leaves.
            command = min(x.share.limit, max(target + s.demand_margin, x.share.request))
        command = min(max(command, 0.0), ceiling)
        tenant.command = command
        rate = max(1, round(command * tenant.gain))
        burst = max(1, round(max(rate * s.burst_seconds, 2.0 * x.launch_cost)))
        return TenantCommand(x.key, target, command, rate, burst, busy, tenant.gain)
