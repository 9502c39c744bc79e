"""Against the Kubernetes API emulator (tests.kubeapi, real HTTP): bind, stop the daemon, start a new one,
and the new one rebuilds exactly the same allocation from the cluster."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from daemons.scheduler.daemon import Daemon, Options, build
from tests.daemons.scheduler.cluster import binding_args, extender_args, fleet, gpu_pod
from tests.kubeapi.emulator import KubeEmulator
from tfcore.k8s import request_json
from tfcore.web.app import Served, start

PLURALS = {"GPUPool": "gpupools", "GPUNode": "gpunodes", "GPU": "gpus"}


async def _create(kube: KubeEmulator, obj: dict[str, Any]) -> None:
    api = kube.api_client()
    kind = obj["kind"]
    if kind in PLURALS:
        path = f"/apis/tensor-fusion.ai/v1/{PLURALS[kind]}"
        await request_json(api, "POST", path, body=obj)
        if "status" in obj:  # create drops status, as the real server does
            status_path = f"{path}/{obj['metadata']['name']}/status"
            patch = {"status": obj["status"]}
            await request_json(api, "PATCH", status_path, body=patch, content_type="application/merge-patch+json")
    elif kind == "Node":
        await request_json(api, "POST", "/api/v1/nodes", body=obj)
    else:
        await request_json(api, "POST", "/api/v1/namespaces/default/pods", body=obj)


async def _up(kubeconfig: Path) -> tuple[Daemon, Served, str, str]:
    daemon = await build(Options(kubeconfig=str(kubeconfig), port=0, extender_port=0))
    served = await start(daemon.listeners())
    (_, admin), (_, ext) = served.addresses()[:2]
    admin_url, ext_url = f"http://127.0.0.1:{admin}", f"http://127.0.0.1:{ext}"
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            async with http.get(f"{admin_url}/readyz") as reply:
                if reply.status == 200:
                    break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the daemon never became ready")
    return daemon, served, admin_url, ext_url


async def _down(daemon: Daemon, served: Served) -> None:
    await served.close(grace=2)
    await daemon.close()


async def _allocation(admin_url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{admin_url}/api/allocation") as reply:
        body: dict[str, Any] = await reply.json()
        return body


async def test_restart_rebuilds_the_same_allocation(kube: KubeEmulator, tmp_path: Path) -> None:
    for obj in fleet(3, 2):
        await _create(kube, obj)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "emu",
            "clusters": [{"name": "emu", "cluster": {"server": kube.url}}],
            "users": [{"name": "u", "user": {}}],
            "contexts": [{"name": "emu", "context": {"cluster": "emu", "user": "u"}}],
        })
    )  # fmt: skip
    daemon, served, admin_url, ext_url = await _up(kubeconfig)
    try:
        for i, (tflops, vram) in enumerate([("100", "16Gi"), ("200", "60Gi"), ("50", "8Gi")]):
            await _create(kube, gpu_pod(f"w{i}", tflops=tflops, vram=vram))
        pods = await request_json(kube.api_client(), "GET", "/api/v1/namespaces/default/pods")
        async with aiohttp.ClientSession() as http:
            for pod in pods["items"]:
                pod.setdefault("kind", "Pod")
                for _ in range(100):  # the pod reaches the daemon through its watch
                    if pod["metadata"]["uid"] in daemon.service.pending:
                        break
                    await asyncio.sleep(0.02)
                async with http.post(f"{ext_url}/filter", json=extender_args(pod, ["node-0", "node-1", "node-2"])) as r:
                    feasible = (await r.json())["NodeNames"]
                async with http.post(f"{ext_url}/prioritize", json=extender_args(pod, feasible)) as r:
                    best = max(await r.json(), key=lambda s: s["Score"])["Host"]
                async with http.post(f"{ext_url}/bind", json=binding_args(pod, best)) as r:
                    assert await r.json() == {}
        before = await _allocation(admin_url)
        assert len(before["allocations"]) == 3
    finally:
        await _down(daemon, served)
    pods = await request_json(kube.api_client(), "GET", "/api/v1/namespaces/default/pods")
    for pod in pods["items"]:  # bound through pods/binding, allocation recorded on the pod
        assert pod["spec"]["nodeName"]
        assert pod["metadata"]["annotations"]["tensor-fusion.ai/gpu-ids"]
    daemon, served, admin_url, _ = await _up(kubeconfig)
    try:
        assert await _allocation(admin_url) == before
    finally:
        await _down(daemon, served)
