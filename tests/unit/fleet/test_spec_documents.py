"""The spec's documents (production-deployment.en.md) drive the fleet planners as written."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.fleet import cluster
from tfcore.fleet import view
from tfcore.fleet.capacity import ScaleUp
from tfcore.fleet.catalogue import AWS
from tfcore.fleet.claims import karpenter_nodeclaim
from tfcore.fleet.requirements import offers
from tfcore.model.codec import decode
from tfcore.model.errors import ValidationError
from tfcore.model.pool import GPUPool

SPEC = Path(__file__).parents[2] / "fixtures" / "spec"
INSIDE = datetime(2026, 3, 2, 1, 2, tzinfo=UTC)  # the spec's window "1 1 * * *" (UTC)


def fleet_from(document: str, nodes: int = 5, **template_extra: Any) -> list[dict[str, Any]]:
    """The cluster document's first pool as a GPUPool, plus nodes and a hypervisor rollout pending."""
    doc = yaml.safe_load((SPEC / document).read_text(encoding="utf-8"))
    template = doc["spec"]["gpuPools"][0]["specTemplate"]
    template.update(template_extra)
    template.setdefault("nodeManagerConfig", {})["nodeSelector"] = {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}]
    }
    pool = {"apiVersion": "tensor-fusion.ai/v1", "kind": "GPUPool", "metadata": {"name": "shared"}, "spec": template}
    objects = [doc, pool, cluster.daemonset(), cluster.revision(1, "aaa"), cluster.revision(2, "bbb")]
    for i in range(nodes):
        objects += [cluster.node(f"gpu-{i}"), cluster.gpunode(f"gpu-{i}"), cluster.hypervisor_pod(f"gpu-{i}", "aaa")]
    return objects


def test_auto_update_disabled_never_replaces() -> None:
    [plan] = view.plan_rollouts(view.Snapshot.of(fleet_from("cluster-auto-update-disabled.yaml")), INSIDE)
    assert plan.decision.action == "disabled"
    assert not plan.pods


def test_auto_update_enabled_batches_inside_its_window_only() -> None:
    snap = view.Snapshot.of(fleet_from("cluster-auto-update-enabled.yaml", nodes=10))
    [plan] = view.plan_rollouts(snap, INSIDE)
    assert plan.decision.nodes == ("gpu-0", "gpu-1")  # 20% of 10
    [outside] = view.plan_rollouts(snap, INSIDE.replace(hour=3))
    assert outside.decision.action == "wait"
    assert "maintenance window" in outside.decision.reason


def test_karpenter_pool_asks_karpenter_for_nodes() -> None:
    objects = fleet_from("cluster-karpenter.yaml", nodes=1, capacityConfig={"minResources": {"tflops": "300"}})
    [plan] = view.plan_capacity(view.Snapshot.of(objects), INSIDE)
    assert plan.mode == "Karpenter"
    summary = plan.summary()
    assert summary["provision"] is not None
    pool = decode(objects[1], GPUPool)
    assert pool.spec
    assert pool.spec.node_manager_config
    provisioner = pool.spec.node_manager_config.node_provisioner
    assert provisioner is not None
    claim = karpenter_nodeclaim("shared-0", "shared", offers([], AWS)[0], provisioner, 0)
    assert claim["spec"]["nodeClassRef"]["kind"] == "EC2NodeClass"


def test_managed_nodepool_provisions_spot_l4_in_the_listed_zones() -> None:
    objects = fleet_from("cluster-managed-nodepool.yaml", nodes=0, capacityConfig={"warmResources": {"tflops": "100"}})
    [plan] = view.plan_capacity(view.Snapshot.of(objects), INSIDE)
    assert plan.mode == "Provisioned"
    assert plan.summary()["provision"] == {
        "count": 1,
        "instanceType": "g6.xlarge",
        "capacityType": "spot",
        "hourlyCost": 0.8048,
    }
    assert isinstance(plan.scale, ScaleUp)
    assert plan.scale.offer.zones == ("us-east-1b", "us-east-1c", "us-east-1d")
    assert plan.scale.offer.region == "us-east-1"


@given(st.text(max_size=200))
def test_snapshot_loader_only_raises_validation_errors(text: str) -> None:
    with contextlib.suppress(ValidationError):
        view.load_snapshot(text)
