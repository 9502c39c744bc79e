from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from daemons.cli import main
from tests.unit.fleet import cluster
from tfcore.fleet import view
from tfcore.model.errors import ValidationError

NOW = datetime(2026, 3, 2, 1, 2, tzinfo=UTC)
POLICY = {
    "autoUpdate": True,
    "batchPercentage": 20,
    "batchInterval": "5m",
    "maxDuration": "10m",
    "maintenanceWindow": {"includes": ["1 1 * * *"]},
}
MANAGED = {
    "provisioningMode": "Karpenter",
    "nodeProvisioner": {
        "karpenterNodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "gpu", "version": "v1"},
        "gpuRequirements": [{"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["g6.xlarge"]}],
    },
}


def test_rollout_plan_picks_a_batch_inside_the_window() -> None:
    snap = view.Snapshot.of(cluster.rolling_fleet(10, policy=POLICY))
    [plan] = view.plan_rollouts(snap, NOW)
    assert plan.target == "bbb"
    assert plan.decision.action == "replace"
    assert plan.decision.nodes == ("gpu-0", "gpu-1")
    assert set(plan.pods) == {"gpu-0", "gpu-1"}
    [outside] = view.plan_rollouts(snap, NOW.replace(hour=5))
    assert outside.decision.action == "wait"


def test_capacity_plan_scales_to_min_then_counts_the_claims() -> None:
    objects = [cluster.pool(manager=MANAGED, capacityConfig={"minResources": {"tflops": "300"}})]
    objects += [cluster.node("gpu-0"), cluster.gpunode("gpu-0")]
    [plan] = view.plan_capacity(view.Snapshot.of(objects), NOW)
    summary = plan.summary()
    assert summary["provision"] == {
        "count": 2,
        "instanceType": "g6.xlarge",
        "capacityType": "on-demand",
        "hourlyCost": 1.6096,
    }
    claim = {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodeClaim",
        "metadata": {
            "name": "shared-0",
            "labels": {"tensor-fusion.ai/gpupool": "shared"},
            "annotations": {"tensor-fusion.ai/tflops-offered": "242", "tensor-fusion.ai/vram-offered": "48Gi"},
            "creationTimestamp": "2026-03-02T01:00:00Z",
        },
        "spec": {},
    }
    [again] = view.plan_capacity(view.Snapshot.of([*objects, claim]), NOW)
    assert again.summary()["provision"] is None
    [late] = view.plan_capacity(view.Snapshot.of([*objects, claim]), NOW.replace(hour=2))
    assert late.summary()["expire"] == ["shared-0"]
    assert late.summary()["provision"] is not None


def test_capacity_plan_compacts_an_empty_node_of_ours_with_a_landing_spot() -> None:
    claim = {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodeClaim",
        "metadata": {"name": "shared-0", "labels": {"tensor-fusion.ai/gpupool": "shared"}},
        "status": {"nodeName": "gpu-0"},
    }
    objects = [cluster.pool(manager=MANAGED), cluster.node("gpu-0"), cluster.gpunode("gpu-0"), cluster.node("cpu-0")]
    objects += [cluster.app_pod("web", "gpu-0")]
    [not_ours] = view.plan_capacity(view.Snapshot.of(objects), NOW)
    assert not_ours.summary()["compact"] == []  # no claim of ours brought it: not ours to remove
    [plan] = view.plan_capacity(view.Snapshot.of([*objects, claim]), NOW)
    assert plan.summary()["compact"] == ["gpu-0"]
    marked = cluster.app_pod("web", "gpu-0", **{"tensor-fusion.ai/do-not-disrupt": "true"})
    [kept] = view.plan_capacity(view.Snapshot.of([*objects[:-1], marked, claim]), NOW)
    assert kept.summary()["compact"] == []


def test_auto_select_pools_are_left_alone() -> None:
    [plan] = view.plan_capacity(view.Snapshot.of([cluster.pool()]), NOW)
    assert plan.summary()["provision"] is None
    assert "AutoSelect" in plan.reason


def test_cli_prints_one_json_object_per_pool(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state.yaml"
    state.write_text(
        yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": cluster.rolling_fleet(5, policy=POLICY)})
    )
    assert main(["rollout", "plan", "--cluster-state", str(state), "--at", "2026-03-02T01:02:00Z"]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert json.loads(line) == {
        "pool": "shared",
        "update": {"action": "replace", "nodes": ["gpu-0"], "revision": "bbb"},
        "client": {"action": "wait", "pods": [], "image": None},
        "reason": "batch of 1 (size 1); 4 node(s) left after it; client: no webhook --image found",
    }
    assert main(["capacity", "plan", "--cluster-state", str(state), "--at", "2026-03-02T01:02:00Z"]) == 0
    assert json.loads(capsys.readouterr().out)["pool"] == "shared"
    assert main(["rollout", "plan", "--cluster-state", str(state), "--at", "yesterday"]) == 2
    assert "--at" in capsys.readouterr().err


def test_bad_snapshot_names_the_document() -> None:
    with pytest.raises(ValidationError) as caught:
        view.load_snapshot("kind: Pod\nmetadata: {}\n", where="f.yaml")
    assert caught.value.problems[0].field == "f.yaml[0].metadata.name"


def test_an_invalid_pool_does_not_stop_the_others() -> None:
    objects = cluster.rolling_fleet(2, policy=POLICY)
    bad = cluster.pool("broken", policy={"batchPercentage": 500})
    [broken, shared] = view.plan_rollouts(view.Snapshot.of([*objects, bad]), NOW)
    assert broken.pool == "broken"
    assert "batchPercentage" in broken.decision.reason
    assert broken.target is None
    assert shared.decision.action == "replace"
    [broken_capacity, _] = view.plan_capacity(view.Snapshot.of([*objects, bad]), NOW)
    assert "invalid pool" in broken_capacity.reason
