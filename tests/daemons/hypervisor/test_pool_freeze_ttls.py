"""`tensor-fusion hypervisor` takes its freeze TTLs from its pool's SchedulingConfigTemplate:
the real process on the simulated GPU, the API emulator holding GPUNode -> GPUPool -> template.

A low worker is frozen after the template's 1 s (the default would be 1 m); a template edit
reaches the running node; --freeze-ttl and TF_HYPERVISOR_SCHEDULING_CONFIG keep their places in
the precedence; a template the model refuses leaves the TTLs in force; an unlinked pool goes
back to the defaults.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client

from tests.daemons.hypervisor.process import NODE, PATIENCE, Hypervisor
from tests.daemons.hypervisor.tierwork import TierworkProcess, build_tierwork
from tests.kubeapi.emulator import KubeEmulator
from tests.kubeapi.objects import eventually

ROOT = Path(__file__).resolve().parents[3]
GROUP, VERSION = "tensor-fusion.ai", "v1"
MIB = 1 << 20
MERGE = "application/merge-patch+json"


@pytest.fixture(scope="module")
def tierwork(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tierwork(tmp_path_factory.mktemp("bin"))


def start_workload(tierwork: Path, sim_state: Path, worker: dict[str, Any]) -> TierworkProcess:
    """tierwork under the shim as the worker's process."""
    return TierworkProcess(
        tierwork,
        TF_SIM_GPU_COUNT="2",
        TF_SIM_STATE=str(sim_state),
        TF_SHM_PATH=worker["region"],
        TF_TIER_DIR=worker["tier_dir"],
    )


def _template(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "SchedulingConfigTemplate",
        "metadata": {"name": name},
        "spec": {"hypervisor": {"autoFreezeAndResume": {"autoFreeze": rules}}},
    }


async def _cluster(kube: KubeEmulator, rules: list[dict[str, Any]]) -> Any:
    """GPUNode NODE in pool `p`, which names template `t`; the client (Any: its stubs lack _content_type)."""
    custom = client.CustomObjectsApi(kube.api_client())
    gpunode = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "GPUNode",
        "metadata": {"name": NODE, "labels": {"tensor-fusion.ai/gpupool": "p"}},
    }
    pool = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "GPUPool",
        "metadata": {"name": "p"},
        "spec": {"schedulingConfigTemplate": "t"},
    }
    await custom.create_cluster_custom_object(GROUP, VERSION, "gpunodes", gpunode)
    await custom.create_cluster_custom_object(GROUP, VERSION, "gpupools", pool)
    await custom.create_cluster_custom_object(GROUP, VERSION, "schedulingconfigtemplates", _template("t", rules))
    return custom


async def _tiering(hypervisor: Hypervisor) -> dict[str, Any]:
    status, body = await hypervisor.call("GET", "/api/v1/tiering")
    assert status == 200, body
    return dict(body["freeze_ttls"])


def _low_is(mem: float | None, disk: float | None, source: str) -> Any:
    return lambda t: (
        (t["low"]["to_host_after_s"], t["low"]["to_disk_after_s"], t["low"]["source"])
        == (
            mem,
            disk,
            source,
        )
    )


async def _worker(hypervisor: Hypervisor, name: str) -> dict[str, Any]:
    status, body = await hypervisor.call("GET", f"/api/v1/workers/{name}")
    assert status == 200, body
    return dict(body)


async def test_a_low_worker_is_frozen_after_its_pools_template_ttl(
    kube: KubeEmulator, hypervisors: list[Hypervisor], tmp_path: Path, tierwork: Path
) -> None:
    custom = await _cluster(kube, [{"qos": "low", "enable": True, "freezeToMemTTL": "1s", "freezeToDiskTTL": "1h"}])
    env_config = {"autoFreezeAndResume": {"autoFreeze": [{"qos": "critical", "freezeToMemTTL": "3h"}]}}
    hypervisor = Hypervisor(
        tmp_path,
        kube,
        "--vram-expand-to-host-mem",
        "50",
        "--freeze-ttl",
        "high=1h/2h",
        env={"TF_HYPERVISOR_SCHEDULING_CONFIG": json.dumps(env_config)},
    )
    hypervisors.append(await hypervisor.start())
    ttls = await eventually(lambda: _tiering(hypervisor), _low_is(1.0, 3600.0, "SchedulingConfigTemplate/t"), PATIENCE)
    assert ttls["medium"] == {"to_host_after_s": 120.0, "to_disk_after_s": 7200.0, "source": "default"}
    assert ttls["high"] == {"to_host_after_s": 3600.0, "to_disk_after_s": 7200.0, "source": "--freeze-ttl"}
    env_source = "TF_HYPERVISOR_SCHEDULING_CONFIG"
    assert ttls["critical"] == {"to_host_after_s": 10800.0, "to_disk_after_s": None, "source": env_source}

    status, worker = await hypervisor.create_worker(name="idle", vram="128Mi", qos="low")
    assert status == 201, worker
    work = start_workload(tierwork, tmp_path / "sim.state", worker)
    try:
        first = await work.ask_async("alloc 2 32", 3)
        assert first["alloc"] == "0"
        assert (await work.ask_async("check", 3))["same"] == "1"  # a launch: active now
        frozen = await eventually(
            lambda: _worker(hypervisor, "idle"), lambda w: w["frozen"] and not w["tier_pending"], PATIENCE
        )
        assert frozen["tiers"]["host"] == 64 * MIB  # 1 s idle: the template's TTL, not the default 1 m
        assert await work.ask_async("check", 3) == {"check": "0", "same": "1", "ptrs": first["ptrs"]}
    finally:
        await asyncio.to_thread(work.stop)

    # An edit reaches the running node; a template the model refuses (disk before memory: the
    # CRD schema cannot say so) leaves the TTLs in force; an unlinked pool means the defaults.
    edited = _template("t", [{"qos": "low", "freezeToMemTTL": "5m", "freezeToDiskTTL": "2h"}])
    await custom.patch_cluster_custom_object(
        GROUP, VERSION, "schedulingconfigtemplates", "t", edited, _content_type=MERGE
    )
    await eventually(lambda: _tiering(hypervisor), _low_is(300.0, 7200.0, "SchedulingConfigTemplate/t"), PATIENCE)
    refused = _template("t", [{"qos": "low", "freezeToMemTTL": "2h", "freezeToDiskTTL": "1h"}])
    await custom.patch_cluster_custom_object(
        GROUP, VERSION, "schedulingconfigtemplates", "t", refused, _content_type=MERGE
    )
    event = await eventually(lambda: _refusal(kube), bool, PATIENCE)
    assert event.involved_object.kind == "SchedulingConfigTemplate"
    assert event.involved_object.name == "t"
    assert f"node {NODE} keeps its freeze TTLs" in event.message
    assert "freezeToDiskTTL: 1h is shorter than freezeToMemTTL 2h" in event.message
    assert await _log_has(hypervisor, "SchedulingConfigTemplate/t not applied")
    assert _low_is(300.0, 7200.0, "SchedulingConfigTemplate/t")(await _tiering(hypervisor))
    await custom.patch_cluster_custom_object(
        GROUP, VERSION, "gpupools", "p", {"spec": {"schedulingConfigTemplate": None}}, _content_type=MERGE
    )
    await eventually(lambda: _tiering(hypervisor), _low_is(60.0, 3600.0, "default"), PATIENCE)


async def _log_has(hypervisor: Hypervisor, text: str) -> bool:
    return text in await asyncio.to_thread(hypervisor.log.read_text)


async def _refusal(kube: KubeEmulator) -> Any:
    events = await client.CoreV1Api(kube.api_client()).list_namespaced_event("default")
    return next((e for e in events.items if e.reason == "FreezeTTLsNotApplied"), None)
