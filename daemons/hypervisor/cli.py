"""`tensor-fusion hypervisor`: discover GPUs, own worker regions, run the compute controllers."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import os
import secrets
import signal
import sys
import time
from pathlib import Path
from typing import Any

import uvloop
from aiohttp import web

from daemons import statedir
from daemons.hypervisor import gpus as nvml
from daemons.hypervisor.freeze_ttls import startup_ttls
from daemons.hypervisor.http import build_app
from daemons.hypervisor.node import Node
from daemons.hypervisor.options import NodeOptions, add_node_arguments, node_options
from daemons.hypervisor.usage import usage_points
from daemons.hypervisor.workers import WorkerDirectory
from tfcore.config.env import SIM_STATE
from tfcore.hypervisor import ControllerSettings, rated_tflops
from tfcore.hypervisor.deviceplugin import DEFAULT_RESOURCES
from tfcore.hypervisor.expansion import resolve_expansion
from tfcore.hypervisor.nodefile import NODE_FILE, NodeFile, encode_node_file
from tfcore.hypervisor.paths import default_state_dir
from tfcore.k8s import KubeClient, KubeError, connect
from tfcore.logs import setup_logging
from tfcore.metrics.batcher import BatchingWriter
from tfcore.metrics.embedded import DuckDBStore
from tfcore.metrics.store import MetricsStore
from tfcore.model.errors import ValidationError
from tfcore.native import library_paths
from tfcore.web.app import FAILED_KEY, Listener, add_background, start
from tfcore.web.greptime import GreptimeStore, greptime_from_env

log = logging.getLogger("daemons.hypervisor")
POOL_SYNC_WAIT = 10.0  # seconds pod regions wait, at start, for the pool's tiering to be known


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "hypervisor", help="node daemon: GPUs, worker regions, closed-loop compute sharing, API"
    )
    add_node_arguments(parser)
    parser.set_defaults(handler=main)


def _token(given: Path | None, state_dir: Path) -> str:
    """--token-file as the operator gave it (a Secret mount, say), else STATE_DIR/token: this
    user's own 0600 file. Either is made on first start."""
    path = given or state_dir / "token"
    try:
        try:
            token = given.read_text() if given is not None else statedir.read_own_file(path, private=True)
        except FileNotFoundError:
            token = secrets.token_urlsafe(32)
            statedir.create_new(path, token + "\n", mode=0o600)
    except OSError as exc:
        raise ValidationError.single("--token-file", f"{path}: {exc.strerror}", "a readable token file") from None
    if not token.strip():
        raise ValidationError.single("--token-file", f"{path} is empty", "a file holding the bearer token")
    return token.strip()


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _kube_wanted(options: NodeOptions) -> bool:
    """Reporting is on with a node name and a cluster (a kubeconfig, or running in a pod)."""
    in_cluster = bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
    on = options.node_name is not None and (options.kubeconfig is not None or in_cluster)
    if not on and options.nvidia_progressive_migration:
        log.warning("--nvidia-progressive-migration has no effect without Kubernetes reporting (node name, cluster)")
    return on


def main(args: argparse.Namespace) -> int:
    setup_logging()
    options = node_options(args, os.environ)  # ValidationError: exit code 2 (daemons.cli.run_command)
    try:
        state_dir = statedir.prepare(options.state_dir or default_state_dir(os.environ))
        token = _token(options.token_file, state_dir)
        simulated = nvml.init_nvml(simulate=True if options.simulate else None)
    except statedir.UnsafeStateDir as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except nvml.NoGPU as exc:
        print(f"error: no GPU: {exc}", file=sys.stderr)
        return 1
    try:
        found = nvml.discover(simulated)
        rated: dict[str, float] = {}
        for gpu in found:
            value = rated_tflops(gpu.name, options.tflops_overrides)
            if value is None:
                print(
                    f"error: unknown GPU model {gpu.name!r}: rate it with --gpu-tflops '{gpu.name}=TFLOPS'",
                    file=sys.stderr,
                )
                return 2
            rated[gpu.uuid] = value
        directory = WorkerDirectory(state_dir / "workers")
        node = Node(
            found,
            rated,
            directory,
            tick=options.tick,
            settings=ControllerSettings(),
            oversell_percent=options.tflops_oversell,
            breach_action=options.on_isolation_breach,
            tiering=options.tiering,
        )
        node.set_freeze_ttls(*startup_ttls(options.freeze_ttl_flags, options.env_freeze_ttls))
        mem, disk = options.expansion_flags
        node.set_expansion(resolve_expansion(mem, disk, None, tier_dir=options.tiering.tier_dir))
        adopted = node.adopt()
        for gpu in found:
            log.info(
                "GPU %d %s %s rated %.0f TFLOPS%s",
                gpu.index,
                gpu.uuid,
                gpu.name,
                rated[gpu.uuid],
                " (SIMULATED)" if simulated else "",
            )
        log.info("re-adopted %d worker(s) from %s", adopted, directory.root)
        uvloop.run(_serve(node, token, options, state_dir, simulated))
    finally:
        nvml.shutdown()
    return 0


async def _serve(node: Node, token: str, options: NodeOptions, state_dir: Path, simulated: bool) -> None:
    """Serves until SIGTERM/SIGINT; workers' regions stay for the next start to re-adopt."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    public = not _loopback(options.host)
    if public:
        log.warning(
            "NODE API ON %s WITHOUT TLS: reads of /api/ now need the bearer token too; anyone on the network "
            "sees the token and the traffic. Prefer --host 127.0.0.1 (the default) or a TLS proxy in front.",
            options.host,
        )
    app = build_app(node, token, reads_need_token=public)
    add_background(app, node.run)
    writer, store = await _metrics(app, node, options)
    api = await _kube(app, node, options, state_dir)
    served = await start([(app, Listener(options.host, options.port))], grace=5.0)
    host, port = served.addresses()[0]
    _write_node_file(state_dir, host, port, simulated)
    log.info("node API on http://%s:%d", host, port)
    failed = asyncio.ensure_future(app[FAILED_KEY].wait())
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([failed, stopping], return_when=asyncio.FIRST_COMPLETED)
        log.info("shutting down; workers keep running and are re-adopted at the next start")
    finally:
        failed.cancel()
        stopping.cancel()
        (state_dir / NODE_FILE).unlink(missing_ok=True)
        await served.close(grace=5.0)
        if writer is not None and store is not None:
            await writer.flush(2.0)
            await store.close()
        if api is not None:
            await api.close()
        node.close()
    if app[FAILED_KEY].is_set():
        raise SystemExit(1)


async def _metrics(
    app: web.Application, node: Node, options: NodeOptions
) -> tuple[BatchingWriter | None, MetricsStore | None]:
    """Usage points every --metrics-interval into GreptimeDB when the chart's TF_GREPTIME_*
    name one (the controller's autoscaler reads them there), else into --metrics-store."""
    greptime = greptime_from_env(os.environ)
    store: MetricsStore
    if greptime is not None:
        store = GreptimeStore(greptime)
    elif options.metrics_store is not None:
        store = await DuckDBStore(options.metrics_store).open()
    else:
        return None, None
    writer = BatchingWriter(store, flush_interval=options.metrics_interval)

    async def sample() -> None:
        while True:
            await asyncio.sleep(options.metrics_interval)
            writer.submit_many(usage_points(node, time.time_ns()))

    add_background(app, writer.run)
    add_background(app, sample)
    return writer, store


async def _kube(app: web.Application, node: Node, options: NodeOptions, state_dir: Path) -> KubeClient | None:
    """With a node name and a cluster: report GPUs and the GPUNode status, keep the regions of
    this node's TensorFusion pods, and follow the freeze TTLs of its pool's template, in the
    background."""
    if not _kube_wanted(options):
        log.info("Kubernetes reporting off (it needs --node-name or $NODE_NAME, and --kubeconfig or a pod)")
        return None
    # grpc and protobuf (~0.1 s to import) load only when reporting is on: standalone is unaffected.
    from daemons.hypervisor.freeze_ttls import PoolFreezeTTLs  # noqa: PLC0415
    from daemons.hypervisor.kube import NodeReporter  # noqa: PLC0415
    from daemons.hypervisor.kubelet import PodResourcesClient  # noqa: PLC0415
    from daemons.hypervisor.pods import PodWorkers  # noqa: PLC0415

    node_name = options.node_name or ""  # set: reporting is on only with a node name
    try:
        api = await connect(options.kubeconfig)
    except KubeError as exc:
        log.error("Kubernetes reporting: %s", exc)
        raise SystemExit(2) from None
    progressive = options.nvidia_progressive_migration
    kubelet = PodResourcesClient(options.kubelet_pod_resources_socket) if progressive else None
    reporter = NodeReporter(
        api,
        node,
        node_name=node_name,
        state_dir=state_dir,
        interval=options.report_interval,
        progressive=progressive,
        kubelet=kubelet,
        resources=frozenset(options.device_plugin_resources) or DEFAULT_RESOURCES,
    )
    add_background(app, reporter.run)
    pool = PoolFreezeTTLs(
        api,
        node,
        node_name=node_name,
        flags=options.freeze_ttl_flags,
        env_ttls=options.env_freeze_ttls,
        expansion_flags=options.expansion_flags,
    )
    add_background(app, pool.run)
    pod_workers = PodWorkers(api, node, node_name=node_name)

    async def pods_once_pool_known() -> None:
        # A pod's worker is tiered or not for its life: make the first regions with the pool's
        # expansion known (bounded: an unreachable pool must not hold the pods' regions back).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(pool.synced.wait(), POOL_SYNC_WAIT)
        if not pool.synced.is_set():
            log.warning("pool settings not known after %g s: pods get regions with the node's own", POOL_SYNC_WAIT)
        await pod_workers.run()

    add_background(app, pods_once_pool_known)
    log.info(
        "reporting node %s to Kubernetes every %g s and keeping its TensorFusion pods' regions%s",
        node_name,
        options.report_interval,
        f"; NVIDIA device plugin coexistence through {options.kubelet_pod_resources_socket}" if kubelet else "",
    )
    return api


def _write_node_file(state_dir: Path, host: str, port: int, simulated: bool) -> None:
    """Where clients (`tensor-fusion run`) find the API and what a worker's environment needs."""
    libs = library_paths()
    info = NodeFile(
        url=f"http://{host}:{port}",
        pid=os.getpid(),
        simulated=simulated,
        shim=str(libs["shim"]),
        library_path=str(libs["simcuda"].parent) if simulated else "",
        sim_state=SIM_STATE.read(os.environ),
    )
    statedir.replace_atomically(state_dir / NODE_FILE, encode_node_file(info).decode(), mode=0o644)
