"""This node in Kubernetes: GPU objects, GPUNode status, and the NVIDIA device plugin's GPUs.

On start, every --report-interval seconds and promptly after a worker is created or removed:

1. in progressive-migration mode, list the kubelet's pod-resources and map the device plugin's
   allocations to this node's GPUs; GPUs it holds (or, while the kubelet cannot be read, GPUs
   TensorFusion does not already use) are taken out of the Node's placement;
2. create or update one GPU object per GPU (tfcore.hypervisor.report builds the status; only
   what changed is merge-patched, on the status subresource); GPUs of this node no longer seen
   are marked `Unknown`, not deleted; an Event marks a GPU changing hands;
3. merge-patch GPUNode/<node> status.nodeInfo and .hypervisorStatus when the GPUNode exists
   (the controller creates it), at least every HEARTBEAT_PERIOD.

A failure is logged and retried at the next report with capped exponential backoff: nothing
here stops the node daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import tfcore
from daemons.hypervisor.kubelet import KubeletUnavailable, PodResourcesClient
from daemons.hypervisor.node import Node
from tfcore.hypervisor.deviceplugin import DEFAULT_RESOURCES, Holdings, UnknownDevice, map_assignments
from tfcore.hypervisor.report import (
    HOSTNAME_LABEL,
    DevicePluginView,
    GPUFacts,
    TensorFusionUse,
    bytes_quantity,
    desired_gpu,
    offer,
    status_patch,
    transition,
    vanished_status,
)
from tfcore.k8s import Conflict, KubeClient, KubeError, NotFound, Obj, request_json, resource_for
from tfcore.k8s.events import EventRecorder

log = logging.getLogger(__name__)
GPUS: Final = resource_for("GPU")
GPUNODES: Final = resource_for("GPUNode")
MERGE_PATCH: Final = "application/merge-patch+json"
HEARTBEAT_PERIOD: Final = 60.0  # the GPUNode's hypervisorStatus is rewritten at least this often
MAX_BACKOFF: Final = 300.0
COMPONENT: Final = "tensor-fusion-hypervisor"
NOT_LISTED: Final = "not listed yet"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(obj: Mapping[str, Any]) -> dict[str, Any]:
    return dict(obj.get("status") or {})


def host_info(node_name: str, state_dir: Path, gpu_models: list[str]) -> dict[str, Any]:
    """GPUNode.status.nodeInfo: host facts read cheaply (/proc/meminfo, statvfs, uname)."""
    info: dict[str, Any] = {"hostname": node_name, "operatingSystem": "linux", "gpuCount": len(gpu_models)}
    uname = os.uname()
    info.update(kernelVersion=uname.release, architecture=uname.machine)
    if gpu_models:
        info["gpuModel"] = gpu_models[0]
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["ramSize"] = bytes_quantity(int(line.split()[1]) * 1024)
                break
    with contextlib.suppress(OSError):
        disk = os.statvfs(state_dir)
        info["dataDiskSize"] = bytes_quantity(disk.f_blocks * disk.f_frsize)
    return info


DISK_TIER_CONDITION: Final = "DiskTierAvailable"


def _tier_disk_free(node: Node) -> int:
    if not node.tiering.tier_dir or not node.tiering.expand_to_host_disk_percent:
        return 0
    try:
        st = os.statvfs(node.tiering.tier_dir)
    except OSError:
        return 0
    return st.f_bavail * st.f_frsize


def disk_tier_condition(node: Node) -> dict[str, str] | None:
    """The GPUNode condition about the disk tier: None when the node sells no disk tier at all."""
    settings = node.tiering
    caps = list(node.tier_capacity.values())
    if not (settings.tier_dir and settings.expand_to_host_disk_percent and caps):
        return None
    short = next((c for c in caps if not c.disk_ok), None)
    if short is not None:
        return {
            "type": DISK_TIER_CONDITION,
            "status": "False",
            "reason": "FreeDiskBelowGuidance",
            "message": short.message,
        }
    message = f"tier directory {settings.tier_dir} has the free space the disk tier needs"
    return {"type": DISK_TIER_CONDITION, "status": "True", "reason": "FreeDiskAvailable", "message": message}


def merge_condition(current: list[dict[str, Any]], wanted: dict[str, str]) -> tuple[list[dict[str, Any]], bool]:
    """current with wanted in place of its type (transition time kept unless the status moved);
    and whether anything changed."""
    old = next((c for c in current if c.get("type") == wanted["type"]), None)
    if old is not None and all(old.get(k) == v for k, v in wanted.items()):
        return current, False
    since = (
        _now() if old is None or old.get("status") != wanted["status"] else str(old.get("lastTransitionTime") or _now())
    )
    condition = dict(wanted, lastTransitionTime=since)
    return [c for c in current if c.get("type") != wanted["type"]] + [condition], True


class NodeReporter:
    def __init__(
        self,
        api: KubeClient,
        node: Node,
        *,
        node_name: str,
        state_dir: Path,
        interval: float = 10.0,
        progressive: bool = False,
        kubelet: PodResourcesClient | None = None,
        resources: frozenset[str] = DEFAULT_RESOURCES,
    ) -> None:
        if progressive and kubelet is None:
            raise ValueError("progressive-migration mode needs a kubelet pod-resources client")
        self.api = api
        self.node = node
        self.node_name = node_name
        self.state_dir = state_dir
        self.interval = interval
        self.progressive = progressive
        self.kubelet = kubelet
        self.resources = resources
        self.recorder = EventRecorder(api, COMPONENT, host=node_name)
        self.holdings = Holdings({})  # the latest listing that succeeded
        # Until the first listing nothing is known: GPUs TensorFusion does not use yet wait for it.
        self.kubelet_error: str | None = NOT_LISTED if progressive else None
        self.reports = 0
        self.failures = 0
        self._unknown: tuple[UnknownDevice, ...] = ()
        self._heartbeat_at = float("-inf")
        self._gpunode_missing = False
        self._wake = asyncio.Event()
        node.on_change(self._wake.set)
        self._apply_availability()

    async def run(self) -> None:
        failures = 0
        while True:
            self._wake.clear()
            try:
                await self.report_once()
                failures = 0
            except KubeError as exc:
                failures += 1
                self.failures += 1
                log.warning("Kubernetes report failed (%s); retrying", exc)
            except Exception:  # a bad answer must not stop the node daemon
                failures += 1
                self.failures += 1
                log.exception("Kubernetes report failed; retrying")
            delay = min(MAX_BACKOFF, self.interval * 2 ** min(failures, 16)) if failures else self.interval
            with contextlib.suppress(TimeoutError):  # asyncio.timeout: a cancel is never swallowed
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    async def report_once(self) -> None:
        await self._act_on_breaches()
        await self.learn()
        views = self._views()
        await self._write_gpus(views)
        await self._write_gpunode()
        self.reports += 1

    async def _act_on_breaches(self) -> None:
        """An Event on each pod found past its isolation, and its eviction when the node's
        action is evict (the Eviction API: PodDisruptionBudgets are honoured)."""
        breaches, self.node.breaches[:] = list(self.node.breaches), []
        for breach in breaches:
            if breach.pod is None:
                continue  # an API worker: the node's log line and metric are the report
            namespace, name, uid = breach.pod
            pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace, "uid": uid}}
            await self.recorder.emit(pod, "Warning", breach.reason, breach.message)
            if not breach.evict:
                continue
            eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": pod["metadata"]}
            try:
                await request_json(
                    self.api, "POST", f"/api/v1/namespaces/{namespace}/pods/{name}/eviction", body=eviction
                )
                log.warning("pod %s/%s evicted: %s", namespace, name, breach.message)
            except KubeError as exc:
                log.error("pod %s/%s: eviction failed (%s); it keeps running", namespace, name, exc)

    # ---- the kubelet ----------------------------------------------------------------------

    async def learn(self) -> None:
        """Progressive mode: the device plugin's allocations from the kubelet, into the Node."""
        if self.progressive and self.kubelet is not None:
            try:
                assignments = await self.kubelet.list_assignments()
            except KubeletUnavailable as exc:
                if self.kubelet_error != str(exc):
                    log.warning("%s: GPUs TensorFusion does not use are not offered until it answers", exc)
                self.kubelet_error = str(exc)
            else:
                if self.kubelet_error not in (None, NOT_LISTED):
                    log.info("kubelet pod-resources API readable again")
                self.kubelet_error = None
                indices = {uuid: gpu.index for uuid, gpu in self.node.gpus.items()}
                self.holdings = map_assignments(assignments, indices, resources=self.resources)
                self._report_unknown(self.holdings.unknown)
        self._apply_availability()

    def _apply_availability(self) -> None:
        unavailable = {}
        for uuid, (_, use, view) in self._inputs().items():
            verdict = offer(use, view, progressive=self.progressive)
            if not verdict.offered:
                unavailable[uuid] = verdict.message
        self.node.set_availability(self.holdings.holders, unavailable)

    def _report_unknown(self, unknown: tuple[UnknownDevice, ...]) -> None:
        for device in sorted(set(unknown) - set(self._unknown), key=lambda u: (u.holder, u.device_id)):
            log.warning(
                "device plugin gave %s %s %r, which maps to no GPU of this node: %s",
                device.holder,
                device.resource,
                device.device_id,
                device.reason,
            )
        self._unknown = unknown

    def _inputs(self) -> dict[str, tuple[GPUFacts, TensorFusionUse, DevicePluginView]]:
        inputs = {}
        for uuid, gpu in self.node.gpus.items():
            state = self.node.allocator.gpus[uuid]
            facts = GPUFacts(uuid, gpu.index, gpu.name, gpu.vram_bytes, round(self.node.rated[uuid] * 1000))
            use = TensorFusionUse(state.used_tflops, state.used_vram, tuple(sorted(state.workers)))
            view = DevicePluginView(self.holdings.holders.get(uuid, ()), self.kubelet_error)
            inputs[uuid] = (facts, use, view)
        return inputs

    def _views(self) -> dict[str, dict[str, Any]]:
        """The desired GPU objects by name."""
        desired = {}
        for facts, use, view in self._inputs().values():
            body = desired_gpu(facts, self.node_name, use, view, progressive=self.progressive)
            desired[body["metadata"]["name"]] = body
        return desired

    # ---- GPU objects ----------------------------------------------------------------------

    async def _write_gpus(self, desired: dict[str, dict[str, Any]]) -> None:
        query = {"labelSelector": f"{HOSTNAME_LABEL}={self.node_name}"}
        listed = await request_json(self.api, "GET", GPUS.collection(), query=query)
        current = {str(o["metadata"]["name"]): o for o in (listed or {}).get("items") or []}
        for name, body in desired.items():
            obj = current.get(name) or await self._create(body)
            previous = _status(obj)
            patch = status_patch(previous, body["status"])
            if not patch:
                continue
            updated = await self._patch_status("GPU", name, patch)
            change = transition(previous.get("usedBy"), body["status"]["usedBy"])
            if change is not None:
                await self._handed_over(updated, change)
        for name, obj in current.items():
            if name in desired:
                continue
            patch = vanished_status(_status(obj), self.node_name)
            if patch:
                log.warning("GPU %s (%s) is no longer seen on this node", name, _status(obj).get("uuid"))
                updated = await self._patch_status("GPU", name, patch)
                await self.recorder.emit(updated, "Warning", "GPUGone", patch["message"])

    async def _create(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create (the server drops status on create); an existing one (e.g. not labelled for
        this node yet) is fetched and labelled instead."""
        name = body["metadata"]["name"]
        try:
            created: dict[str, Any] = await request_json(self.api, "POST", GPUS.collection(), body=body)
            log.info("GPU %s reported", name)
            return created
        except Conflict:
            pass
        obj: dict[str, Any] = await request_json(self.api, "GET", GPUS.item(name))
        if Obj(obj).meta.labels.get(HOSTNAME_LABEL) != self.node_name:
            patch = {"metadata": {"labels": {HOSTNAME_LABEL: self.node_name}}}
            obj = await request_json(self.api, "PATCH", GPUS.item(name), body=patch, content_type=MERGE_PATCH)
        return obj

    async def _patch_status(self, kind: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        path = resource_for(kind).item(name, subresource="status")
        updated: dict[str, Any] = await request_json(
            self.api, "PATCH", path, body={"status": status}, content_type=MERGE_PATCH
        )
        return updated

    async def _handed_over(self, gpu: dict[str, Any], change: str) -> None:
        status = _status(gpu)
        which = f"GPU {status.get('index')} ({status.get('uuid')}) on node {self.node_name}"
        if change == "taken":
            message = f"{which}: {status.get('message')}; TensorFusion will not place work on it"
            log.warning("%s", message)
            await self.recorder.emit(gpu, "Normal", "DevicePluginAllocated", message)
        else:
            message = f"{which}: released by the NVIDIA device plugin; offered to TensorFusion again"
            log.info("%s", message)
            await self.recorder.emit(gpu, "Normal", "DevicePluginReleased", message)

    # ---- the GPUNode ----------------------------------------------------------------------

    async def _write_gpunode(self) -> None:
        try:
            gpunode = await request_json(self.api, "GET", GPUNODES.item(self.node_name))
        except NotFound:
            if not self._gpunode_missing:
                log.info("no GPUNode %s yet (the controller creates it): its status waits", self.node_name)
            self._gpunode_missing = True
            return
        self._gpunode_missing = False
        models = [g.name for g in sorted(self.node.gpus.values(), key=lambda g: g.index)]
        info = host_info(self.node_name, self.state_dir, models)
        if self.node.tiering.enabled:
            # The scheduler sells dataDiskSize x vramExpandToHostDisk: on a tiering node that is
            # the disk the cold tier can really use (none below the free-space guidance).
            caps = list(self.node.tier_capacity.values())
            usable = _tier_disk_free(self.node) if caps and all(c.disk_ok for c in caps) else 0
            info["dataDiskSize"] = bytes_quantity(usable)
        current = _status(gpunode)
        written_info = {k: (current.get("nodeInfo") or {}).get(k) for k in info}
        hypervisor = current.get("hypervisorStatus") or {}
        same = (
            written_info == info
            and hypervisor.get("hypervisorState") == "Running"
            and hypervisor.get("hypervisorVersion") == tfcore.__version__
        )
        wanted = disk_tier_condition(self.node)
        conditions, moved = merge_condition(list(current.get("conditions") or []), wanted) if wanted else ([], False)
        if same and not moved and time.monotonic() - self._heartbeat_at < HEARTBEAT_PERIOD:
            return
        status: dict[str, Any] = {
            "nodeInfo": info,
            "hypervisorStatus": {
                "hypervisorState": "Running",
                "hypervisorVersion": tfcore.__version__,
                "lastHeartbeatTime": _now(),
            },
        }
        if moved:
            status["conditions"] = conditions
        updated = await self._patch_status("GPUNode", self.node_name, status)
        self._heartbeat_at = time.monotonic()
        if moved and wanted is not None and wanted["status"] == "False":
            await self.recorder.emit(updated, "Warning", wanted["reason"], wanted["message"])
