"""Water-filling of target shares: guarantees, limits, work conservation (property tests)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tfcore.hypervisor import Demand, water_fill

EPS = 1e-9


@st.composite
def tenants(draw: st.DrawFn) -> dict[str, Demand]:
    count = draw(st.integers(1, 8))
    out = {}
    for i in range(count):
        request = draw(st.floats(0, 1))
        limit = draw(st.floats(request, 1))
        demand = draw(st.floats(0, 1.5))
        out[f"t{i}"] = Demand(request, limit, demand)
    return out


@given(tenants())
def test_shares_respect_limits_demands_and_capacity(ts: dict[str, Demand]) -> None:
    shares = water_fill(ts)
    assert sum(shares.values()) <= 1 + EPS
    for key, d in ts.items():
        assert -EPS <= shares[key] <= min(d.limit, d.demand) + EPS


@given(tenants())
def test_requests_are_guaranteed_when_they_fit(ts: dict[str, Demand]) -> None:
    if sum(min(d.request, d.demand, d.limit) for d in ts.values()) > 1:
        return
    shares = water_fill(ts)
    for key, d in ts.items():
        assert shares[key] >= min(d.request, d.demand, d.limit) - EPS


@given(tenants())
def test_work_conserving(ts: dict[str, Demand]) -> None:
    shares = water_fill(ts)
    unsatisfied = [k for k, d in ts.items() if shares[k] < min(d.limit, d.demand) - 1e-6]
    if unsatisfied:
        assert sum(shares.values()) == pytest.approx(1.0, abs=1e-6)


def test_idle_capacity_goes_in_proportion_to_requests() -> None:
    shares = water_fill({"a": Demand(0.1, 1, 1), "b": Demand(0.3, 1, 1), "idle": Demand(0.4, 0.4, 0)})
    assert shares == {"a": pytest.approx(0.25), "b": pytest.approx(0.75), "idle": 0.0}


def test_oversold_guarantees_shrink_in_proportion() -> None:
    assert water_fill({"a": Demand(0.8, 1, 1), "b": Demand(0.4, 1, 1)}) == {
        "a": pytest.approx(2 / 3),
        "b": pytest.approx(1 / 3),
    }
