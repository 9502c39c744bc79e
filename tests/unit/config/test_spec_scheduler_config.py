"""The spec's scheduler section, read from the spec itself when it is beside the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.unit.sched.fleet import GiB, fleet, framework
from tfcore.config.scheduler import parse_scheduler_config
from tfcore.sched import pod_request, rebuild_from_pods

SPEC = Path(__file__).resolve().parents[3].parent / "shared/reference/production-deployment.en.md"
FIXTURE = Path(__file__).resolve().parents[2] / "fixtures/scheduler-config.yaml"

pytestmark = pytest.mark.skipif(not SPEC.exists(), reason=f"the spec is not beside the repository at {SPEC}")


def _section() -> str:
    text = SPEC.read_text(encoding="utf-8")
    return text[text.index("## Review Scheduler Configuration") :]


def test_the_fixture_is_the_specs_document_verbatim() -> None:
    block = re.search(r"```yaml\n(.*?)```", _section(), re.DOTALL)
    assert block is not None
    assert FIXTURE.read_text(encoding="utf-8") == block[1]
    assert parse_scheduler_config(block[1]).profile.scheduler_name == "tensor-fusion-scheduler"


def test_the_specs_simulate_schedule_pod_is_placed_without_allocating() -> None:
    body = re.search(r"-d '(apiVersion: v1\n.*?)'", _section(), re.DOTALL)
    assert body is not None
    pod = yaml.safe_load(body[1])
    allocator = fleet(2, 2, tflops=312, vram_gib=80)
    before = allocator.state_fingerprint()
    result = framework(allocator).schedule(pod_request(pod), dry_run=True, diagnose=True)
    assert result.ok
    assert result.node == "node-0"
    assert result.gpus == ("gpu-0-0",)
    assert allocator.state_fingerprint() == before
    # placed for real, written on the pod and read back, it is the same allocation
    placed = framework(allocator).schedule(pod_request(pod))
    assert placed.allocation is not None
    assert placed.allocation.shares[0].vram == 16 * GiB
    pod["metadata"]["annotations"].update(placed.annotations())
    restarted = fleet(2, 2, tflops=312, vram_gib=80)
    assert rebuild_from_pods(restarted, [pod]).restored == [placed.allocation]
    assert restarted.state_fingerprint() == allocator.state_fingerprint()
