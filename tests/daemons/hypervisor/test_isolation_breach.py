"""The node's reaction to a tenant that writes its own state file: a damaged header is rebuilt
in place at the next tick and reported (a log line naming the worker, a metric, an Event on
its pod, and its eviction with --on-isolation-breach=evict); after a restart a worker whose
state file was damaged is rebuilt from its record, never dropped.  API workers' state files
belong to the workload's uid alone."""

from __future__ import annotations

import os
import time
import urllib.request
from pathlib import Path

from kubernetes_asyncio import client

from tests.daemons.hypervisor.process import Hypervisor
from tests.daemons.hypervisor.test_api import _call
from tests.daemons.hypervisor.test_pod_regions import eventually, present, region_of, tf_pod
from tests.e2e.compute_node import LocalNode
from tests.kubeapi.emulator import KubeEmulator
from tfcore.ipc import Region


def _damage(path: Path) -> None:
    with path.open("r+b") as f:  # what any process of the worker can do
        f.write(b"\0" * 8)


def _metrics(node: LocalNode) -> str:
    with urllib.request.urlopen(node.url + "/metrics", timeout=10) as response:
        return str(response.read().decode())


def test_a_damaged_state_file_is_rebuilt_reported_and_survives_a_restart(tmp_path: Path) -> None:
    with LocalNode(tmp_path) as node:
        node.start()
        assert _call(node, "POST", "/api/v1/workers", {"name": "t", "vram": "1Gi", "tflops_request": 100})[0] == 201
        state = node.state_dir / "workers" / "t.shm"
        _damage(state)
        deadline = time.monotonic() + 10
        while "isolation breach: state file damaged" not in node.log.read_text():
            assert time.monotonic() < deadline, node.log.read_text()
            time.sleep(0.05)
        Region.open(state).close()  # valid again, same file
        assert 'tf_worker_isolation_breaches_total{namespace="",pod="",worker="t"} 1.0' in _metrics(node)
        assert node.stop() == 0
        _damage(state)
        node.start()
        assert [w["name"] for w in node.get("/api/v1/workers")["workers"]] == ["t"]
        assert "worker t: state file" in node.log.read_text()
        assert "rebuilt from the record" in node.log.read_text()
        Region.open(state).close()


def test_api_workers_state_files_belong_to_the_workloads_uid_alone(tmp_path: Path) -> None:
    with LocalNode(tmp_path) as node:
        node.start()
        workers = node.state_dir / "workers"
        assert _call(node, "POST", "/api/v1/workers", {"name": "mine", "vram": "1Gi"})[0] == 201
        st = (workers / "mine.shm").stat()
        assert (st.st_mode & 0o777, st.st_uid) == (0o600, os.geteuid())
        other = {"name": "theirs", "vram": "1Gi", "tenant_uid": 65534}
        status, body = _call(node, "POST", "/api/v1/workers", other)
        if os.geteuid() == 0:
            assert status == 201, body
            st = (workers / "theirs.shm").stat()
            assert (st.st_mode & 0o777, st.st_uid) == (0o600, 65534)
        else:
            assert status == 403
            assert "cannot give" in str(body)
        status, body = _call(node, "POST", "/api/v1/workers", {"name": "bad", "vram": "1Gi", "tenant_uid": -5})
        assert status == 400
        assert "tenant_uid" in str(body)


async def test_a_pod_found_past_its_isolation_gets_an_event_and_with_evict_is_evicted(
    kube: KubeEmulator, hypervisors: list[Hypervisor], tmp_path: Path
) -> None:
    core = client.CoreV1Api(kube.api_client())
    hypervisor = Hypervisor(tmp_path, kube, "--on-isolation-breach", "evict")
    hypervisors.append(hypervisor)
    await hypervisor.start()
    await core.create_namespaced_pod("default", tf_pod("train-0"))  # type: ignore[arg-type]  # the client takes plain dicts
    region = region_of(hypervisor, "train-0")
    await eventually(lambda: present(region), bool)
    _damage(region)

    async def events() -> list[tuple[str, str]]:
        listed = await core.list_namespaced_event("default")
        return [(e.reason, e.involved_object.name) for e in listed.items]

    await eventually(events, lambda found: ("StateFileDamaged", "train-0") in found)

    async def pods() -> list[str]:
        return [p.metadata.name for p in (await core.list_namespaced_pod("default")).items]

    await eventually(pods, lambda names: "train-0" not in names)  # evicted
