"""The scheduler plugins of tensor-fusion and the registry that names them."""

from __future__ import annotations

from tfcore.sched.framework import PluginEntry, PluginUse, Registry
from tfcore.sched.plugins import gpu_resources_fit, topology
from tfcore.sched.plugins.gpu_resources_fit import GPUResourcesFit, GPUResourcesFitArgs
from tfcore.sched.plugins.topology import GPUNetworkTopologyAware, TopologyArgs

__all__ = [
    "GPUNetworkTopologyAware",
    "GPUResourcesFit",
    "GPUResourcesFitArgs",
    "TopologyArgs",
    "default_plugin_uses",
    "default_registry",
]


def default_registry() -> Registry:
    """A fresh registry of our plugins (a new dict each call: no process-global state)."""
    return {
        gpu_resources_fit.NAME: PluginEntry(
            factory=gpu_resources_fit.factory,
            parse_args=gpu_resources_fit.parse_args,
            points=frozenset({"preFilter", "filter", "score", "reserve"}),
        ),
        topology.NAME: PluginEntry(
            factory=topology.factory,
            parse_args=topology.parse_args,
            points=frozenset({"filter", "score"}),
        ),
    }


def default_plugin_uses() -> list[PluginUse]:
    """The tensor-fusion-scheduler profile when the config enables nothing explicitly."""
    return [
        PluginUse(gpu_resources_fit.NAME, gpu_resources_fit.GPUResourcesFitArgs()),
        PluginUse(topology.NAME, topology.TopologyArgs()),
    ]
