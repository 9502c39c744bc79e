"""Compute sharing end to end on the simulated GPU: shares, limits, bursts, graph and
cooperative launches, hypervisor restart, and `tensor-fusion run` refusing what does not fit.

Targets are 2 points after 2 s of settling (bench/bench_hypervisor.py reports the exact
figures); the assertions allow 3 points, because the workloads and the node share two CPU
cores with whatever else the test run does, and a starved Python launcher cannot use its share.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.compute_node import CLI, LocalNode

TOLERANCE = 0.03
SETTLE = 2.0


def once_more_on_a_miss(test: Callable[..., None]) -> Callable[..., None]:
    """A scenario whose measured shares miss runs once more on the same node. The shares are
    measured by Python launchers on two cores shared with the rest of the run, and a launcher
    starved for a moment misses through no fault of the limiter; a real regression misses
    twice. bench/bench_hypervisor.py reports the exact figures."""

    @functools.wraps(test)
    def wrapper(*args: object, **kwargs: object) -> None:
        try:
            test(*args, **kwargs)
        except AssertionError:
            test(*args, **kwargs)

    return wrapper


@pytest.fixture
def node(tmp_path: Path) -> Iterator[LocalNode]:
    with LocalNode(tmp_path) as running:
        yield running.start()


@pytest.mark.parametrize(
    ("split", "settle"),
    [
        pytest.param([0.1, 0.9], SETTLE, id="10/90"),
        # Four controllers learning at once settle in up to ~4 s (bench_hypervisor's 25x4 figure):
        # measured after that, as the other cases are after theirs.
        pytest.param([0.25, 0.25, 0.25, 0.25], 4.0, id="25x4"),
    ],
)
@once_more_on_a_miss
def test_busy_tenants_get_their_shares(node: LocalNode, split: list[float], settle: float) -> None:
    busy = settle + 2.0
    tenants = node.run_together([(f"t{i}", share, share, f"busy:{busy}") for i, share in enumerate(split)])
    for tenant, share in zip(tenants, split, strict=True):
        assert tenant.share(settle, busy - 0.1) == pytest.approx(share, abs=TOLERANCE), tenant.name


@once_more_on_a_miss
def test_a_tenant_alone_is_held_to_its_limit(node: LocalNode) -> None:
    (alone,) = node.run_together([("alone", 0.1, 0.3, "busy:3.5")])
    assert alone.share(SETTLE, 3.4) == pytest.approx(0.3, abs=TOLERANCE)


@once_more_on_a_miss
def test_burst_while_the_other_idles_and_back_when_it_wakes(node: LocalNode) -> None:
    # a: 30% guaranteed, may burst to 80%; b: 50% guaranteed, limit 50%, idle for the first 3 s.
    a, b = node.run_together([("a", 0.3, 0.8, "busy:6.5"), ("b", 0.5, 0.5, "idle:3,busy:3.5")])
    assert a.share(1.5, 2.9) == pytest.approx(0.8, abs=TOLERANCE)
    # Both busy: b gets its 50%, a the rest (50%, within its limit).
    assert b.share(3 + SETTLE, 6.4) == pytest.approx(0.5, abs=TOLERANCE)
    assert a.share(3 + SETTLE, 6.4) == pytest.approx(0.5, abs=TOLERANCE)


@once_more_on_a_miss
def test_graph_and_cooperative_launches_are_limited(node: LocalNode) -> None:
    graph = node.run("graph", 0.3, 0.3, "busy:4", mode="graph")
    cooperative = node.run("coop", 0.7, 0.7, "busy:4", mode="cooperative")
    for tenant in (graph, cooperative):
        assert tenant.collect() == 0
    assert graph.share(SETTLE, 3.9) == pytest.approx(0.3, abs=TOLERANCE)
    assert cooperative.share(SETTLE, 3.9) == pytest.approx(0.7, abs=TOLERANCE)


def test_hypervisor_restart_loses_no_worker(node: LocalNode) -> None:
    tenant = node.run("steady", 0.2, 0.2, "busy:6")
    deadline = time.monotonic() + 30
    while not any(w["processes"] for w in node.get("/api/v1/workers")["workers"]):
        assert time.monotonic() < deadline, "the worker never started"
        time.sleep(0.05)
    before = node.get("/api/v1/workers")["workers"]
    assert node.stop() == 0
    node.start()
    after = node.get("/api/v1/workers")["workers"]
    assert [w["name"] for w in after] == ["steady"]
    assert after[0]["region"] == before[0]["region"]
    assert [p["pid"] for p in after[0]["processes"]] == [p["pid"] for p in before[0]["processes"]]
    assert tenant.collect() == 0
    # Held to its share across the restart, and released when it finished.
    assert tenant.share(SETTLE, 5.9) == pytest.approx(0.2, abs=TOLERANCE)
    assert node.get("/api/v1/workers")["workers"] == []  # `run` released it from the new node


def test_run_with_a_share_that_does_not_fit_names_what_is_short(node: LocalNode) -> None:
    result = subprocess.run(  # noqa: PLW1510 (the exit code is asserted)
        [*CLI, "run", "--tflops", "1200", "--vram", "100Gi", "--", sys.executable, "-c", "print('ran')"],
        env=node.env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "ran" not in result.stdout
    assert "compute: asked 1200 TFLOPS per GPU" in result.stderr
    assert "memory: asked 100Gi VRAM per GPU, the most free on one GPU is 80Gi" in result.stderr
    assert node.get("/api/v1/workers")["workers"] == []


def test_killing_run_releases_the_share(node: LocalNode) -> None:
    tenant = node.run("doomed", 0.5, 0.5, "busy:30")
    deadline = time.monotonic() + 30
    while not any(w["processes"] for w in node.get("/api/v1/workers")["workers"]):
        assert time.monotonic() < deadline, "the worker never started"
        time.sleep(0.05)
    tenant.process.kill()  # SIGKILL: `run` cannot clean up; the node must notice
    tenant.process.communicate()
    deadline = time.monotonic() + 5
    while node.get("/api/v1/workers")["workers"]:
        assert time.monotonic() < deadline, "the share was not released"
        time.sleep(0.05)
    assert node.get("/api/v1/devices")["devices"][0]["allocated"]["tflops_request_milli"] == 0
