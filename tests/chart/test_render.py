"""The chart rendered by the real helm, as the docs install it, for every option the spec shows."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.conftest import CHART, NAMESPACE, SPEC, HelmFailed, Render, container, env, find, names
from tests.chart.validation import problems
from tfcore.config.dynamic import parse_dynamic_config
from tfcore.config.scheduler import parse_scheduler_config

CONTROLLER = "tensor-fusion-sys-controller"
CONFIG = "tensor-fusion-sys-config"
SCHEDULER = "tensor-fusion-sys-scheduler"


def spec_scheduler_values() -> dict[str, Any]:
    return {"scheduler": {"config": yaml.safe_load((SPEC / "scheduler-config.yaml").read_text(encoding="utf-8"))}}


# Every way the docs render the chart; each must produce only valid objects.
SCENARIOS: dict[str, dict[str, Any]] = {
    "default": {},
    "values-production": {"files": (CHART / "values-production.yaml",)},
    "spec-values-production": {"files": (SPEC / "values-production.yaml",)},
    "greptime-cloud": {"files": (SPEC / "greptime.yaml",)},
    "existing-alertmanager": {"files": (SPEC / "existing-alertmanager.yaml",)},
    "builtin-alertmanager": {"files": (SPEC / "builtin-alertmanager.yaml",)},
    "custom-alert-rules": {"files": (SPEC / "custom-alert-rules.yaml",)},
    "progressive-migration": {"files": (SPEC / "progressive-migration.yaml",)},
    "scheduler-config": {"values": spec_scheduler_values()},
    "cert-manager": {"sets": ("webhook.certManager.enabled=true",)},
    "everything-off": {
        "sets": (
            "alert.enabled=false",
            "hypervisor.enabled=false",
            "cluster.create=false",
            "schedulingConfigTemplate.create=false",
            "dashboards.enabled=false",
            "priorityClasses.create=false",
            "controller.adminApi.enabled=false",
            "greptime.installStandalone=false",
            "greptime.host=db.example.com",
        )
    },
}


def render_scenario(render: Render, name: str) -> list[dict[str, Any]]:
    scenario = SCENARIOS[name]
    return render(*scenario.get("files", ()), values=scenario.get("values"), sets=scenario.get("sets", ()))


def test_lint_strict(helm: Any) -> None:
    out = helm("lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in out
    out = helm("lint", "--strict", str(CHART), "-f", str(CHART / "values-production.yaml"))
    assert "0 chart(s) failed" in out


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_rendered_object_is_valid(render: Render, scenario: str) -> None:
    objects = render_scenario(render, scenario)
    found = [problem for obj in objects for problem in problems(obj)]
    assert found == []
    namespaced = [o for o in objects if o["kind"] not in CLUSTER_SCOPED]
    # One exception: kube-scheduler reads the API server's client CA from kube-system.
    elsewhere = [names([o])[0] for o in namespaced if o["metadata"].get("namespace") != NAMESPACE]
    assert elsewhere == ["RoleBinding/tensor-fusion-sys-scheduler-authentication-reader"]


CLUSTER_SCOPED = {
    "ClusterRole",
    "ClusterRoleBinding",
    "PriorityClass",
    "MutatingWebhookConfiguration",
    "TensorFusionCluster",
    "SchedulingConfigTemplate",
}


def test_the_names_the_docs_use(render: Render) -> None:
    objects = render()
    controller = find(objects, "Deployment", CONTROLLER)
    ports = {p["containerPort"] for c in controller["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
    assert 8080 in ports  # kubectl port-forward deployment/tensor-fusion-sys-controller 8080:8080
    api = container(controller, "scheduler-api")
    assert api["command"][:2] == ["tensor-fusion", "scheduler"]
    assert api["command"][api["command"].index("--port") + 1] == "8080"
    config = find(objects, "ConfigMap", CONFIG)
    assert set(config["data"]) == {"config.yaml", "scheduler-config.yaml"}
    for kind, name in [
        ("Deployment", SCHEDULER),
        ("Deployment", "tensor-fusion-sys-webhook"),
        ("Service", "tensor-fusion-sys-webhook"),
        ("MutatingWebhookConfiguration", "tensor-fusion-sys-webhook"),
        ("DaemonSet", "tensor-fusion-sys-hypervisor"),
        ("StatefulSet", "tensor-fusion-sys-alert-manager"),
        ("StatefulSet", "tensor-fusion-sys-greptime"),
        ("PriorityClass", "tensor-fusion-sys-control-plane"),
        ("PriorityClass", "tensor-fusion-sys-node"),
        ("ConfigMap", "tensor-fusion-sys-dashboards"),
    ]:
        find(objects, kind, name)


def test_defaults_are_single_node(render: Render) -> None:
    objects = render()
    controller = find(objects, "Deployment", CONTROLLER)
    assert controller["spec"]["replicas"] == 1
    command = container(controller, "controller")["command"]
    assert command[:3] == ["/manager", "-metrics-bind-address", ":9000"]
    assert "-leader-elect" in command
    addr = command[command.index("-alert-manager-addr") + 1]
    assert addr == f"tensor-fusion-sys-alert-manager.{NAMESPACE}.svc.cluster.local:9093"
    assert find(objects, "StatefulSet", "tensor-fusion-sys-alert-manager")["spec"]["replicas"] == 1
    greptime_env = env(container(controller, "controller"))
    assert greptime_env["TF_GREPTIME_HOST"] == f"tensor-fusion-sys-greptime.{NAMESPACE}.svc.cluster.local"
    assert "TF_GREPTIME_PASSWORD" not in greptime_env
    assert not [o for o in objects if o["kind"] == "PodDisruptionBudget"]
    assert not [o for o in objects if o["kind"] == "Secret" and "greptime" in o["metadata"]["name"]]


def test_default_dynamic_config_is_the_builtin_rules(render: Render) -> None:
    config = find(render(), "ConfigMap", CONFIG)["data"]
    document = yaml.safe_load(config["config.yaml"])
    builtin = yaml.safe_load((CHART / "alert-rules.yaml").read_text(encoding="utf-8"))["alertRules"]
    assert document["alertRules"] == builtin
    parsed = parse_dynamic_config(config["config.yaml"])
    assert [r.name for r in parsed.alert_rules] == [r["name"] for r in builtin]
    assert parsed.metrics_ttl.days == 30


def test_default_scheduler_config_parses(render: Render) -> None:
    config = find(render(), "ConfigMap", CONFIG)["data"]
    parsed = parse_scheduler_config(config["scheduler-config.yaml"])
    assert parsed is not None


def test_production_values_from_the_spec(render: Render) -> None:
    objects = render(SPEC / "values-production.yaml")
    controller = find(objects, "Deployment", CONTROLLER)
    assert controller["spec"]["replicas"] == 2
    assert container(controller, "controller")["resources"] == {
        "requests": {"memory": "1Gi", "cpu": "1000m"},
        "limits": {"memory": "4Gi", "cpu": "4000m"},
    }
    assert "-leader-elect" in container(controller, "controller")["command"]
    assert find(objects, "PodDisruptionBudget", CONTROLLER)["spec"]["minAvailable"] == 1
    anti = controller["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert anti["preferredDuringSchedulingIgnoredDuringExecution"]
    alert = find(objects, "StatefulSet", "tensor-fusion-sys-alert-manager")
    assert alert["spec"]["replicas"] == 3
    assert alert["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert container(alert, "alertmanager")["resources"]["limits"] == {"memory": "1Gi", "cpu": "2000m"}
    peers = [a for a in container(alert, "alertmanager")["args"] if a.startswith("--cluster.peer=")]
    assert len(peers) == 3
    assert not [o for o in objects if o["metadata"]["name"] == "tensor-fusion-sys-greptime" and o["kind"] != "Secret"]
    greptime = env(container(controller, "controller"))
    assert greptime["TF_GREPTIME_HOST"] == "<db-instance>.us-west-2.aws.greptime.cloud"
    assert greptime["TF_GREPTIME_PORT"] == "5001"
    assert greptime["TF_GREPTIME_USER"] == "username"
    assert greptime["TF_GREPTIME_DB"] == "db-id-public"
    assert greptime["TF_GREPTIME_IS_CLOUD"] == "true"
    assert greptime["TF_GREPTIME_PASSWORD"] == {
        "secretKeyRef": {"name": "tensor-fusion-sys-greptime", "key": "password"}
    }
    secret = find(objects, "Secret", "tensor-fusion-sys-greptime")
    assert base64.b64decode(secret["data"]["password"]) == b"your-own-password"


def test_chart_production_file_holds_the_spec_values(render: Render) -> None:
    ours = render(CHART / "values-production.yaml")
    spec = render(SPEC / "values-production.yaml")
    for kind, name in [
        ("Deployment", CONTROLLER),
        ("StatefulSet", "tensor-fusion-sys-alert-manager"),
        ("Secret", "tensor-fusion-sys-greptime"),
    ]:
        assert find(ours, kind, name) == find(spec, kind, name)


def test_the_password_is_never_in_a_configmap(render: Render) -> None:
    for objects in (render(SPEC / "values-production.yaml"), render(sets=("greptime.password=s3cr3t-pw",))):
        text = json.dumps([o for o in objects if o["kind"] == "ConfigMap"])
        assert "your-own-password" not in text
        assert "s3cr3t-pw" not in text
        pods = json.dumps([o["spec"].get("template") for o in objects if o["kind"] in {"Deployment", "DaemonSet"}])
        assert "your-own-password" not in pods
        assert "s3cr3t-pw" not in pods


def test_existing_secret_is_used_and_no_secret_rendered(render: Render) -> None:
    objects = render(
        values={
            "greptime": {
                "installStandalone": False,
                "host": "db.internal",
                "existingSecret": "gt",
                "existingSecretKey": "pw",
            }
        }
    )
    assert not [o for o in objects if o["kind"] == "Secret" and "greptime" in o["metadata"]["name"]]
    for name in (CONTROLLER,):
        pod_env = env(container(find(objects, "Deployment", name), "controller"))
        assert pod_env["TF_GREPTIME_PASSWORD"] == {"secretKeyRef": {"name": "gt", "key": "pw"}}
    hypervisor_env = env(container(find(objects, "DaemonSet", "tensor-fusion-sys-hypervisor"), "hypervisor"))
    assert hypervisor_env["TF_GREPTIME_PASSWORD"] == {"secretKeyRef": {"name": "gt", "key": "pw"}}


def test_existing_alertmanager_uses_the_command_verbatim(render: Render) -> None:
    objects = render(SPEC / "existing-alertmanager.yaml")
    values = yaml.safe_load((SPEC / "existing-alertmanager.yaml").read_text(encoding="utf-8"))
    command = container(find(objects, "Deployment", CONTROLLER), "controller")["command"]
    assert command == values["controller"]["command"]
    assert not [o for o in objects if "alert-manager" in o["metadata"]["name"]]


def test_builtin_alertmanager_config_from_the_spec(render: Render, tmp_path: Path) -> None:
    objects = render(SPEC / "builtin-alertmanager.yaml")
    secret = find(objects, "Secret", "tensor-fusion-sys-alert-manager-config")
    config = yaml.safe_load(secret["stringData"]["alertmanager.yml"])
    assert config["receivers"] == [{"name": "default-receiver"}]
    assert config["route"]["receiver"] == "default-receiver"  # the docs' `route: {}` needs one
    assert not [o for o in objects if o["kind"] == "ConfigMap" and "alertmanager.yml" in o.get("data", {})]
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool not installed (apt-get install prometheus-alertmanager) to check the config for real")
    path = tmp_path / "alertmanager.yml"
    path.write_text(secret["stringData"]["alertmanager.yml"], encoding="utf-8")
    done = subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_progressive_migration_rolls_the_hypervisors(render: Render) -> None:
    before = find(render(), "DaemonSet", "tensor-fusion-sys-hypervisor")
    after = find(render(SPEC / "progressive-migration.yaml"), "DaemonSet", "tensor-fusion-sys-hypervisor")
    assert env(container(before, "hypervisor"))["TF_NVIDIA_OPERATOR_PROGRESSIVE_MIGRATION"] == "false"
    assert env(container(after, "hypervisor"))["TF_NVIDIA_OPERATOR_PROGRESSIVE_MIGRATION"] == "true"
    assert before["spec"]["template"] != after["spec"]["template"]  # a template change restarts every pod


def test_custom_alert_rules_from_the_spec(render: Render) -> None:
    config = find(render(SPEC / "custom-alert-rules.yaml"), "ConfigMap", CONFIG)["data"]["config.yaml"]
    values = yaml.safe_load((SPEC / "custom-alert-rules.yaml").read_text(encoding="utf-8"))["dynamicConfig"]
    assert yaml.safe_load(config)["alertRules"] == values["alertRules"]
    assert "{{ .Conditions }}" in config  # Helm must not expand the rule templates
    parsed = parse_dynamic_config(config)
    assert sorted(r.name for r in parsed.alert_rules) == ["My Special Alert", "WatchDog"]


def test_scheduler_config_from_the_spec(render: Render) -> None:
    spec_text = (SPEC / "scheduler-config.yaml").read_text(encoding="utf-8")
    objects = render(values=spec_scheduler_values())
    rendered = find(objects, "ConfigMap", CONFIG)["data"]["scheduler-config.yaml"]
    assert yaml.safe_load(rendered) == yaml.safe_load(spec_text)
    assert parse_scheduler_config(rendered) == parse_scheduler_config(spec_text)


def test_scheduler_config_change_rolls_the_scheduler(render: Render) -> None:
    base = find(render(), "Deployment", SCHEDULER)["spec"]["template"]["metadata"]["annotations"]
    values = spec_scheduler_values()
    values["scheduler"]["config"]["profiles"][0]["pluginConfig"][0]["args"]["maxWorkerPerNode"] = 64
    changed = find(render(values=values), "Deployment", SCHEDULER)["spec"]["template"]["metadata"]["annotations"]
    assert base["checksum/scheduler-config"] != changed["checksum/scheduler-config"]


def test_kube_scheduler_gets_the_derived_config(render: Render, tmp_path: Path) -> None:
    """Run the init container's script for real (paths moved to tmp) with our CLI."""
    objects = render(values=spec_scheduler_values())
    deployment = find(objects, "Deployment", SCHEDULER)
    kube = container(deployment, "kube-scheduler")
    assert kube["image"].startswith("registry.k8s.io/kube-scheduler:")
    assert kube["command"][:2] == ["kube-scheduler", "--config=/etc/kube-scheduler/config.yaml"]
    extender = container(deployment, "extender")["command"]
    assert extender[extender.index("--extender-host") + 1] == "127.0.0.1"
    script = container(deployment, "kube-scheduler-config")["command"][2]
    (tmp_path / "tf").mkdir()
    (tmp_path / "ks").mkdir()
    config = find(objects, "ConfigMap", CONFIG)["data"]["scheduler-config.yaml"]
    (tmp_path / "tf" / "scheduler-config.yaml").write_text(config, encoding="utf-8")
    script = script.replace("/etc/tensor-fusion", str(tmp_path / "tf"))
    script = script.replace("/etc/kube-scheduler", str(tmp_path / "ks"))
    bin_dir = str(Path(sys.executable).parent)
    done = subprocess.run(
        ["sh", "-ec", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    document = yaml.safe_load((tmp_path / "ks" / "config.yaml").read_text(encoding="utf-8"))
    assert document["kind"] == "KubeSchedulerConfiguration"
    assert [p["schedulerName"] for p in document["profiles"]] == ["tensor-fusion-scheduler"]
    assert document["extenders"][0]["urlPrefix"] == "http://127.0.0.1:8090"
    assert document["extenders"][0]["bindVerb"] == "bind"
    assert document["leaderElection"] == {
        "leaderElect": True,
        "resourceNamespace": NAMESPACE,
        "resourceName": SCHEDULER,
    }
    plugin_names = [c["name"] for c in document["profiles"][0].get("pluginConfig", [])]
    assert "GPUResourcesFit" not in plugin_names  # stock kube-scheduler refuses unknown plugins
    assert "NodeResourcesFit" in plugin_names


def test_log_level_per_component(render: Render) -> None:
    objects = render(sets=("scheduler.logLevel=debug", "logLevel=warn"))
    assert env(container(find(objects, "Deployment", SCHEDULER), "extender"))["TF_LOG_LEVEL"] == "debug"
    assert env(container(find(objects, "Deployment", CONTROLLER), "controller"))["TF_LOG_LEVEL"] == "warn"
    webhook = find(objects, "Deployment", "tensor-fusion-sys-webhook")
    assert env(container(webhook, "webhook"))["TF_LOG_LEVEL"] == "warn"


def test_webhook_certificate_matches_its_service(render: Render, tmp_path: Path) -> None:
    objects = render()
    secret = find(objects, "Secret", "tensor-fusion-sys-webhook-tls")
    hook = find(objects, "MutatingWebhookConfiguration", "tensor-fusion-sys-webhook")["webhooks"][0]
    assert hook["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
    assert hook["clientConfig"]["service"] == {
        "namespace": NAMESPACE,
        "name": "tensor-fusion-sys-webhook",
        "path": "/mutate-v1-pod",
        "port": 443,
    }
    assert hook["objectSelector"] == {"matchLabels": {"tensor-fusion.ai/enabled": "true"}}
    assert hook["failurePolicy"] == "Fail"
    assert NAMESPACE in hook["namespaceSelector"]["matchExpressions"][0]["values"]
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl not installed to verify the generated certificate chain")
    (tmp_path / "ca.pem").write_bytes(base64.b64decode(secret["data"]["ca.crt"]))
    (tmp_path / "tls.pem").write_bytes(base64.b64decode(secret["data"]["tls.crt"]))
    verify = subprocess.run(
        [openssl, "verify", "-CAfile", str(tmp_path / "ca.pem"), str(tmp_path / "tls.pem")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert verify.returncode == 0, verify.stderr
    text = subprocess.run(
        [openssl, "x509", "-noout", "-ext", "subjectAltName", "-in", str(tmp_path / "tls.pem")],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert f"DNS:tensor-fusion-sys-webhook.{NAMESPACE}.svc" in text


def test_cert_manager_mode(render: Render) -> None:
    objects = render(sets=("webhook.certManager.enabled=true",))
    certificate = find(objects, "Certificate", "tensor-fusion-sys-webhook")
    assert certificate["spec"]["secretName"] == "tensor-fusion-sys-webhook-tls"
    hook = find(objects, "MutatingWebhookConfiguration", "tensor-fusion-sys-webhook")
    assert hook["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == f"{NAMESPACE}/tensor-fusion-sys-webhook"
    assert "caBundle" not in hook["webhooks"][0]["clientConfig"]
    assert not [o for o in objects if o["kind"] == "Secret" and o["metadata"]["name"].endswith("webhook-tls")]


def test_default_cluster_has_the_shared_pool(render: Render) -> None:
    cluster = find(render(), "TensorFusionCluster", "shared-cluster")
    pools = cluster["spec"]["gpuPools"]
    assert [(p["name"], p["isDefault"]) for p in pools] == [("shared", True)]


def test_dashboard_configmap_is_the_dashboard(render: Render) -> None:
    dashboards = find(render(), "ConfigMap", "tensor-fusion-sys-dashboards")
    assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads((CHART / "dashboards" / "tensor-fusion.json").read_text(encoding="utf-8"))
    assert json.loads(dashboards["data"]["tensor-fusion.json"]) == shipped


def test_least_privilege_rbac(render: Render) -> None:
    objects = render()
    roles = [o for o in objects if o["kind"] in {"ClusterRole", "Role"}]
    for role in roles:
        for rule in role["rules"]:
            assert "*" not in rule["verbs"], role["metadata"]["name"]
            assert "*" not in rule["resources"], role["metadata"]["name"]
            assert "secrets" not in rule["resources"], role["metadata"]["name"]
    webhook = find(objects, "ClusterRole", "tensor-fusion-sys-webhook")
    assert all(set(rule["verbs"]) <= {"get", "list", "watch"} for rule in webhook["rules"])
    bindings = [o for o in objects if o["kind"] in {"ClusterRoleBinding", "RoleBinding"}]
    assert all(s["namespace"] == NAMESPACE for b in bindings for s in b["subjects"])
    assert not any(b["roleRef"]["name"] == "cluster-admin" for b in bindings)


def test_names_follow_the_release(render: Render) -> None:
    objects = render(sets=("fullnameOverride=tf",))
    assert "Deployment/tf-controller" in names(objects)
    assert "ConfigMap/tf-config" in names(objects)


def test_probes_follow_the_metrics_address_of_the_command(render: Render) -> None:
    objects = render(values={"controller": {"command": ["/manager", "-metrics-bind-address=:9100", "-leader-elect"]}})
    controller = container(find(objects, "Deployment", CONTROLLER), "controller")
    assert controller["ports"] == [{"name": "metrics", "containerPort": 9100, "protocol": "TCP"}]
    assert controller["livenessProbe"]["httpGet"]["port"] == "metrics"


@pytest.mark.parametrize(
    ("address", "message"),
    [(":8080", "the metrics port 8080 is also controller.adminApi.port"), ("0", "needs a port for the probes")],
)
def test_unusable_metrics_address_is_refused(render: Render, address: str, message: str) -> None:
    with pytest.raises(HelmFailed) as failed:
        render(values={"controller": {"command": ["/manager", "-metrics-bind-address", address]}})
    assert message in failed.value.stderr


def test_webhook_mounts_the_hypervisors_region_directory(render: Render) -> None:
    objects = render(sets=("hypervisor.stateDir=/var/lib/tf",))
    webhook = container(find(objects, "Deployment", "tensor-fusion-sys-webhook"), "webhook")["command"]
    hypervisor = container(find(objects, "DaemonSet", "tensor-fusion-sys-hypervisor"), "hypervisor")["command"]
    state_dir = hypervisor[hypervisor.index("--state-dir") + 1]
    assert webhook[webhook.index("--region-host-dir") + 1] == f"{state_dir}/workers"


def test_progressive_migration_routes_native_gpu_pods_through_a_fail_open_webhook(render: Render) -> None:
    def webhooks(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        config = find(objects, "MutatingWebhookConfiguration", "tensor-fusion-sys-webhook")
        return {w["name"]: w for w in config["webhooks"]}

    assert list(webhooks(render())) == ["pod.admission.tensor-fusion.ai"]
    objects = render(SPEC / "progressive-migration.yaml")
    found = webhooks(objects)
    ours, native = found["pod.admission.tensor-fusion.ai"], found["native-gpu-pod.admission.tensor-fusion.ai"]
    assert ours["failurePolicy"] == "Fail"
    assert native["failurePolicy"] == "Ignore"
    assert native["objectSelector"]["matchExpressions"] == [
        {"key": "tensor-fusion.ai/enabled", "operator": "NotIn", "values": ["true"]}
    ]
    assert "nvidia.com/gpu" in native["matchConditions"][0]["expression"]
    assert native["clientConfig"] == ours["clientConfig"]
    webhook = container(find(objects, "Deployment", "tensor-fusion-sys-webhook"), "webhook")
    assert env(webhook)["TF_NVIDIA_OPERATOR_PROGRESSIVE_MIGRATION"] == "true"
    extender = container(find(objects, "Deployment", "tensor-fusion-sys-scheduler"), "extender")
    assert env(extender)["TF_NVIDIA_OPERATOR_PROGRESSIVE_MIGRATION"] == "true"

    def node_verbs(objects: list[dict[str, Any]]) -> set[str]:
        role = find(objects, "ClusterRole", "tensor-fusion-sys-controller")
        return {v for r in role["rules"] if "nodes" in r["resources"] for v in r["verbs"]}

    assert "patch" in node_verbs(objects)  # the taint (and, always, the compaction drain's cordon)


def test_progressive_migration_gives_the_hypervisor_the_kubelets_pod_resources_api(render: Render) -> None:
    def hypervisor(objects: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
        daemonset = find(objects, "DaemonSet", "tensor-fusion-sys-hypervisor")
        return daemonset["spec"]["template"]["spec"], container(daemonset, "hypervisor")

    spec, main = hypervisor(render())
    assert "pod-resources" not in [v["name"] for v in spec["volumes"]]
    assert "--kubelet-pod-resources-socket" not in main["command"]
    objects = render(SPEC / "progressive-migration.yaml")
    spec, main = hypervisor(objects)
    volume = next(v for v in spec["volumes"] if v["name"] == "pod-resources")
    assert volume["hostPath"]["path"] == "/var/lib/kubelet/pod-resources"
    mount = next(m for m in main["volumeMounts"] if m["name"] == "pod-resources")
    assert mount["readOnly"] is True
    socket = main["command"][main["command"].index("--kubelet-pod-resources-socket") + 1]
    assert socket == f"{mount['mountPath']}/kubelet.sock"
    assert "--nvidia-progressive-migration" in main["command"]
    elsewhere = render(SPEC / "progressive-migration.yaml", sets=("hypervisor.kubeletRootDir=/var/lib/k0s/kubelet/",))
    spec, main = hypervisor(elsewhere)
    assert next(v for v in spec["volumes"] if v["name"] == "pod-resources")["hostPath"]["path"] == (
        "/var/lib/k0s/kubelet/pod-resources"
    )
    role = find(objects, "ClusterRole", "tensor-fusion-sys-hypervisor")
    assert any("events" in r["resources"] and "create" in r["verbs"] for r in role["rules"])
    gpus = next(r for r in role["rules"] if "gpus/status" in r["resources"] or "gpus" in r["resources"])
    assert {"create", "patch"} <= set(gpus["verbs"])


def test_the_controller_rolls_the_hypervisors_and_may_do_what_that_takes(render: Render) -> None:
    objects = render()
    hypervisor = find(objects, "DaemonSet", "tensor-fusion-sys-hypervisor")
    assert hypervisor["spec"]["updateStrategy"] == {"type": "OnDelete"}
    role = find(objects, "ClusterRole", "tensor-fusion-sys-controller")

    def allowed(group: str, resource: str, verb: str) -> bool:
        return any(group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"] for r in role["rules"])

    assert allowed("apps", "controllerrevisions", "list")
    assert allowed("apps", "daemonsets", "list")
    assert allowed("", "pods", "delete")
    assert allowed("", "pods/eviction", "create")
    assert allowed("", "nodes", "patch")
    assert allowed("karpenter.sh", "nodeclaims", "create")
    assert allowed("karpenter.sh", "nodeclaims", "delete")
    assert allowed("tensor-fusion.ai", "gpunodeclaims/status", "patch")
    cluster = find(objects, "TensorFusionCluster", "shared-cluster")
    policy = cluster["spec"]["gpuPools"][0]["specTemplate"]["nodeManagerConfig"]["nodePoolRollingUpdatePolicy"]
    assert policy["autoUpdateHypervisor"] is True


def test_controller_service_account_takes_irsa_annotations(render: Render) -> None:
    role = "arn:aws:iam::123456789012:role/tensor-fusion"
    objects = render(values={"controller": {"serviceAccountAnnotations": {"eks.amazonaws.com/role-arn": role}}})
    account = find(objects, "ServiceAccount", "tensor-fusion-sys-controller")
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": role}
    assert "annotations" not in find(render(), "ServiceAccount", "tensor-fusion-sys-controller")["metadata"]
