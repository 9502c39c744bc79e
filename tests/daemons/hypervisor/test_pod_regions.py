"""Regions of Kubernetes pods, end to end: the real `tensor-fusion hypervisor --simulate` process
against the API emulator, and a driver-API program under the shim on the simulated GPU.

A bound TF pod gets its region at STATE_DIR/workers/<namespace>/<pod>/shm with its limits, and
the shim holds a program to them; the API lists it and refuses to delete it; deleting or
finishing the pod removes it; a restart keeps a running pod's region (same inode, usage kept)
and removes the region of a pod deleted meanwhile; a pod replaced under the same name gets a
fresh region; an unknown GPU gets an Event and no region.
"""

# mypy: disable-error-code="arg-type"

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from kubernetes_asyncio import client

from tests.daemons.hypervisor.process import NODE, PATIENCE, UUID0, UUID1, Hypervisor
from tests.kubeapi.emulator import KubeEmulator
from tests.kubeapi.objects import eventually as _eventually
from tfcore.ipc import DeviceSpec, Region, limits_path
from tfcore.native import library_paths

MIB = 1 << 20
GIB = 1 << 30
VRAM_C = Path(__file__).resolve().parents[2] / "native" / "c" / "vram.c"
INCLUDE = Path(__file__).resolve().parents[3] / "ext" / "include"
T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T]], done: Callable[[T], bool]) -> T:
    return await _eventually(probe, done, timeout=PATIENCE)


@pytest.fixture(scope="module")
def vram(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc not found: the driver-API program needs a C compiler")
    target = tmp_path_factory.mktemp("cbin") / "vram"
    command = [gcc, "-std=gnu11", "-I", str(INCLUDE), str(VRAM_C), "-o", str(target), "-ldl", "-lpthread"]
    subprocess.run(command, check=True, capture_output=True)
    return target


def tf_pod(name: str, gpu_ids: str = UUID0.lower(), vram: str = "1Gi", **annotations: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "labels": {"tensor-fusion.ai/enabled": "true"},
            "annotations": {
                "tensor-fusion.ai/tflops-request": "100",
                "tensor-fusion.ai/vram-limit": vram,
                "tensor-fusion.ai/gpu-ids": gpu_ids,
                **annotations,
            },
        },
        "spec": {"nodeName": NODE, "containers": [{"name": "main", "image": "busybox:1"}]},
    }


def shim_env(hypervisor: Hypervisor, region: Path) -> dict[str, str]:
    libs = library_paths()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "LD_", "CUDA_"))}
    env.update(
        TF_SIM_STATE=str(hypervisor.root / "sim.state"),
        LD_LIBRARY_PATH=str(libs["simcuda"].parent),
        LD_PRELOAD=str(libs["shim"]),
        TF_SHM_PATH=str(region),
    )
    return env


def parse_kv(stdout: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)


def region_of(hypervisor: Hypervisor, pod: str) -> Path:
    return hypervisor.state_dir / "workers" / "default" / pod / "shm"


async def present(path: Path) -> bool:
    return path.exists() and limits_path(path).exists()


def record(region: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((region.parent / "record.json").read_text())
    return data


async def pod_uid(region: Path) -> str | None:
    """The uid of the pod the region at `region` was made for (None while there is none)."""
    try:
        return str(record(region)["pod_uid"]) if await present(region) else None
    except (OSError, ValueError):
        return None


async def test_a_pods_region_follows_the_pod_and_holds_its_program_to_the_limit(
    kube: KubeEmulator, hypervisors: list[Hypervisor], tmp_path: Path, vram: Path
) -> None:
    core = client.CoreV1Api(kube.api_client())
    hypervisor = Hypervisor(tmp_path, kube)
    hypervisors.append(hypervisor)
    await hypervisor.start()
    created = await core.create_namespaced_pod("default", tf_pod("train-0"))
    region = region_of(hypervisor, "train-0")
    await eventually(lambda: present(region), bool)
    assert record(region)["pod_uid"] == created.metadata.uid
    with Region.open(region) as opened:
        device = opened.devices()[0]
        assert (device.uuid, device.vram_limit_bytes, device.tflops_request_milli) == (UUID0, GIB, 100_000)

    # The shim, pointed at the pod's region, holds a driver-API program to the pod's 1 GiB.
    env = shim_env(hypervisor, region)
    done = subprocess.run([str(vram), "family", "alloc", "600"], env=env, capture_output=True, text=True, check=False)
    assert parse_kv(done.stdout)["result"] == "0,2,0,0,0", done.stdout + done.stderr

    status, listed = await hypervisor.call("GET", "/api/v1/workers")
    assert status == 200
    (worker,) = listed["workers"]
    assert worker["name"] == "default/train-0"
    assert worker["pod"] == {"namespace": "default", "name": "train-0", "uid": created.metadata.uid}
    assert worker["region"] == str(region)
    assert (await hypervisor.call("GET", "/api/v1/workers/default/train-0"))[0] == 200
    status, refused = await hypervisor.call("DELETE", "/api/v1/workers/default/train-0")
    assert status == 409
    assert "owned by pod default/train-0" in refused["error"]
    assert (await hypervisor.call("DELETE", "/api/v1/workers/default/train-0", token=False))[0] == 401
    devices = (await hypervisor.call("GET", "/api/v1/devices"))[1]["devices"]
    assert devices[0]["workers"] == ["default/train-0"]
    assert devices[0]["allocated"]["tflops_request_milli"] == 100_000
    async with aiohttp.ClientSession() as http, http.get(hypervisor.url + "/metrics") as response:
        metrics = await response.text()
    assert 'tf_worker_vram_used_bytes{namespace="default",pod="train-0",uuid="' + UUID0 in metrics

    # A pod replaced under the same name (a StatefulSet's) gets a fresh region.
    await core.delete_namespaced_pod("train-0", "default")
    replacement = await core.create_namespaced_pod("default", tf_pod("train-0", vram="2Gi"))
    await eventually(lambda: pod_uid(region), lambda uid: uid == replacement.metadata.uid)
    with Region.open(region) as opened:
        assert opened.devices()[0].vram_limit_bytes == 2 * GIB

    # Finishing removes it; so does deleting; the directories the hypervisor made go with it.
    await core.patch_namespaced_pod_status("train-0", "default", {"status": {"phase": "Succeeded"}})
    await eventually(lambda: present(region), lambda p: not p)
    await core.create_namespaced_pod("default", tf_pod("infer-0", gpu_ids=UUID1.upper().lower()))
    other = region_of(hypervisor, "infer-0")
    await eventually(lambda: present(other), bool)
    await core.delete_namespaced_pod("infer-0", "default")
    await eventually(lambda: present(other), lambda p: not p)
    assert not other.parent.exists()
    assert (await hypervisor.call("GET", "/api/v1/workers"))[1]["workers"] == []


async def test_unknown_gpus_and_bad_annotations_get_an_event_and_no_region(
    kube: KubeEmulator, hypervisors: list[Hypervisor], tmp_path: Path
) -> None:
    core = client.CoreV1Api(kube.api_client())
    hypervisor = Hypervisor(tmp_path, kube)
    hypervisors.append(hypervisor)
    await hypervisor.start()
    await core.create_namespaced_pod("default", tf_pod("lost-0", gpu_ids="gpu-99999999-0000"))
    await core.create_namespaced_pod("default", tf_pod("bad-0", vram="lots"))
    elsewhere = tf_pod("elsewhere-0")
    elsewhere["spec"]["nodeName"] = "node-b"
    await core.create_namespaced_pod("default", elsewhere)

    async def reasons() -> dict[str, str]:
        events = await core.list_namespaced_event("default")
        return {e.involved_object.name: f"{e.reason}: {e.message}" for e in events.items}

    seen = await eventually(reasons, lambda r: "lost-0" in r and "bad-0" in r)
    assert seen["lost-0"].startswith("UnknownGPU: GPU gpu-99999999-0000 in tensor-fusion.ai/gpu-ids is not on node")
    assert seen["bad-0"].startswith("InvalidGPURequest:")
    assert "tensor-fusion.ai/vram-limit" in seen["bad-0"]
    good = tf_pod("good-0")
    tenant = 4242 if os.geteuid() == 0 else os.geteuid()  # only root may give a file away
    good["spec"]["securityContext"] = {"runAsUser": tenant}
    await core.create_namespaced_pod("default", good)
    region = region_of(hypervisor, "good-0")
    await eventually(lambda: present(region), bool)  # later pods are not held up
    state, limits = region.stat(), limits_path(region).stat()
    assert (state.st_uid, stat.S_IMODE(state.st_mode)) == (tenant, 0o600)  # the tenant's state, no one else's
    assert (limits.st_uid, stat.S_IMODE(limits.st_mode)) == (os.geteuid(), 0o644)  # the tenant only reads
    for pod in ("lost-0", "bad-0", "elsewhere-0"):
        assert not region_of(hypervisor, pod).parent.exists()


async def test_a_restart_keeps_running_pods_regions_and_drops_those_deleted_meanwhile(
    kube: KubeEmulator, hypervisors: list[Hypervisor], tmp_path: Path, vram: Path
) -> None:
    core = client.CoreV1Api(kube.api_client())
    first = Hypervisor(tmp_path, kube)
    hypervisors.append(first)
    await first.start()
    await core.create_namespaced_pod("default", tf_pod("keep-0"))
    await core.create_namespaced_pod("default", tf_pod("gone-0", gpu_ids=UUID1.lower()))
    kept, gone = region_of(first, "keep-0"), region_of(first, "gone-0")
    await eventually(lambda: present(kept), bool)
    await eventually(lambda: present(gone), bool)
    inode = kept.stat().st_ino
    command = [str(vram), "hold", "100", "60"]
    with subprocess.Popen(command, env=shim_env(first, kept), stdout=subprocess.PIPE, text=True) as holder:
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "hold=0"
            await first.stop()
            await core.delete_namespaced_pod("gone-0", "default")
            with Region.open(kept, readonly=False) as tampered:  # limits raised behind its back
                tampered.set_limits(0, DeviceSpec(UUID0, 8 * GIB, 100_000, 0))
            second = Hypervisor(tmp_path, kube)
            hypervisors.append(second)
            await second.start()
            await eventually(lambda: present(gone), lambda p: not p)
            assert kept.stat().st_ino == inode
            with Region.open(kept) as opened:
                assert opened.devices()[0].vram_used_bytes == 100 * MIB  # the running program's, untouched
                assert [p.alive for p in opened.processes()] == [True]
                assert opened.devices()[0].vram_limit_bytes == GIB  # restored from the record
            _, listed = await second.call("GET", "/api/v1/workers")
            assert [w["name"] for w in listed["workers"]] == ["default/keep-0"]
            assert "re-adopted worker default/keep-0" in second.log.read_text()
        finally:
            holder.kill()


async def _limits(region: Path) -> tuple[int, int]:
    with Region.open(region) as opened:
        device = opened.devices()[0]
        return device.vram_limit_bytes, device.tflops_request_milli


async def test_changed_limit_annotations_resize_a_running_pods_region_in_place(
    kube: KubeEmulator, hypervisors: list[Hypervisor], tmp_path: Path, vram: Path
) -> None:
    """The autoscaler's in-place resize: lowering the VRAM limit below what the pod holds stops
    its new allocations and frees nothing; raising it lets them through; compute follows."""
    core = client.CoreV1Api(kube.api_client())
    hypervisor = Hypervisor(tmp_path, kube)
    hypervisors.append(hypervisor)
    await hypervisor.start()
    await core.create_namespaced_pod("default", tf_pod("serve-0"))
    region = region_of(hypervisor, "serve-0")
    await eventually(lambda: present(region), bool)
    inode = region.stat().st_ino
    env = shim_env(hypervisor, region)
    with subprocess.Popen([str(vram), "hold", "700", "60"], env=env, stdout=subprocess.PIPE, text=True) as holder:
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "hold=0"
            annotations = {"tensor-fusion.ai/vram-limit": "512Mi", "tensor-fusion.ai/tflops-request": "50"}
            await core.patch_namespaced_pod("serve-0", "default", {"metadata": {"annotations": annotations}})
            await eventually(lambda: _limits(region), lambda got: got == (512 * MIB, 50_000))
            alloc = [str(vram), "family", "alloc", "100"]
            denied = subprocess.run(alloc, env=env, capture_output=True, text=True, check=False)
            assert parse_kv(denied.stdout)["result"] == "2,2,0,2,0", denied.stdout + denied.stderr
            with Region.open(region) as opened:
                assert opened.devices()[0].vram_used_bytes == 700 * MIB  # nothing freed
            assert holder.poll() is None  # and the holder still runs
            assert region.stat().st_ino == inode  # the same region, resized
            assert record(region)["vram_bytes"] == 512 * MIB  # a restart keeps the new limits
            devices = (await hypervisor.call("GET", "/api/v1/devices"))[1]["devices"]
            assert devices[0]["allocated"]["tflops_request_milli"] == 50_000

            raised = {"tensor-fusion.ai/vram-limit": "2Gi"}
            await core.patch_namespaced_pod("serve-0", "default", {"metadata": {"annotations": raised}})
            await eventually(lambda: _limits(region), lambda got: got[0] == 2 * GIB)
            allowed = subprocess.run(alloc, env=env, capture_output=True, text=True, check=False)
            assert parse_kv(allowed.stdout)["result"] == "0,0,0,0,0", allowed.stdout + allowed.stderr
        finally:
            holder.kill()
