"""`tensor-fusion webhook`: serve pod admission over HTTPS until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
from typing import Any

import uvloop

from daemons.webhook.cluster import ClusterState, informers, pod_informer
from daemons.webhook.server import CertificateReloader, Metrics, Webhook, build_app, watch_certificate
from tfcore.admission import CanaryLedger, InjectionConfig
from tfcore.admission.inject import DEFAULT_IMAGE, DEFAULT_REGION_HOST_DIR
from tfcore.config.env import PROGRESSIVE_MIGRATION_ENV, progressive_migration
from tfcore.k8s import connect
from tfcore.k8s.admission_support import OwnerPods
from tfcore.logs import setup_logging
from tfcore.model.errors import ValidationError
from tfcore.model.pods import SCHEDULER_NAME
from tfcore.native import library_paths
from tfcore.web.app import Listener, add_background, add_ready_check, serve, server_tls

log = logging.getLogger(__name__)


def register(commands: Any) -> None:
    """Adds `webhook` to the CLI's subparsers."""
    parser = commands.add_parser("webhook", help="serve the pod admission webhook (HTTPS)")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    parser.add_argument("--port", type=int, default=9443, help="HTTPS port (default 9443)")
    parser.add_argument("--tls-cert-file", required=True, help="serving certificate (PEM); reloaded when it changes")
    parser.add_argument("--tls-key-file", required=True, help="its private key (PEM)")
    parser.add_argument("--tls-reload-interval", type=float, default=10.0, help="seconds between file checks")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster service account, else ~/.kube)")
    parser.add_argument("--image", default=DEFAULT_IMAGE, help="image of the init container copying the shim")
    parser.add_argument(
        "--shim-path", help="path of libtfshim.so inside --image (default: where this installation has it)"
    )
    parser.add_argument(
        "--region-host-dir", default=DEFAULT_REGION_HOST_DIR, help="the hypervisor's worker region directory on nodes"
    )
    parser.add_argument(
        "--tier-host-dir",
        default="",
        help="the hypervisors' --tier-dir on nodes: each TF pod gets its own directory of it for the disk "
        "tier of VRAM tiering (TF_TIER_DIR); default none",
    )
    parser.add_argument("--scheduler-name", default=SCHEDULER_NAME, help="schedulerName set on TF pods")
    parser.add_argument(
        "--nvidia-progressive-migration",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"route native nvidia.com/gpu pods to --scheduler-name (default: ${PROGRESSIVE_MIGRATION_ENV})",
    )
    parser.add_argument("--canary-ttl", type=float, default=30.0, help="seconds a canary reservation waits for its pod")
    parser.add_argument("--grace", type=float, default=10.0, help="seconds in-flight requests get on SIGTERM")
    parser.set_defaults(handler=_run)


def injection_config(args: argparse.Namespace) -> InjectionConfig:
    shim = args.shim_path
    if shim is None:
        shim = str(library_paths()["shim"])
    routed = progressive_migration(args.nvidia_progressive_migration, os.environ)
    return InjectionConfig(
        image=args.image,
        shim_source=shim,
        region_host_dir=args.region_host_dir,
        tier_host_dir=_tier_host_dir(args.tier_host_dir),
        scheduler_name=args.scheduler_name,
        route_native_gpu_pods=routed,
    )


def _tier_host_dir(given: str) -> str:
    if given and not given.startswith("/"):
        raise ValidationError.single("--tier-host-dir", repr(given), "an absolute host path, or empty for none")
    return given.rstrip("/") or ("/" if given else "")


def _run(args: argparse.Namespace) -> int:
    setup_logging()  # TF_LOG_LEVEL / TF_LOG_FORMAT
    config = injection_config(args)  # ValidationError: exit code 2 (daemons.cli.run_command)
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(_serve(args, config))
    return 0


async def _serve(args: argparse.Namespace, config: InjectionConfig) -> None:
    api = await connect(args.kubeconfig)
    try:
        state = ClusterState()
        owner_pods = OwnerPods(api)
        metrics = Metrics()
        webhook = Webhook(
            config, state, list_owner_pods=owner_pods.list, ledger=CanaryLedger(args.canary_ttl), metrics=metrics
        )
        app = build_app(webhook)
        cluster, pods = informers(api, state), pod_informer(api, webhook.ledger)
        add_background(app, cluster.run)
        add_background(app, pods.run)
        add_ready_check(
            app, lambda: None if cluster.synced() and pods.synced.is_set() else "cluster objects not listed yet"
        )
        context = server_tls(args.tls_cert_file, args.tls_key_file)
        watch_certificate(
            app,
            CertificateReloader(
                context, args.tls_cert_file, args.tls_key_file, interval=args.tls_reload_interval, metrics=metrics
            ),
        )
        add_background(app, _forget_expired(webhook))
        await serve([(app, Listener(args.host, args.port, context))], grace=args.grace)
    finally:
        await api.close()


def _forget_expired(webhook: Webhook) -> Any:
    async def loop() -> None:
        while True:
            await asyncio.sleep(60)
            webhook.ledger.forget_expired(webhook.clock())

    return loop
