"""Vertical autoscaling end to end: the real controller (-enable-auto-scale) reads two hours of
usage from its metrics store, resizes the worker pod in place through its annotations, the
real hypervisor process applies the new limits to the pod's live region, and a driver-API
program running under the shim is held to the new VRAM limit without a restart."""

from __future__ import annotations

import asyncio
import contextlib
import random
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client

from daemons.controller.daemon import ControllerDaemon, Options
from tests.daemons.hypervisor.process import NODE, UUID0, Hypervisor
from tests.daemons.hypervisor.test_pod_regions import (  # noqa: F401  (vram: a fixture)
    eventually,
    parse_kv,
    present,
    region_of,
    shim_env,
    vram,
)
from tests.kubeapi.emulator import KubeEmulator
from tfcore.ipc import Region
from tfcore.k8s import request_json
from tfcore.metrics.embedded import DuckDBStore
from tfcore.metrics.lineproto import Point

GIB = 1 << 30
GROUP = "/apis/tensor-fusion.ai/v1"


async def _usage_history(path: Path) -> None:
    """What the node's hypervisor reported over two hours: 2-4 TFLOPS, 1.5 GiB held."""
    store = await DuckDBStore(path).open()
    rng = random.Random(2)
    now = datetime.now(UTC)
    tags = {"workload": "llm", "worker": "llm-0", "namespace": "default", "pool": "p", "node": NODE, "uuid": UUID0}
    points = [
        Point(
            "tf_worker_usage",
            tags,
            {"compute_tflops": rng.uniform(2, 4), "memory_bytes": 3 * GIB // 2},
            int((now - timedelta(seconds=10 * i)).timestamp() * 1e9),
        )
        for i in range(1, 721)
    ]
    await store.write(points)
    await store.close()


def _pod() -> dict[str, Any]:
    return {
        "metadata": {
            "name": "llm-0",
            "labels": {"tensor-fusion.ai/enabled": "true", "tensor-fusion.ai/workload": "llm"},
            "annotations": {
                "tensor-fusion.ai/tflops-request": "20",
                "tensor-fusion.ai/tflops-limit": "40",
                "tensor-fusion.ai/vram-request": "4Gi",
                "tensor-fusion.ai/vram-limit": "4Gi",
                "tensor-fusion.ai/gpu-ids": UUID0.lower(),
                "tensor-fusion.ai/autoscale": "true",
            },
        },
        "spec": {"nodeName": NODE, "containers": [{"name": "main", "image": "busybox:1"}]},
    }


def _update_condition(workload: dict[str, Any]) -> str | None:
    conditions = (workload.get("status") or {}).get("conditions") or []
    return next((c["status"] for c in conditions if c["type"] == "ResourceUpdate"), None)


async def _vram_limit(region: Path) -> int:
    with Region.open(region) as opened:
        return opened.devices()[0].vram_limit_bytes


async def test_a_running_pod_is_resized_in_place_from_its_usage(
    kube: KubeEmulator,
    tmp_path: Path,
    vram: Path,  # noqa: F811
) -> None:
    store = tmp_path / "controller" / "metrics.duckdb"
    await _usage_history(store)
    hypervisor = await Hypervisor(tmp_path, kube).start()
    api = kube.new_api_client()
    options = Options(leader_elect=False, enable_auto_scale=True, metrics_store=str(store))
    daemon = ControllerDaemon(api, options, watch_timeout=30, metrics=True)
    core = client.CoreV1Api(kube.api_client())
    task = None
    try:
        await core.create_namespaced_pod("default", _pod())  # type: ignore[arg-type]  # the client takes plain dicts
        region = region_of(hypervisor, "llm-0")
        await eventually(lambda: present(region), bool)
        env = shim_env(hypervisor, region)
        alloc = [str(vram), "family", "alloc", "1024"]
        with subprocess.Popen([str(vram), "hold", "1024", "60"], env=env, stdout=subprocess.PIPE, text=True) as holder:
            try:
                assert holder.stdout is not None
                assert holder.stdout.readline().strip() == "hold=0"
                # Under the original 4 GiB limit, 2 GiB more fit beside the held 1 GiB.
                before = subprocess.run(alloc, env=env, capture_output=True, text=True, check=False)
                assert parse_kv(before.stdout)["result"] == "0,0,0,0,0", before.stdout + before.stderr

                task = asyncio.create_task(daemon.run())
                limit = await eventually(lambda: _vram_limit(region), lambda got: got < 4 * GIB)
                assert 1.5 * GIB * 1.15 <= limit <= 2 * GIB  # the observed peak x (1 + margin), rounded up
                after = subprocess.run(alloc, env=env, capture_output=True, text=True, check=False)
                assert parse_kv(after.stdout)["result"] == "2,2,0,2,0", after.stdout + after.stderr
                assert holder.poll() is None  # resized in place: the program never stopped

                pod = await core.read_namespaced_pod("llm-0", "default")
                assert float(pod.metadata.annotations["tensor-fusion.ai/tflops-request"].rstrip("m")) < 20_000
                path = f"{GROUP}/namespaces/default/tensorfusionworkloads/llm"
                workload = await eventually(
                    lambda: request_json(kube.api_client(), "GET", path),
                    # Two writers share the conditions list: each keeps the other's type, so both
                    # are there once the workload reconciler has answered the autoscaler's write.
                    lambda got: (
                        bool(_update_condition(got))
                        and bool(got["status"].get("appliedRecommendation"))
                        and any(c["type"] == "Ready" for c in got["status"]["conditions"])
                    ),
                )
                status = workload["status"]
                assert status["originalResources"]["requests"]["vram"] == "4Gi"
                assert _update_condition(workload) == "True"
                events = await core.list_namespaced_event("default")
                assert "ResourcesUpdated" in {e.reason for e in events.items}
            finally:
                holder.kill()
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await api.close()
        await hypervisor.stop()
