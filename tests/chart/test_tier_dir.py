"""The chart's VRAM tier directory: the hypervisor gets --tier-dir and the hostPath mounted, the
webhook gives each pod its part of it; an empty hypervisor.tierDir means no disk tier anywhere."""

from __future__ import annotations

from typing import Any

from tests.chart.conftest import Render, container, find

HYPERVISOR = "tensor-fusion-sys-hypervisor"
WEBHOOK = "tensor-fusion-sys-webhook"


def _hypervisor(objects: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    daemonset = find(objects, "DaemonSet", HYPERVISOR)
    return daemonset, container(daemonset, "hypervisor")


def _flag(command: list[str], flag: str) -> str | None:
    return command[command.index(flag) + 1] if flag in command else None


def test_the_hypervisor_gets_the_default_tier_directory_mounted_and_passed(render: Render) -> None:
    objects = render()
    daemonset, hypervisor = _hypervisor(objects)
    command = hypervisor["command"]
    assert _flag(command, "--tier-dir") == "/var/lib/tensor-fusion/tier"
    assert _flag(command, "--tier-min-free-disk") == "100G"  # the deployment guidance
    # The percentages come from the pool, live: the chart passes none.
    assert "--vram-expand-to-host-mem" not in command
    assert "--vram-expand-to-host-disk" not in command
    volumes = {v["name"]: v for v in daemonset["spec"]["template"]["spec"]["volumes"]}
    assert volumes["tier"]["hostPath"] == {"path": "/var/lib/tensor-fusion/tier", "type": "DirectoryOrCreate"}
    mounts = {m["name"]: m for m in hypervisor["volumeMounts"]}
    assert mounts["tier"]["mountPath"] == "/var/lib/tensor-fusion/tier"  # the same path as on the host
    assert not mounts["tier"].get("readOnly", False)
    webhook = container(find(objects, "Deployment", WEBHOOK), "webhook")["command"]
    assert _flag(webhook, "--tier-host-dir") == "/var/lib/tensor-fusion/tier"


def test_a_custom_tier_directory_reaches_both(render: Render) -> None:
    objects = render(sets=("hypervisor.tierDir=/mnt/nvme/tf-tier/", "hypervisor.tierMinFreeDisk=500Gi"))
    _, hypervisor = _hypervisor(objects)
    assert _flag(hypervisor["command"], "--tier-dir") == "/mnt/nvme/tf-tier"
    assert _flag(hypervisor["command"], "--tier-min-free-disk") == "500Gi"
    webhook = container(find(objects, "Deployment", WEBHOOK), "webhook")["command"]
    assert _flag(webhook, "--tier-host-dir") == "/mnt/nvme/tf-tier"


def test_an_empty_tier_directory_means_no_disk_tier(render: Render) -> None:
    objects = render(sets=("hypervisor.tierDir=",))
    daemonset, hypervisor = _hypervisor(objects)
    assert "--tier-dir" not in hypervisor["command"]
    assert "tier" not in {v["name"] for v in daemonset["spec"]["template"]["spec"]["volumes"]}
    assert "--tier-host-dir" not in container(find(objects, "Deployment", WEBHOOK), "webhook")["command"]
