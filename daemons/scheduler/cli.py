"""`tensor-fusion scheduler`: the kube-scheduler extender and the admin API."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import uvloop

from daemons.scheduler.daemon import Options, kube_scheduler_config, run
from tfcore.config.env import PROGRESSIVE_MIGRATION_ENV, progressive_migration
from tfcore.logs import setup_logging
from tfcore.model.errors import ValidationError

SNAPSHOT_HELP = (
    "run on a static snapshot instead of a cluster: a `kubectl get -o yaml` List or multi-document YAML "
    "of Nodes, Pods, GPUPools, GPUNodes, GPUs, GPUResourceQuotas and TensorFusionClusters"
)
EXTENDER_HOST_HELP = "extender address (default: 127.0.0.1); any other address needs client-certificate TLS"
ADMIN_HOST_HELP = "admin API address (default: 127.0.0.1); any other address needs --admin-token-file"
PRINT_HELP = "print the document for the stock kube-scheduler (our plugins replaced by the extender) and exit"


def register(commands: Any) -> None:
    """Add the `scheduler` subcommand to the CLI's subparsers object."""
    p = commands.add_parser(
        "scheduler",
        help="run the GPU scheduler: kube-scheduler extender, simulate-schedule and allocation APIs",
        description="Serves the admin API (simulate-schedule, allocation) on --port and the kube-scheduler "
        "extender (filter, prioritize, bind) on --extender-host:--extender-port.",
    )
    source = p.add_mutually_exclusive_group()
    source.add_argument("--cluster-state", type=Path, metavar="FILE", help=SNAPSHOT_HELP)
    source.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig (default: in-cluster, else ~/.kube/config)")
    p.add_argument("--config", type=Path, metavar="FILE", help="scheduler-config.yaml; reloaded when it changes")
    p.add_argument("--host", default="127.0.0.1", help=ADMIN_HOST_HELP)
    p.add_argument("--port", type=int, default=8080, help="admin API port (default: 8080)")
    p.add_argument(
        "--admin-token-file", type=Path, metavar="FILE", help="bearer token the admin API's /api/ routes need"
    )
    p.add_argument("--health-host", default="0.0.0.0", help="probe and metrics address (default: 0.0.0.0)")
    p.add_argument("--health-port", type=int, help="serve only /healthz, /readyz and /metrics here (default: off)")
    p.add_argument("--extender-host", default="127.0.0.1", help=EXTENDER_HOST_HELP)
    p.add_argument("--extender-port", type=int, default=8090, help="extender port (default: 8090)")
    p.add_argument("--extender-prefix", default="", help="path prefix of the extender verbs (default: none)")
    p.add_argument("--extender-tls-cert", metavar="FILE", help="extender server certificate (PEM)")
    p.add_argument("--extender-tls-key", metavar="FILE", help="extender server key (PEM)")
    p.add_argument("--extender-client-ca", metavar="FILE", help="CA that signs kube-scheduler's client certificate")
    p.add_argument(
        "--default-pool",
        metavar="NAME",
        help="pool for pods that name none (default: the TensorFusionCluster's isDefault pool, else the only pool)",
    )
    p.add_argument(
        "--nvidia-progressive-migration",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="NVIDIA GPU Operator coexistence: native nvidia.com/gpu pods only on nodes without TensorFusion "
        "workers, and none of ours where the device plugin's choice is not yet known "
        f"(default: ${PROGRESSIVE_MIGRATION_ENV})",
    )
    p.add_argument("--print-kube-scheduler-config", action="store_true", help=PRINT_HELP)
    p.set_defaults(handler=_scheduler)


def _options(args: argparse.Namespace) -> Options:
    return Options(
        cluster_state=args.cluster_state,
        kubeconfig=args.kubeconfig,
        config=args.config,
        host=args.host,
        port=args.port,
        admin_token_file=args.admin_token_file,
        health_host=args.health_host,
        health_port=args.health_port,
        extender_host=args.extender_host,
        extender_port=args.extender_port,
        extender_prefix=args.extender_prefix,
        tls_cert=args.extender_tls_cert,
        tls_key=args.extender_tls_key,
        client_ca=args.extender_client_ca,
        default_pool=args.default_pool,
        freeze_heap=True,
        native_gpu_pods=progressive_migration(args.nvidia_progressive_migration, os.environ),
    )


def _scheduler(args: argparse.Namespace) -> int:
    setup_logging()
    try:
        options = _options(args)
        options.check()
        if args.print_kube_scheduler_config:
            print(kube_scheduler_config(options), end="")
            return 0
        _run(options)
    except ValidationError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


def _run(options: Options) -> None:
    uvloop.run(run(options))
