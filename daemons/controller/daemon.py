"""Wiring: API client, leader election, reconcilers, and the metrics/health listener."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from daemons.controller import fleet_loop
from daemons.controller.autoscaler import Autoscaler, ControllerPorts, controller_inputs
from daemons.controller.context import Settings
from daemons.controller.controller import Controller
from daemons.controller.observability import Observability, ObservabilityCollector, ObservabilitySettings
from tfcore.k8s import KubeClient, connect
from tfcore.k8s.events import EventRecorder
from tfcore.k8s.leader import LeaderElector, LeaseConfig
from tfcore.model.errors import ValidationError
from tfcore.operator.canary import SETTLE_SECONDS
from tfcore.web.app import Listener, add_background, add_ready_check, create_app, serve
from tfcore.web.greptime import GreptimeSettings
from tfcore.web.metrics import add_metrics_route, new_registry

log = logging.getLogger(__name__)

COMPONENT = "tensor-fusion-controller"
DEFAULT_LEASE_NAME = "tensor-fusion-controller-leader"
DEFAULT_NAMESPACE = "tensor-fusion-sys"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclass(frozen=True, slots=True)
class Options:
    metrics_bind_address: str = ":8080"
    leader_elect: bool = False
    enable_auto_scale: bool = False
    enable_alert: bool = False
    alert_manager_addr: str = ""
    kubeconfig: str | None = None
    lease_namespace: str | None = None
    lease_name: str = DEFAULT_LEASE_NAME
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    identity: str | None = None
    dynamic_config: str | None = None  # TF_DYNAMIC_CONFIG / -dynamic-config
    metrics_store: str | None = None  # embedded DuckDB file; None: under the state dir
    greptime: GreptimeSettings | None = None  # TF_GREPTIME_*
    sample_interval: float = 15.0  # tf_node_metrics / tf_pool_metrics / tf_system_metrics
    config_poll_interval: float = 2.0
    nvidia_progressive_migration: bool = False  # TF_NVIDIA_OPERATOR_PROGRESSIVE_MIGRATION: taint used nodes
    canary_settle_seconds: float = SETTLE_SECONDS  # how long a ReplicaSet is left alone before rebalancing

    def observability(self, *, metrics: bool) -> ObservabilitySettings:
        return ObservabilitySettings(
            dynamic_config=self.dynamic_config,
            metrics=metrics,
            metrics_store=self.metrics_store,
            greptime=self.greptime,
            enable_alert=self.enable_alert,
            alert_manager_addr=self.alert_manager_addr,
            sample_interval=self.sample_interval,
            config_poll_interval=self.config_poll_interval,
        )


def parse_bind_address(text: str, *, field: str = "-metrics-bind-address") -> tuple[str, int] | None:
    """ ":9000", "0.0.0.0:9000", "[::1]:9000" as (host, port); "0" turns the listener off (as in Go)."""
    expected = 'host:port or :port (e.g. ":9000"), or "0" to disable'
    if text == "0":
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValidationError.single(field, f"bad address {text!r}", expected)
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if any(c.isspace() for c in host):
        raise ValidationError.single(field, f"bad host in {text!r}", expected)
    return host or "0.0.0.0", int(port)


def check_alert_address(text: str) -> None:
    expected = "host:port of AlertManager, e.g. alertmanager.monitoring.svc.cluster.local:9093"
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
        raise ValidationError.single("-alert-manager-addr", f"bad address {text!r}", expected)


def lease_namespace(options: Options) -> str:
    if options.lease_namespace:
        return options.lease_namespace
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    with contextlib.suppress(OSError):
        return SERVICE_ACCOUNT_NAMESPACE.read_text(encoding="utf-8").strip() or DEFAULT_NAMESPACE
    return DEFAULT_NAMESPACE


class ControllerDaemon:
    """The controller of one replica: reconciles while it leads (always, without -leader-elect)."""

    def __init__(self, api: KubeClient, options: Options, *, watch_timeout: int = 300, metrics: bool = False) -> None:
        """`metrics`: keep the metrics store and samples even without -enable-alert (the process always does)."""
        self.api = api
        self.options = options
        self.identity = options.identity or f"{socket.gethostname()}_{uuid.uuid4().hex[:10]}"
        self.elector: LeaderElector | None = None
        if options.leader_elect:
            config = LeaseConfig(
                namespace=lease_namespace(options),
                name=options.lease_name,
                identity=self.identity,
                lease_duration=options.lease_duration,
                renew_deadline=options.renew_deadline,
                retry_period=options.retry_period,
            )
            self.elector = LeaderElector(api, config)
        self.recorder = EventRecorder(api, COMPONENT, host=self.identity)
        self.controller = Controller(
            api,
            is_leader=self.is_leader,
            recorder=self.recorder,
            settings=Settings(
                taint_used_nodes=options.nvidia_progressive_migration, canary_settle=options.canary_settle_seconds
            ),
            leadership=self.elector.renewed if self.elector else None,
            watch_timeout=watch_timeout,
        )
        settings = options.observability(metrics=metrics)
        self.observability = (
            Observability(settings, self.controller.store.view(), self.is_leader) if settings.enabled else None
        )

    def is_leader(self) -> bool:
        """Whether this replica may do leader work now (reconcile, allocate, evaluate alerts)."""
        return self.elector.is_leader() if self.elector else True

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self.controller.watch())
            group.create_task(fleet_loop.run(self.api, is_leader=self.is_leader))  # rollouts, capacity
            if self.options.enable_auto_scale:
                group.create_task(self._autoscale())
            if self.observability is not None:
                group.create_task(self.observability.run())
            if self.elector is not None:
                group.create_task(self.elector.run(self.controller.lead))
            else:
                group.create_task(self.controller.lead())

    async def _autoscale(self) -> None:
        """-enable-auto-scale: vertical autoscaling from the metrics store (see autoscaler.py)."""
        if self.observability is None:
            log.warning("-enable-auto-scale needs the metrics store; autoscaling is off")
            return
        ports = ControllerPorts(self.controller, self.recorder, self.observability.store)
        await self.observability.store_opened.wait()
        await Autoscaler(ports).run(*controller_inputs(self.controller), self.is_leader)

    def not_ready(self) -> str | None:
        return None if self.controller.synced() else "caches not synced yet"

    def app(self) -> web.Application:
        app = create_app()
        registry = new_registry()
        registry.register(ControllerCollector(self))
        if self.observability is not None:
            registry.register(ObservabilityCollector(self.observability))
        add_metrics_route(app, registry)
        add_ready_check(app, self.not_ready)
        add_background(app, self.run)
        return app


class ControllerCollector(Collector):
    def __init__(self, daemon: ControllerDaemon) -> None:
        self.daemon = daemon

    def collect(self) -> Iterator[Metric]:
        controller = self.daemon.controller
        yield GaugeMetricFamily(
            "tf_controller_is_leader", "1 while this replica leads.", value=int(self.daemon.is_leader())
        )
        elector = self.daemon.elector
        yield CounterMetricFamily(
            "tf_controller_leadership_acquired",
            "Times this replica became leader.",
            value=elector.transitions if elector else 0,
        )
        reconciles = CounterMetricFamily(
            "tf_controller_reconciles", "Reconciles by kind and result.", labels=["reconciler", "result"]
        )
        for (reconciler, result), count in sorted(controller.reconciles.items()):
            reconciles.add_metric([reconciler, result], count)
        yield reconciles
        yield GaugeMetricFamily(
            "tf_controller_queue_depth", "Keys waiting to be reconciled.", value=len(controller.queue)
        )
        yield CounterMetricFamily("tf_controller_writes", "API writes sent.", value=controller.writes)
        yield CounterMetricFamily("tf_controller_events", "Events recorded.", value=self.daemon.recorder.sent)


async def run(options: Options) -> None:
    address = parse_bind_address(options.metrics_bind_address)
    api = await connect(options.kubeconfig)
    async with api:
        daemon = ControllerDaemon(api, options, metrics=True)
        app = daemon.app()
        if address is None:  # no listener: run until SIGTERM through a listener on loopback only
            address = ("127.0.0.1", 0)
        await serve([(app, Listener(address[0], address[1]))])
