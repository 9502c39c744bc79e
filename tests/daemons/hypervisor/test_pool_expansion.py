"""In a cluster the hypervisor tiers what its pool sells: the real process on two simulated
GPUs of 512 MiB, the API emulator holding GPUNode -> GPUPool with
`capacityConfig.oversubscription.vramExpandToHostMem: 40`.

The node sells each GPU plus 40 % of the host's RAM shared by its GPUs (as the scheduler
counts), follows an edit of the pool live, and a pod worker whose limit is past the GPU
allocates past it and reads its data back; a pod that opts out (`vram-tiering: "false"`) keeps
the out-of-memory at the GPU.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client

from tests.daemons.hypervisor.process import NODE, PATIENCE, UUID0, UUID1, Hypervisor
from tests.daemons.hypervisor.test_pod_regions import region_of, tf_pod
from tests.daemons.hypervisor.tierwork import TierworkProcess, build_tierwork
from tests.kubeapi.emulator import KubeEmulator
from tests.kubeapi.objects import eventually

ROOT = Path(__file__).resolve().parents[3]
GROUP, VERSION = "tensor-fusion.ai", "v1"
MIB = 1 << 20
GPU_VRAM = 512 * MIB
MERGE = "application/merge-patch+json"


@pytest.fixture(scope="module")
def tierwork(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tierwork(tmp_path_factory.mktemp("bin"))


def start_pod_process(tierwork: Path, hypervisor: Hypervisor, region: Path) -> TierworkProcess:
    """tierwork under the shim as a pod's container would run it: its region, no tier dir."""
    return TierworkProcess(
        tierwork,
        TF_SIM_GPU_COUNT="2",
        TF_SIM_GPU_VRAM=str(GPU_VRAM),
        TF_SIM_STATE=str(hypervisor.root / "sim.state"),
        TF_SHM_PATH=str(region),
    )


async def _exists(path: Path) -> bool:
    return path.exists()


def _ram_total() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no MemTotal")


async def _get(hypervisor: Hypervisor, path: str) -> Any:
    status, body = await hypervisor.call("GET", path)
    assert status == 200, body
    return body


def _expansion(tiering: dict[str, Any]) -> tuple[int, str, str, int, str]:
    mem, disk = tiering["expansion"]["host_mem"], tiering["expansion"]["host_disk"]
    return mem["percent"], mem["of"], mem["source"], disk["percent"], disk["source"]


async def _node_in_pool(kube: KubeEmulator, tmp_path: Path) -> tuple[Hypervisor, Any, Path]:
    """GPUNode NODE in pool `p` at vramExpandToHostMem 40, and a hypervisor with a tier
    directory and no expansion flags: (it, the custom-objects client, the tier directory)."""
    custom: Any = client.CustomObjectsApi(kube.api_client())
    gpunode = {"metadata": {"name": NODE, "labels": {"tensor-fusion.ai/gpupool": "p"}}}
    pool = {"metadata": {"name": "p"}, "spec": {"capacityConfig": {"oversubscription": {"vramExpandToHostMem": 40}}}}
    for plural, body, kind in (("gpunodes", gpunode, "GPUNode"), ("gpupools", pool, "GPUPool")):
        await custom.create_cluster_custom_object(
            GROUP, VERSION, plural, {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, **body}
        )
    tier_dir = tmp_path / "tier"
    tier_dir.mkdir()
    env = {"TF_SIM_GPU_VRAM": str(GPU_VRAM)}
    hypervisor = Hypervisor(tmp_path, kube, "--tier-dir", str(tier_dir), "--tier-min-free-disk", "0", env=env)
    return hypervisor, custom, tier_dir


async def test_a_node_tiers_what_its_pool_sells_and_follows_it_live(
    kube: KubeEmulator, hypervisors: list[Hypervisor], tmp_path: Path, tierwork: Path
) -> None:
    hypervisor, custom, tier_dir = await _node_in_pool(kube, tmp_path)
    hypervisors.append(await hypervisor.start())
    core: Any = client.CoreV1Api(kube.api_client())  # its stubs want V1Pod; the API takes plain JSON

    # The pool's 40 % of host RAM (its disk percentage unset: the API server fills in the CRD
    # default, 70 % of the tier directory's free space), each with its source; no node flags.
    tiering = await eventually(lambda: _get(hypervisor, "/api/v1/tiering"), lambda t: t["enabled"], PATIENCE)
    assert _expansion(tiering) == (40, "host_ram", "GPUPool/p", 70, "GPUPool/p")
    # The disk tier's condition and the disk the scheduler multiplies by the pool's 70 %: the
    # tier directory's free space (the 100G guidance is lowered to 0 here).
    gpunode = await eventually(
        lambda: custom.get_cluster_custom_object(GROUP, VERSION, "gpunodes", NODE),
        lambda g: bool(g.get("status", {}).get("conditions")),
        PATIENCE,
    )
    (condition,) = gpunode["status"]["conditions"]
    assert (condition["type"], condition["status"]) == ("DiskTierAvailable", "True")
    assert gpunode["status"]["nodeInfo"]["dataDiskSize"] != "0"
    devices = (await _get(hypervisor, "/api/v1/devices"))["devices"]
    sold = _ram_total() // 2 * 40 // 100  # per GPU: the scheduler's RAM x 40 % shared by the GPUs
    for device in devices:
        assert 0 < device["tiers"]["host_bytes"] <= sold  # capped by what is really free
        assert device["free"]["vram_bytes"] >= GPU_VRAM + device["tiers"]["host_bytes"]

    # A pod sold 768 MiB on a 512 MiB GPU gets it, with its data intact.
    await core.create_namespaced_pod("default", tf_pod("big-0", gpu_ids=UUID0.lower(), vram="768Mi"))
    await core.create_namespaced_pod(
        "default",
        tf_pod("plain-0", gpu_ids=UUID1.lower(), vram="768Mi", **{"tensor-fusion.ai/vram-tiering": "false"}),
    )
    big = await eventually(lambda: _get(hypervisor, "/api/v1/workers/default/big-0"), bool, PATIENCE)
    plain = await eventually(lambda: _get(hypervisor, "/api/v1/workers/default/plain-0"), bool, PATIENCE)
    assert (big["vram_tiering"], plain["vram_tiering"]) == (True, False)
    # Its own directory of the disk tier (the webhook mounts just that one into the pod).
    own = tier_dir / "default" / "big-0"
    assert own.is_dir()
    assert own.stat().st_mode & 0o777 == 0o777  # the pod names no user: anyone in it may write
    assert not (tier_dir / "default" / "plain-0").exists()
    work = start_pod_process(tierwork, hypervisor, region_of(hypervisor, "big-0"))
    opted_out = start_pod_process(tierwork, hypervisor, region_of(hypervisor, "plain-0"))
    try:
        first = await work.ask_async("alloc 6 128", 3)
        assert first["alloc"] == "0"
        assert await work.ask_async("check", 3) == {"check": "0", "same": "1", "ptrs": first["ptrs"]}
        viewed = await _get(hypervisor, "/api/v1/workers/default/big-0")
        assert viewed["tiers"]["host"] >= 256 * MIB  # what the GPU could not hold
        assert (await opted_out.ask_async("alloc 6 128", 3))["alloc"] != "0"  # today's behaviour: OOM at the GPU
        assert (await _get(hypervisor, "/api/v1/workers/default/plain-0"))["tiers"]["host"] == 0

        # An edit of the pool reaches the running node: new figures, the running worker unharmed.
        edit = {"spec": {"capacityConfig": {"oversubscription": {"vramExpandToHostMem": 5, "vramExpandToHostDisk": 0}}}}
        await custom.patch_cluster_custom_object(GROUP, VERSION, "gpupools", "p", edit, _content_type=MERGE)
        tiering = await eventually(
            lambda: _get(hypervisor, "/api/v1/tiering"), lambda t: t["expand_to_host_mem_percent"] == 5, PATIENCE
        )
        assert _expansion(tiering) == (5, "host_ram", "GPUPool/p", 0, "GPUPool/p")
        devices = (await _get(hypervisor, "/api/v1/devices"))["devices"]
        assert all(0 < d["tiers"]["host_bytes"] <= _ram_total() // 2 * 5 // 100 for d in devices)
        assert await work.ask_async("write 3", 1) == {"write": "0"}
        assert await work.ask_async("check", 3) == {"check": "0", "same": "1", "ptrs": first["ptrs"]}
    finally:
        await asyncio.to_thread(work.stop)
        await asyncio.to_thread(opted_out.stop)

    await core.delete_namespaced_pod("big-0", "default")
    await eventually(lambda: _exists(own), lambda there: not there, PATIENCE)

    # A node no longer in the pool expands nothing (its flags unset): new workers are not tiered.
    await custom.patch_cluster_custom_object(
        GROUP,
        VERSION,
        "gpunodes",
        NODE,
        {"metadata": {"labels": {"tensor-fusion.ai/gpupool": None}}},
        _content_type=MERGE,
    )
    tiering = await eventually(lambda: _get(hypervisor, "/api/v1/tiering"), lambda t: not t["enabled"], PATIENCE)
    assert _expansion(tiering) == (0, "gpu_memory", "default", 0, "default")
    assert all(d["tiers"] is None for d in (await _get(hypervisor, "/api/v1/devices"))["devices"])
