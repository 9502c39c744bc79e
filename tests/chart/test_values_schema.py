"""values.schema.json: bad values fail `helm install/template` with a message naming the value."""

from __future__ import annotations

import pytest

from tests.chart.conftest import HelmFailed, Render

BAD_VALUES = [
    (("controller.replicaCount=two",), "controller.replicaCount: Invalid type. Expected: integer"),
    (("controller.replicaCount=0",), "controller.replicaCount: Must be greater than or equal to 1"),
    (("controller.replicaCont=2",), "controller: Additional property replicaCont is not allowed"),
    (("greptime.installStandalone=false",), "greptime.host: String length must be greater than or equal to 1"),
    (("greptime.port=70000",), "greptime.port: Must be less than or equal to 65535"),
    (("alert.persistence.size=lots",), "alert.persistence.size"),
    (("controller.resources.limits.memory=4 GB",), "controller.resources.limits.memory"),
    (("dynamicConfig.metricsTTL=30",), "dynamicConfig.metricsTTL: Invalid type. Expected: string"),
    (("dynamicConfig.metricsTTL=thirty days",), "dynamicConfig.metricsTTL: Does not match pattern"),
    (("dynamicConfig.metricsFormat=csv",), "dynamicConfig.metricsFormat: dynamicConfig.metricsFormat must be one of"),
    (("logLevel=verbose",), "logLevel: logLevel must be one of"),
    (("scheduler.logLevel=loud",), "scheduler.logLevel: scheduler.logLevel must be one of"),
    (("webhook.failurePolicy=Maybe",), "webhook.failurePolicy: webhook.failurePolicy must be one of"),
    (("scheduler.config.apiVersion=kubescheduler.config.k8s.io/v1beta3",), "scheduler.config.apiVersion"),
    (("hypervisor.stateDir=run/tf",), "hypervisor.stateDir: Does not match pattern"),
    (("hypervisor.tierDir=var/tier",), "hypervisor.tierDir: Does not match pattern"),
    (("hypervisor.tierMinFreeDisk=lots",), "hypervisor.tierMinFreeDisk: Does not match pattern"),
    (("alert.replicaCount=-1",), "alert.replicaCount: Must be greater than or equal to 1"),
]


@pytest.mark.parametrize(("sets", "message"), BAD_VALUES, ids=[s[0][0] for s in BAD_VALUES])
def test_bad_value_is_rejected_with_its_name(render: Render, sets: tuple[str, ...], message: str) -> None:
    with pytest.raises(HelmFailed) as failed:
        render(sets=sets)
    assert "values don't meet the specifications of the schema" in failed.value.stderr
    assert message in failed.value.stderr


def test_bad_alert_rule_is_rejected(render: Render) -> None:
    rule = {"name": "X", "query": "SELECT 1", "severity": "P1", "consecutiveCount": 0, "evaluationIntervall": "1m"}
    with pytest.raises(HelmFailed) as failed:
        render(values={"dynamicConfig": {"alertRules": [rule]}})
    assert "dynamicConfig.alertRules.0.consecutiveCount: Must be greater than or equal to 1" in failed.value.stderr
    assert "Additional property evaluationIntervall is not allowed" in failed.value.stderr


def test_scheduler_config_without_our_profile_is_rejected(render: Render) -> None:
    config = {
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "profiles": [{"schedulerName": "default-scheduler"}],
    }
    with pytest.raises(HelmFailed) as failed:
        render(values={"scheduler": {"config": config}})
    assert "scheduler.config.profiles" in failed.value.stderr


def test_missing_required_rule_field_is_rejected(render: Render) -> None:
    with pytest.raises(HelmFailed) as failed:
        render(values={"dynamicConfig": {"alertRules": [{"name": "X", "query": "SELECT 1"}]}})
    assert "severity is required" in failed.value.stderr
