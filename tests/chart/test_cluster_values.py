"""The guide's TensorFusionCluster blocks, given to the chart as cluster.pools, render valid objects."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.chart.conftest import Render, find
from tests.chart.validation import problems

SPEC_CLUSTERS = sorted((Path(__file__).resolve().parents[1] / "fixtures" / "spec").glob("cluster-*.yaml"))


@pytest.mark.parametrize("path", SPEC_CLUSTERS, ids=[p.stem for p in SPEC_CLUSTERS])
def test_spec_cluster_as_chart_values(render: Render, path: Path) -> None:
    cluster = yaml.safe_load(path.read_text(encoding="utf-8"))
    objects = render(values={"cluster": {"name": cluster["metadata"]["name"], "pools": cluster["spec"]["gpuPools"]}})
    rendered = find(objects, "TensorFusionCluster", cluster["metadata"]["name"])
    assert rendered["spec"]["gpuPools"] == cluster["spec"]["gpuPools"]
    assert problems(rendered) == []


def test_a_typo_in_a_pool_is_caught_by_the_crd_schema(render: Render) -> None:
    pools = [{"name": "shared", "isDefault": True, "specTemplate": {"capacityConfig": {"oversubscripton": {}}}}]
    rendered = find(render(values={"cluster": {"pools": pools}}), "TensorFusionCluster", "shared-cluster")
    assert any("oversubscripton" in problem for problem in problems(rendered))
