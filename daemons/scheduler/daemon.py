"""Wiring: cluster source, service, config reloader and the two HTTP apps, as one Daemon."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from daemons.scheduler.heap import settle_heap
from daemons.scheduler.http import admin_app, extender_app
from daemons.scheduler.kube import KubeCluster
from daemons.scheduler.memory import MemoryCluster, parse_cluster_state
from daemons.scheduler.mirror import ClusterMirror
from daemons.scheduler.service import ClusterWriter, SchedulerService
from tfcore.config.reload import ConfigReloader
from tfcore.config.scheduler import (
    ExtenderSettings,
    SchedulerConfig,
    parse_scheduler_config,
    render_kube_scheduler_config,
)
from tfcore.k8s import connect
from tfcore.model.errors import ValidationError
from tfcore.sched import Allocator
from tfcore.web.app import Listener, add_background, add_ready_check, create_app, serve, server_tls
from tfcore.web.metrics import add_metrics_route


@dataclass(frozen=True, slots=True)
class Options:
    cluster_state: Path | None = None
    kubeconfig: str | None = None
    config: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    admin_token_file: Path | None = None
    health_host: str = "0.0.0.0"
    health_port: int | None = None  # /healthz, /readyz, /metrics only (for kubelet probes, Prometheus)
    extender_host: str = "127.0.0.1"
    extender_port: int = 8090
    extender_prefix: str = ""
    tls_cert: str | None = None
    tls_key: str | None = None
    client_ca: str | None = None
    default_pool: str | None = None
    config_poll: float = 2.0
    reuse_decisions: bool = True
    freeze_heap: bool = False  # settle_heap() once the cluster is in (the CLI sets it)
    native_gpu_pods: bool = False  # NVIDIA coexistence (controller.nvidiaOperatorProgressiveMigration)

    def check(self) -> None:
        """The extender binds pods: it listens beyond loopback only behind TLS with client certificates.
        The admin API shares the extender's process: beyond loopback it needs a bearer token."""
        if not _loopback(self.host) and self.admin_token_file is None:
            raise ValidationError.single(
                "--host",
                f"{self.host} is not a loopback address and no --admin-token-file is given",
                "127.0.0.1 (reach it with kubectl port-forward), or --admin-token-file with the bearer token",
            )
        tls = [self.tls_cert, self.tls_key, self.client_ca]
        if any(tls) and not all(tls):
            raise ValidationError.single(
                "--extender-tls-cert/--extender-tls-key/--extender-client-ca", "give all three or none", "all three"
            )
        if not all(tls) and not _loopback(self.extender_host):
            raise ValidationError.single(
                "--extender-host",
                f"{self.extender_host} is not a loopback address and no client-certificate TLS is configured",
                "127.0.0.1 (kube-scheduler as a sidecar), or --extender-tls-cert, --extender-tls-key "
                "and --extender-client-ca",
            )

    def extender_url(self) -> str:
        scheme = "https" if self.tls_cert else "http"
        host = "127.0.0.1" if self.extender_host in ("0.0.0.0", "::") else self.extender_host
        return f"{scheme}://{host}:{self.extender_port}{self.extender_prefix.rstrip('/')}"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_config(path: Path | None) -> SchedulerConfig | None:
    return parse_scheduler_config(path.read_text(encoding="utf-8")) if path is not None else None


def kube_scheduler_config(options: Options) -> str:
    """What the stock kube-scheduler gets: the user's document with our plugins swapped for the extender."""
    config = load_config(options.config) or parse_scheduler_config(DEFAULT_CONFIG)
    settings = ExtenderSettings(url_prefix=options.extender_url(), enable_https=bool(options.tls_cert))
    return render_kube_scheduler_config(config, settings)


DEFAULT_CONFIG = """\
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- schedulerName: tensor-fusion-scheduler
  pluginConfig:
  - name: GPUResourcesFit
    args: {maxWorkerPerNode: 256, vramWeight: 0.7, tflopsWeight: 0.3}
  - name: GPUNetworkTopologyAware
    args: {totalIntranetBandWidthGBps: 100}
"""


@dataclass(slots=True)
class Daemon:
    options: Options
    service: SchedulerService
    mirror: ClusterMirror
    writer: ClusterWriter
    admin: web.Application
    extender: web.Application
    health: web.Application
    reloader: ConfigReloader[SchedulerConfig] | None = None
    closers: list[Any] = field(default_factory=list)

    def listeners(self) -> list[tuple[web.Application, Listener]]:
        o = self.options
        tls = server_tls(o.tls_cert, o.tls_key, client_ca=o.client_ca) if o.tls_cert and o.tls_key else None
        listeners = [
            (self.admin, Listener(o.host, o.port)),
            (self.extender, Listener(o.extender_host, o.extender_port, tls)),
        ]
        if o.health_port is not None:
            listeners.append((self.health, Listener(o.health_host, o.health_port)))
        return listeners

    async def close(self) -> None:
        for closer in self.closers:
            await closer()


async def build(options: Options) -> Daemon:
    """Everything but the listeners; raise ValidationError on a bad option, config or snapshot."""
    options.check()
    reloader: ConfigReloader[SchedulerConfig] | None = None
    config = None
    built: list[SchedulerService] = []  # the first load comes before the service exists

    def apply(new: SchedulerConfig) -> None:
        for existing in built:
            existing.apply_config(new)

    if options.config is not None:
        reloader = ConfigReloader(options.config, parse_scheduler_config, apply, poll_interval=options.config_poll)
        config = await reloader.load()
    service = SchedulerService(
        Allocator(), config, reuse_decisions=options.reuse_decisions, native_gpu_pods=options.native_gpu_pods
    )
    built.append(service)
    mirror = ClusterMirror(service, default_pool=options.default_pool)
    writer: ClusterWriter
    closers: list[Any] = []
    admin = admin_app(service, token=_admin_token(options.admin_token_file))
    health = create_app()
    add_metrics_route(health, service.metrics.registry)
    if options.cluster_state is not None:
        text = options.cluster_state.read_text(encoding="utf-8")
        objects, _skipped = parse_cluster_state(text, where=str(options.cluster_state))
        memory = MemoryCluster(objects)
        memory.attach(mirror)
        writer = memory
        if options.freeze_heap:
            settle_heap()
    else:
        api = await connect(options.kubeconfig)
        kube = KubeCluster(api, mirror, on_synced=settle_heap if options.freeze_heap else None)
        writer = kube
        add_background(admin, kube.run)
        add_ready_check(admin, kube.not_ready)
        add_ready_check(health, kube.not_ready)
        closers.append(api.close)
    if reloader is not None:
        add_background(admin, reloader.run)
    extender = extender_app(service, writer, prefix=options.extender_prefix)
    return Daemon(options, service, mirror, writer, admin, extender, health, reloader, closers)


def _admin_token(path: Path | None) -> str:
    if path is None:
        return ""
    token = path.read_text(encoding="utf-8").strip()
    if not token:
        raise ValidationError.single("--admin-token-file", f"{path} is empty", "a file holding the bearer token")
    return token


async def run(options: Options) -> None:
    daemon = await build(options)
    try:
        await serve(daemon.listeners())
    finally:
        await daemon.close()
