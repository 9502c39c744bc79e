"""The node's command-line options, defined once for `tensor-fusion hypervisor` and `up` (which
hands them on to the hypervisor it starts)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from tfcore.config.env import (
    BREACH_ACTIONS,
    HYPERVISOR_SCHEDULING_CONFIG,
    ON_ISOLATION_BREACH,
    PROGRESSIVE_MIGRATION,
    PROGRESSIVE_MIGRATION_ENV,
    progressive_migration,
)
from tfcore.hypervisor import parse_tflops_overrides
from tfcore.hypervisor.deviceplugin import check_resource_name
from tfcore.hypervisor.freezeconfig import FreezeTTLs, resolve_freeze_ttls, template_ttls
from tfcore.hypervisor.models import GPUModel
from tfcore.hypervisor.tiering import TierSettings, parse_freeze_ttl
from tfcore.model.errors import ValidationError
from tfcore.model.quantity import parse_quantity

DEFAULT_PORT: Final = 7311
DEFAULT_POD_RESOURCES_SOCKET: Final = Path("/var/lib/kubelet/pod-resources/kubelet.sock")


def add_node_arguments(parser: argparse.ArgumentParser, environ: Mapping[str, str] | None = None) -> None:
    env = os.environ if environ is None else environ
    add = parser.add_argument
    add(
        "--state-dir",
        type=Path,
        default=None,
        help="worker regions and node files (default: $TF_STATE_DIR, "
        "/run/tensor-fusion for root, else a per-user runtime directory)",
    )
    add("--host", default="127.0.0.1", help="API address (default 127.0.0.1: node-local)")
    add("--port", type=int, default=DEFAULT_PORT, help=f"API port (default {DEFAULT_PORT}; 0 picks a free one)")
    add(
        "--token-file",
        type=Path,
        default=None,
        help="bearer token for state-changing calls (default STATE_DIR/token, created mode 0600)",
    )
    add("--tick", type=float, default=0.1, help="controller period in seconds (default 0.1)")
    add(
        "--gpu-tflops",
        action="append",
        default=[],
        metavar="NAME=TFLOPS",
        help="rate a GPU model, overriding the built-in table (repeatable)",
    )
    add(
        "--tflops-oversell",
        type=int,
        default=100,
        metavar="PERCENT",
        help="TFLOPS requests may add up to this percent of a GPU (default 100)",
    )
    add(
        "--on-isolation-breach",
        choices=BREACH_ACTIONS,
        default=None,
        help="when a pod worker is found past its isolation (NVML charges it more VRAM than its limit "
        "or than the shim recorded, its state file damaged, its compute counters rewritten): warn "
        "(a log line, a metric and an Event on the pod; default, or $TF_ON_ISOLATION_BREACH) or "
        "evict (the same, and the pod is evicted)",
    )
    add("--simulate", action="store_true", help="use the simulated GPU even if an NVIDIA driver is present")
    add(
        "--metrics-store",
        type=Path,
        default=None,
        metavar="FILE",
        help="embedded metrics store (DuckDB file) to feed tf_worker_usage and tf_gpu_usage into",
    )
    add(
        "--metrics-interval",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how often usage is written to the metrics store (default 5)",
    )
    tier = parser.add_argument_group("VRAM tiering (sell VRAM beyond the GPU; idle workers move out)")
    tier.add_argument(
        "--vram-expand-to-host-mem",
        type=int,
        default=None,
        metavar="PCT",
        help="sell this percent of each GPU's memory more, backed by host memory (warm tier). Wins over the "
        "pool's capacityConfig.oversubscription.vramExpandToHostMem (a percent of host RAM, followed live "
        "in a cluster); default: the pool's, 0 (off) without one",
    )
    tier.add_argument(
        "--vram-expand-to-host-disk",
        type=int,
        default=None,
        metavar="PCT",
        help="and this percent more, backed by files in --tier-dir (cold tier). Wins over the pool's "
        "vramExpandToHostDisk (a percent of the tier directory's free space); default: the pool's, 0 without one",
    )
    tier.add_argument("--tier-dir", default="", metavar="DIR", help="directory of the disk tier")
    tier.add_argument(
        "--tier-min-free-disk",
        default="100G",
        metavar="QUANTITY",
        help="below this much free space in --tier-dir no disk tier is sold (default 100G, the deployment guidance)",
    )
    tier.add_argument(
        "--freeze-ttl",
        action="append",
        default=[],
        metavar="QOS=MEM/DISK",
        help="idle time after which a worker of QOS is frozen to host memory and to disk, e.g. "
        "low=30s/10m or high=1d/never (repeatable; durations 90s, 2m, 1h30m, 1d, 1w or never). Wins over "
        "the pool's SchedulingConfigTemplate (autoFreezeAndResume.autoFreeze) and "
        "$TF_HYPERVISOR_SCHEDULING_CONFIG for that QOS; defaults low=1m/1h medium=2m/2h high=1d/1w "
        "critical=never/never",
    )
    kube = parser.add_argument_group("Kubernetes reporting (on when a node name and a cluster are known)")
    kube.add_argument(
        "--node-name",
        default=env.get("NODE_NAME") or None,
        help="this node's Kubernetes name; GPU objects and GPUNode status are written for it (default: $NODE_NAME)",
    )
    kube.add_argument(
        "--kubeconfig",
        default=None,
        metavar="FILE",
        help="cluster to report to (default: the in-cluster service account when running in a pod)",
    )
    kube.add_argument(
        "--report-interval",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how often GPUs and the GPUNode status are reported (default 10; also after every worker change)",
    )
    kube.add_argument(
        "--nvidia-progressive-migration",
        action=argparse.BooleanOptionalAction,
        default=_progressive_default(env),
        help="coexist with the NVIDIA device plugin: never use GPUs it allocated "
        f"(default: ${PROGRESSIVE_MIGRATION_ENV}, true/false/1/0/yes/no/on/off)",
    )
    kube.add_argument(
        "--kubelet-pod-resources-socket",
        type=Path,
        default=DEFAULT_POD_RESOURCES_SOCKET,
        metavar="PATH",
        help=f"the kubelet's pod-resources API socket (default {DEFAULT_POD_RESOURCES_SOCKET})",
    )
    kube.add_argument(
        "--device-plugin-resource",
        action="append",
        default=[],
        metavar="NAME",
        help="extended resource whose devices the device plugin holds (repeatable; default nvidia.com/gpu)",
    )


def _progressive_default(env: Mapping[str, str]) -> bool | None:
    """The chart's switch, read as every daemon reads it; None when malformed (main() reports it)."""
    try:
        return PROGRESSIVE_MIGRATION.read(env)
    except ValidationError:
        return None


def node_argv(args: argparse.Namespace) -> list[str]:
    """The options in `args` written back as arguments (for `up` to hand to the hypervisor)."""
    argv = ["--host", args.host, "--port", str(args.port), "--tick", str(args.tick)]
    argv += ["--tflops-oversell", str(args.tflops_oversell)]
    if args.on_isolation_breach is not None:
        argv += ["--on-isolation-breach", args.on_isolation_breach]
    if args.state_dir is not None:
        argv += ["--state-dir", str(args.state_dir)]
    if args.token_file is not None:
        argv += ["--token-file", str(args.token_file)]
    for rating in args.gpu_tflops:
        argv += ["--gpu-tflops", rating]
    if args.simulate:
        argv.append("--simulate")
    if args.metrics_store is not None:
        argv += ["--metrics-store", str(args.metrics_store)]
    argv += ["--metrics-interval", str(args.metrics_interval)]
    if args.node_name is not None:
        argv += ["--node-name", args.node_name]
    if args.kubeconfig is not None:
        argv += ["--kubeconfig", args.kubeconfig]
    argv += ["--report-interval", str(args.report_interval)]
    progressive = "--nvidia-progressive-migration"
    if args.nvidia_progressive_migration is not None:  # unset: the hypervisor reads the environment itself
        argv.append(progressive if args.nvidia_progressive_migration else progressive.replace("--", "--no-", 1))
    argv += ["--kubelet-pod-resources-socket", str(args.kubelet_pod_resources_socket)]
    for resource in args.device_plugin_resource:
        argv += ["--device-plugin-resource", resource]
    return argv + _tier_argv(args)


def _tier_argv(args: argparse.Namespace) -> list[str]:
    argv: list[str] = []
    if args.vram_expand_to_host_mem is not None:  # unset: the pool's (or none) decides
        argv += ["--vram-expand-to-host-mem", str(args.vram_expand_to_host_mem)]
    if args.vram_expand_to_host_disk is not None:
        argv += ["--vram-expand-to-host-disk", str(args.vram_expand_to_host_disk)]
    if args.tier_dir:
        argv += ["--tier-dir", args.tier_dir]
    argv += ["--tier-min-free-disk", args.tier_min_free_disk]
    for ttl in args.freeze_ttl:
        argv += ["--freeze-ttl", ttl]
    return argv


@dataclass(frozen=True, slots=True)
class NodeOptions:
    """The hypervisor's options, checked (what the flags and the environment say, in one value)."""

    host: str
    port: int
    state_dir: Path | None
    token_file: Path | None
    tick: float
    tflops_overrides: tuple[GPUModel, ...]
    tflops_oversell: int
    simulate: bool
    metrics_store: Path | None
    metrics_interval: float
    node_name: str | None
    kubeconfig: str | None
    report_interval: float
    nvidia_progressive_migration: bool
    kubelet_pod_resources_socket: Path
    device_plugin_resources: tuple[str, ...]
    on_isolation_breach: str = "warn"  # warn or evict
    tiering: TierSettings = field(default_factory=TierSettings)  # TTLs: flags > environment > defaults
    # The QoS levels --freeze-ttl set: they win over the pool's template when it arrives.
    freeze_ttl_flags: FreezeTTLs = field(default_factory=dict)
    env_freeze_ttls: FreezeTTLs = field(default_factory=dict)  # from $TF_HYPERVISOR_SCHEDULING_CONFIG
    # The --vram-expand-to-host-mem/-disk given (None: unset, the pool's percentage decides).
    expansion_flags: tuple[int | None, int | None] = (None, None)


def freeze_ttl_flags(args: argparse.Namespace) -> FreezeTTLs:
    """The TTLs --freeze-ttl sets (the last flag for a QoS wins), and only those."""
    flags: FreezeTTLs = {}
    for text in args.freeze_ttl:
        qos, mem, disk = parse_freeze_ttl(text)
        flags[qos] = (mem, disk)
    return flags


def tier_settings(args: argparse.Namespace, env_ttls: FreezeTTLs | None = None) -> TierSettings:
    ttls = resolve_freeze_ttls(freeze_ttl_flags(args), env_ttls or {})
    tier_dir = args.tier_dir
    if tier_dir and not Path(tier_dir).is_dir():
        raise ValidationError.single("--tier-dir", f"{tier_dir!r} is not a directory", "an existing directory")
    min_free = parse_quantity(args.tier_min_free_disk, field="--tier-min-free-disk").value
    if min_free < 0:
        raise ValidationError.single("--tier-min-free-disk", args.tier_min_free_disk, "a quantity such as 100G")
    mem, disk = args.vram_expand_to_host_mem or 0, args.vram_expand_to_host_disk or 0
    return TierSettings(mem, disk, tier_dir, ttls, int(min_free))


def node_options(args: argparse.Namespace, environ: Mapping[str, str]) -> NodeOptions:
    """The options from parsed flags and the environment; ValidationError names the bad one."""
    overrides = parse_tflops_overrides(args.gpu_tflops)
    if not 0.01 <= args.tick <= 5:
        raise ValidationError.single("--tick", f"{args.tick} s", "0.01 to 5 seconds")
    if not 0.1 <= args.metrics_interval <= 3600:
        raise ValidationError.single("--metrics-interval", f"{args.metrics_interval} s", "0.1 to 3600 seconds")
    if not 1 <= args.tflops_oversell <= 10000:
        raise ValidationError.single("--tflops-oversell", str(args.tflops_oversell), "1 to 10000 percent")
    check_kube_arguments(args)
    env_ttls = template_ttls(HYPERVISOR_SCHEDULING_CONFIG.read(environ))
    return NodeOptions(
        host=args.host,
        port=args.port,
        state_dir=args.state_dir,
        token_file=args.token_file,
        tick=args.tick,
        tflops_overrides=overrides,
        tflops_oversell=args.tflops_oversell,
        simulate=args.simulate,
        metrics_store=args.metrics_store,
        metrics_interval=args.metrics_interval,
        node_name=args.node_name,
        kubeconfig=args.kubeconfig,
        report_interval=args.report_interval,
        nvidia_progressive_migration=progressive_migration(args.nvidia_progressive_migration, environ),
        kubelet_pod_resources_socket=args.kubelet_pod_resources_socket,
        device_plugin_resources=tuple(args.device_plugin_resource),
        on_isolation_breach=args.on_isolation_breach or ON_ISOLATION_BREACH.read(environ),
        tiering=tier_settings(args, env_ttls),
        freeze_ttl_flags=freeze_ttl_flags(args),
        env_freeze_ttls=env_ttls,
        expansion_flags=(args.vram_expand_to_host_mem, args.vram_expand_to_host_disk),
    )


def check_kube_arguments(args: argparse.Namespace) -> None:
    if not 0.1 <= args.report_interval <= 3600:
        raise ValidationError.single("--report-interval", f"{args.report_interval} s", "0.1 to 3600 seconds")
    if args.node_name is not None and not args.node_name.strip():
        raise ValidationError.single("--node-name", "empty", "this node's Kubernetes name")
    if args.kubeconfig is not None and args.node_name is None:
        raise ValidationError.single("--node-name", "missing with --kubeconfig", "this node's name (or $NODE_NAME)")
    for resource in args.device_plugin_resource:
        check_resource_name(resource)
