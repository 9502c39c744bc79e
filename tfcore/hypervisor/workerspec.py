"""What one worker's region enforces: one value from the pod's annotations (or the HTTP API) to the region.

A pod's decision (tfcore.hypervisor.podworkers), the HTTP API's CreateWorker, Node.create_worker
and the worker's record all carry this one object, so a field has one name everywhere:
milli-TFLOPS end in `_milli`, bytes in `_bytes`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    name: str  # NAME (API worker) or NAMESPACE/POD (pod worker)
    vram_limit_bytes: int  # per GPU
    tflops_request_milli: int = 0  # per GPU; 0 with a limit: best effort up to it
    tflops_limit_milli: int = 0  # per GPU; 0: the request is the limit (none at all: the whole GPU)
    vram_request_bytes: int = 0  # what the node's allocator books per GPU (0: the limit)
    gpu_count: int = 1
    gpus: tuple[str, ...] = ()  # UUIDs in region device order; empty: the node chooses gpu_count
    owner_pid: int = 0  # 0: no owner process (released by the API only)
    tenant_uid: int | None = None  # owner of the region's state file (the pod's runAsUser)
    pod_uid: str = ""  # set for a pod worker: the pod its region is made for
    workload: str = ""
    qos: str = "medium"  # low, medium, high, critical: how soon it is frozen when idle
    vram_tiering: bool = True  # False: the workload opted out (tensor-fusion.ai/vram-tiering: "false")

    @property
    def booked_vram_bytes(self) -> int:
        return self.vram_request_bytes or self.vram_limit_bytes
