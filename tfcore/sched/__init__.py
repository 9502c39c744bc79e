"""The GPU scheduler core: allocator, plugin framework and plugins. Pure: no I/O, no threads.

Typical use (the scheduler daemon, simulate-schedule, standalone mode)::

    allocator = Allocator.build(pools, nodes, gpus, default_pool="shared")
    rebuild_from_pods(allocator, pods)                   # restart: state from the cluster
    framework = Framework(allocator, config.plugin_uses(), default_registry())
    result = framework.schedule(pod_request(pod_dict), dry_run=True, diagnose=True)
    result.to_builtins()                                 # node, GPUs, filter steps, reasons
"""

from tfcore.sched.allocator import (
    Allocation,
    AllocationError,
    Allocator,
    AllocatorListener,
    GPUShare,
    QuotaPolicy,
    Usage,
)
from tfcore.sched.framework import (
    SUCCESS,
    BindPlugin,
    BoundedScorePlugin,
    Code,
    CycleState,
    FilterPlugin,
    FilterStep,
    Framework,
    Handle,
    PluginEntry,
    PluginUse,
    PreFilterPlugin,
    RankedScorePlugin,
    Registry,
    ReservePlugin,
    ScheduleResult,
    ScorePlugin,
    Status,
)
from tfcore.sched.plugins import default_plugin_uses, default_registry
from tfcore.sched.quota import GPUResourceQuotaPolicy
from tfcore.sched.records import RebuildReport, allocation_patch, holds_gpus, rebuild_from_pods
from tfcore.sched.request import PodRequest, from_workload_request, pod_request
from tfcore.sched.state import (
    GPUSpec,
    NodeSpec,
    PoolInfo,
    gpu_from_model,
    node_from_model,
    pool_from_model,
    specs_from_models,
)

__all__ = [
    "SUCCESS",
    "Allocation",
    "AllocationError",
    "Allocator",
    "AllocatorListener",
    "BindPlugin",
    "BoundedScorePlugin",
    "Code",
    "CycleState",
    "FilterPlugin",
    "FilterStep",
    "Framework",
    "GPUResourceQuotaPolicy",
    "GPUShare",
    "GPUSpec",
    "Handle",
    "NodeSpec",
    "PluginEntry",
    "PluginUse",
    "PodRequest",
    "PoolInfo",
    "PreFilterPlugin",
    "QuotaPolicy",
    "RankedScorePlugin",
    "RebuildReport",
    "Registry",
    "ReservePlugin",
    "ScheduleResult",
    "ScorePlugin",
    "Status",
    "Usage",
    "allocation_patch",
    "default_plugin_uses",
    "default_registry",
    "from_workload_request",
    "gpu_from_model",
    "holds_gpus",
    "node_from_model",
    "pod_request",
    "pool_from_model",
    "rebuild_from_pods",
    "specs_from_models",
]
