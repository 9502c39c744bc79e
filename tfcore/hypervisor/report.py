"""What a hypervisor writes to Kubernetes about its GPUs (pure, no I/O).

One cluster-scoped GPU object per physical GPU, named after its UUID lowercased (a valid
object name, stable across restarts and node renames), labelled `kubernetes.io/hostname:
<node>` so a hypervisor can list its own GPUs with a label selector, and with a status built
here: identity, capacity, what TensorFusion requests leave available, and who may use it.

Who may use a GPU (`usedBy`) in NVIDIA progressive-migration mode comes from the kubelet's
pod-resources listing: a GPU the device plugin handed to any pod is `nvidia-device-plugin`
and has nothing available.  When the listing cannot be read, a GPU TensorFusion does not
already use is not offered: its phase is `Unknown` (a phase the scheduler never places on,
tfcore.sched.state.SCHEDULABLE_PHASES) with a message saying why.  Outside progressive mode
every GPU is `tensor-fusion`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Final, Literal

from tfcore.model.codec import to_builtins
from tfcore.model.meta import GPUResources, ObjectMeta
from tfcore.model.node import GPU, GPUStatus, PodGPUInfo, RunningAppDetail
from tfcore.model.quantity import Quantity

API_VERSION: Final = "tensor-fusion.ai/v1"
HOSTNAME_LABEL: Final = "kubernetes.io/hostname"
TENSOR_FUSION: Final = "tensor-fusion"
DEVICE_PLUGIN: Final = "nvidia-device-plugin"
UsedBy = Literal["tensor-fusion", "nvidia-device-plugin"]
NOT_OFFERED_PHASE: Final = "Unknown"  # not in tfcore.sched.state.SCHEDULABLE_PHASES


@dataclass(frozen=True, slots=True)
class GPUFacts:
    """A GPU as the hypervisor found it (NVML) and rated it."""

    uuid: str
    index: int
    model: str
    vram_bytes: int
    tflops_milli: int
    vendor: str = "NVIDIA"
    numa_node: int | None = None


@dataclass(frozen=True, slots=True)
class TensorFusionUse:
    """What this node's TensorFusion workers request on one GPU."""

    tflops_milli: int = 0
    vram_bytes: int = 0
    workers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DevicePluginView:
    """The device plugin's holders of one GPU as far as known.

    `holders` comes from the latest listing that succeeded (empty before the first); `error`
    is set when the latest listing failed, `None` when it succeeded or is not needed."""

    holders: tuple[str, ...] = ()
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Offer:
    """Whether TensorFusion may place work on a GPU, and the status words that say so."""

    used_by: UsedBy
    phase: Literal["Running", "Unknown"]
    message: str

    @property
    def offered(self) -> bool:
        return self.used_by == TENSOR_FUSION and self.phase != NOT_OFFERED_PHASE


def gpu_object_name(uuid: str) -> str:
    return uuid.lower()


def offer(use: TensorFusionUse, view: DevicePluginView, *, progressive: bool) -> Offer:
    if not progressive:
        return Offer(TENSOR_FUSION, "Running", _tf_message(use))
    if view.error is not None and not use.workers:
        used_by: UsedBy = DEVICE_PLUGIN if view.holders else TENSOR_FUSION
        return Offer(
            used_by,
            "Unknown",
            f"not offered to TensorFusion: the kubelet pod-resources API cannot be read ({view.error}), "
            "so the NVIDIA device plugin's allocations are unknown",
        )
    if view.holders:
        message = f"held by the NVIDIA device plugin for {', '.join(view.holders)}"
        if use.workers:
            message += f"; CONFLICT: TensorFusion workers {', '.join(use.workers)} run on it too"
        return Offer(DEVICE_PLUGIN, "Running", message)
    message = _tf_message(use)
    if view.error is not None:
        message += f" (kubelet pod-resources API unreadable: {view.error}; kept because TensorFusion uses it)"
    return Offer(TENSOR_FUSION, "Running", message)


def _tf_message(use: TensorFusionUse) -> str:
    if not use.workers:
        return "free for TensorFusion"
    return f"TensorFusion workers: {', '.join(use.workers)}"


def tflops_quantity(milli: int) -> str:
    return Quantity.from_value(Fraction(milli, 1000)).text


def bytes_quantity(count: int) -> str:
    return Quantity.from_value(count, binary=True).text


def desired_gpu(
    facts: GPUFacts,
    node: str,
    use: TensorFusionUse,
    view: DevicePluginView,
    *,
    progressive: bool,
) -> dict[str, Any]:
    """The GPU object (metadata for creation, and the full status) the hypervisor wants.

    The device plugin's holders are listed in runningApps with isExternal. Available =
    capacity minus TensorFusion's requests (never below zero); a GPU the device plugin holds
    has nothing available."""
    verdict = offer(use, view, progressive=progressive)
    if verdict.used_by == DEVICE_PLUGIN:
        free_tflops, free_vram = 0, 0
    else:
        free_tflops = max(0, facts.tflops_milli - use.tflops_milli)
        free_vram = max(0, facts.vram_bytes - use.vram_bytes)
    apps = [RunningAppDetail(name=w, count=1) for w in use.workers]
    apps += [
        RunningAppDetail(name=pod, namespace=ns, count=1, pods=[PodGPUInfo(name=pod, namespace=ns, is_external=True)])
        for ns, _, pod in (holder.partition("/") for holder in view.holders)
    ]
    gpu = GPU(
        api_version=API_VERSION,
        kind="GPU",
        metadata=ObjectMeta(name=gpu_object_name(facts.uuid), labels={HOSTNAME_LABEL: node}),
        status=GPUStatus(
            phase=verdict.phase,
            uuid=facts.uuid,
            gpu_model=facts.model,
            vendor=facts.vendor,
            index=facts.index,
            numa_node=facts.numa_node,
            capacity=GPUResources(
                tflops=Quantity(tflops_quantity(facts.tflops_milli)), vram=Quantity(bytes_quantity(facts.vram_bytes))
            ),
            available=GPUResources(
                tflops=Quantity(tflops_quantity(free_tflops)), vram=Quantity(bytes_quantity(free_vram))
            ),
            node_selector={HOSTNAME_LABEL: node},
            used_by=verdict.used_by,
            message=verdict.message,
            running_apps=apps or None,
        ),
    )
    built: dict[str, Any] = to_builtins(gpu)
    return built


def vanished_status(previous: Mapping[str, Any], node: str) -> dict[str, Any]:
    """The status patch for a GPU of this node the hypervisor no longer sees (not deleted: the
    controller owns the object's ownership; a returning GPU is reported again)."""
    message = f"the hypervisor on {node} no longer sees this GPU"
    if previous.get("phase") == NOT_OFFERED_PHASE and previous.get("message") == message:
        return {}
    return {"phase": NOT_OFFERED_PHASE, "message": message, "available": {"tflops": "0", "vram": "0"}}


def status_patch(current: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch taking `current` status to `desired` ({} when equal): changed keys, and
    null for keys `desired` no longer has."""
    current = current or {}
    patch: dict[str, Any] = {k: v for k, v in desired.items() if current.get(k) != v}
    patch.update({k: None for k in current if k not in desired})
    return patch


def transition(previous_used_by: str | None, now: str) -> Literal["taken", "released"] | None:
    """Whether a GPU changed hands between TensorFusion and the device plugin."""
    if now == DEVICE_PLUGIN and previous_used_by != DEVICE_PLUGIN:
        return "taken"
    if now != DEVICE_PLUGIN and previous_used_by == DEVICE_PLUGIN:
        return "released"
    return None
