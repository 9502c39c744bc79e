"""The hypervisor's pure core: GPU ratings, TFLOPS -> share conversion and the per-GPU
closed-loop compute controller.  No I/O: the daemon (daemons.hypervisor) feeds it samples
from NVML and the worker regions and applies the refill rates it returns.
"""

from tfcore.hypervisor.controller import ControllerSettings, GPUController, TenantCommand, TenantSample
from tfcore.hypervisor.costs import CostHistory
from tfcore.hypervisor.models import GPU_MODELS, GPUModel, parse_tflops_overrides, rated_tflops
from tfcore.hypervisor.shares import TenantShare, share_of
from tfcore.hypervisor.waterfill import Demand, water_fill

__all__ = [
    "GPU_MODELS",
    "ControllerSettings",
    "CostHistory",
    "Demand",
    "GPUController",
    "GPUModel",
    "TenantCommand",
    "TenantSample",
    "TenantShare",
    "parse_tflops_overrides",
    "rated_tflops",
    "share_of",
    "water_fill",
]
