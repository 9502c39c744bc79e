"""The chart binds both admin APIs (scheduler, controller's scheduler-api) to the pod's loopback
unless exposed, and exposing one needs a bearer-token Secret; probes use their own port."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.conftest import HelmFailed, Render, container, find

SCHEDULER = "tensor-fusion-sys-scheduler"
CONTROLLER = "tensor-fusion-sys-controller"
CASES = [(SCHEDULER, "extender", "scheduler"), (CONTROLLER, "scheduler-api", "controller")]


def _flag(command: list[str], flag: str) -> str | None:
    return command[command.index(flag) + 1] if flag in command else None


def _service_ports(objects: list[dict[str, Any]], name: str) -> set[str]:
    return {p["name"] for p in find(objects, "Service", name)["spec"]["ports"]}


@pytest.mark.parametrize(("deployment", "name", "values"), CASES)
def test_admin_api_is_loopback_by_default_with_probes_on_their_own_port(
    render: Render, deployment: str, name: str, values: str
) -> None:
    objects = render()
    api = container(find(objects, "Deployment", deployment), name)
    assert _flag(api["command"], "--host") == "127.0.0.1"
    assert _flag(api["command"], "--health-host") == "0.0.0.0"
    assert "--admin-token-file" not in api["command"]
    probe_port = api["readinessProbe"]["httpGet"]["port"]
    declared = {p["name"]: p["containerPort"] for p in api["ports"]}
    assert declared[probe_port] == int(_flag(api["command"], "--health-port") or 0)
    assert api["livenessProbe"]["httpGet"]["port"] == probe_port
    assert "admin-api" not in _service_ports(objects, deployment)


@pytest.mark.parametrize(("deployment", "name", "values"), CASES)
def test_exposing_the_admin_api_needs_a_token_secret(render: Render, deployment: str, name: str, values: str) -> None:
    with pytest.raises(HelmFailed) as failed:
        render(sets=(f"{values}.adminApi.expose=true",))
    assert f"{values}.adminApi.tokenSecret is required" in failed.value.stderr
    objects = render(sets=(f"{values}.adminApi.expose=true", f"{values}.adminApi.tokenSecret=admin-token"))
    pod = find(objects, "Deployment", deployment)
    api = container(pod, name)
    assert _flag(api["command"], "--host") == "0.0.0.0"
    assert _flag(api["command"], "--admin-token-file") == "/etc/tensor-fusion-admin/token"
    mount = next(m for m in api["volumeMounts"] if m["name"] == "admin-token")
    assert mount["mountPath"] == "/etc/tensor-fusion-admin"
    volume = next(v for v in pod["spec"]["template"]["spec"]["volumes"] if v["name"] == "admin-token")
    assert volume["secret"]["secretName"] == "admin-token"
    assert "admin-api" in _service_ports(objects, deployment)
