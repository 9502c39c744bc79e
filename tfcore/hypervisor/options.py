"""The node's command-line options, defined once for `tensor-fusion hypervisor` and `up`."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from tfcore.config.env import PROGRESSIVE_MIGRATION_ENV

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
        choices=("warn", "evict"),
        default=env.get("TF_ON_ISOLATION_BREACH", "warn"),
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
        default=env.get(PROGRESSIVE_MIGRATION_ENV, "").lower() == "true",
        help="coexist with the NVIDIA device plugin: never use GPUs it allocated "
        f"(default: ${PROGRESSIVE_MIGRATION_ENV} == true)",
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


def node_argv(args: argparse.Namespace) -> list[str]:
    """The options in `args` written back as arguments (for `up` to hand to the hypervisor)."""
    argv = ["--host", args.host, "--port", str(args.port), "--tick", str(args.tick)]
    argv += ["--tflops-oversell", str(args.tflops_oversell)]
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
    argv.append(progressive if args.nvidia_progressive_migration else progressive.replace("--", "--no-", 1))
    argv += ["--kubelet-pod-resources-socket", str(args.kubelet_pod_resources_socket)]
    for resource in args.device_plugin_resource:
        argv += ["--device-plugin-resource", resource]
    return argv
