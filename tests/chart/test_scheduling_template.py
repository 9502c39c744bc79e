"""The chart's SchedulingConfigTemplate: the issue's freeze TTLs, named by the default pool,
readable by the hypervisors."""

from __future__ import annotations

from tests.chart.conftest import Render, find
from tests.chart.validation import problems
from tfcore.hypervisor.freezeconfig import resolve_freeze_ttls, scheduling_of, template_ttls

DAY, WEEK = 86400.0, 604800.0


def test_default_template_sets_the_issue_ttls_and_the_default_pool_names_it(render: Render) -> None:
    objects = render()
    template = find(objects, "SchedulingConfigTemplate", "default")
    assert problems(template) == []
    ttls = resolve_freeze_ttls({}, template_ttls(scheduling_of(template, where="chart")))
    assert ttls == {
        "low": (60.0, 3600.0),
        "medium": (120.0, 7200.0),
        "high": (DAY, WEEK),
        "critical": (None, None),
    }
    cluster = find(objects, "TensorFusionCluster", "shared-cluster")
    assert cluster["spec"]["gpuPools"][0]["specTemplate"]["schedulingConfigTemplate"] == "default"


def test_a_template_typo_is_caught_by_the_crd_schema(render: Render) -> None:
    spec = {"hypervisor": {"autoFreezeAndResume": {"autoFreeze": [{"qos": "low", "freezeToMemTTL": "soon"}]}}}
    template = find(render(values={"schedulingConfigTemplate": {"spec": spec}}), "SchedulingConfigTemplate", "default")
    assert any("freezeToMemTTL" in problem for problem in problems(template))


def test_hypervisors_may_read_their_pool_and_its_template(render: Render) -> None:
    role = find(render(), "ClusterRole", "tensor-fusion-sys-hypervisor")
    rule = next(r for r in role["rules"] if "schedulingconfigtemplates" in r["resources"])
    assert set(rule["resources"]) == {"gpupools", "schedulingconfigtemplates"}
    assert set(rule["verbs"]) == {"get", "list", "watch"}
