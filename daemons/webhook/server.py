"""The admission webhook's HTTPS server: POST /mutate-v1-pod over tfcore.admission.

Wiring only: the decisions are tfcore.admission's; here are the body limits, the per-owner
serialisation of canary counts, the owner's pod listing, metrics and TLS reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram

from tfcore.admission import (
    CanaryLedger,
    ClusterDefaults,
    InjectionConfig,
    Mode,
    PodReview,
    Verdict,
    admit,
    canary,
    decide_by_count,
    encode_response,
    examine,
    parse_review,
)
from tfcore.admission.review import MAX_BODY_BYTES
from tfcore.web.app import add_background, create_app, read_body
from tfcore.web.metrics import add_metrics_route

log = logging.getLogger(__name__)

MUTATE_PATH: Final = "/mutate-v1-pod"
ListOwnerPods = Callable[[str, str, str, str], Awaitable[list[dict[str, Any]]]]  # namespace, kind, name, uid


class DefaultsSource(Protocol):
    def __call__(self) -> ClusterDefaults: ...


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.admissions = Counter(
            "tf_webhook_admissions", "Pod admissions by result", ["result"], registry=self.registry
        )
        self.seconds = Histogram(
            "tf_webhook_admission_seconds",
            "Time to answer one admission (body read to response built)",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=self.registry,
        )
        self.canary = Counter(
            "tf_webhook_canary_decisions", "Canary decisions by mode", ["mode"], registry=self.registry
        )
        self.tls_reloads = Counter(
            "tf_webhook_tls_reloads", "Certificate reloads by result", ["result"], registry=self.registry
        )


class Webhook:
    """Admission decisions with the I/O they need: owner pod listings and the cluster defaults."""

    def __init__(
        self,
        config: InjectionConfig,
        defaults: DefaultsSource,
        *,
        list_owner_pods: ListOwnerPods | None = None,
        ledger: CanaryLedger | None = None,
        clock: Callable[[], float] = time.monotonic,
        metrics: Metrics | None = None,
    ) -> None:
        self.config = config
        self.defaults = defaults
        self.list_owner_pods = list_owner_pods
        self.ledger = ledger or CanaryLedger()
        self.clock = clock
        self.metrics = metrics or Metrics()
        self._owner_locks: dict[str, tuple[asyncio.Lock, int]] = {}

    async def review(self, review: PodReview) -> Verdict:
        found = examine(review, self.config)
        if isinstance(found, Verdict):
            return found
        mode = found.mode
        warnings: tuple[str, ...] = ()
        if mode is None:
            mode, warnings = await self._count_decision(found)
        if found.canary:
            self.metrics.canary.labels(mode.value).inc()
        verdict = admit(found, mode, self.defaults(), self.config)
        if warnings:
            verdict = Verdict(
                verdict.allowed, verdict.patch, verdict.message, verdict.code, verdict.warnings + warnings
            )
        return verdict

    async def _count_decision(self, found: Any) -> tuple[Mode, tuple[str, ...]]:
        owner = found.owner
        async with self._owner_lock(owner.uid):
            try:
                if self.list_owner_pods is None:
                    raise RuntimeError("no Kubernetes API configured")
                pods = await self.list_owner_pods(found.review.namespace, owner.kind, owner.name, owner.uid)
            except Exception as exc:  # any listing failure: fall back to a working native pod
                log.warning("canary count for %s %s failed: %s; admitting native", owner.kind, owner.name, exc)
                return Mode.NATIVE, (
                    f"tensor-fusion could not count the pods of {owner.kind} {owner.name} ({exc}); "
                    "this pod stays native and the controller rebalances later",
                )
            siblings = [canary.sibling(p, self.config.scheduler_name) for p in pods]
            # No await between deciding and reserving: the ledger sees every decision in order.
            return decide_by_count(found, siblings, self.ledger, self.clock()), ()

    @contextlib.asynccontextmanager
    async def _owner_lock(self, uid: str) -> AsyncIterator[None]:
        lock, users = self._owner_locks.get(uid) or (asyncio.Lock(), 0)
        self._owner_locks[uid] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._owner_locks[uid]
            if users <= 1:
                del self._owner_locks[uid]
            else:
                self._owner_locks[uid] = (lock, users - 1)

    async def handle(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        result = "bad_request"
        try:
            body = await read_body(request, limit=MAX_BODY_BYTES)
            review = parse_review(body)  # ValidationError -> 400 with the problems (middleware)
            verdict = await self.review(review)
            result = "denied" if not verdict.allowed else ("mutated" if verdict.patch else "untouched")
            return web.Response(body=encode_response(review.uid, verdict), content_type="application/json")
        finally:
            self.metrics.admissions.labels(result).inc()
            self.metrics.seconds.observe(time.perf_counter() - started)


def build_app(webhook: Webhook) -> web.Application:
    app = create_app(client_max_size=MAX_BODY_BYTES)
    app.router.add_post(MUTATE_PATH, webhook.handle)
    add_metrics_route(app, webhook.metrics.registry)
    return app


# ---- TLS ------------------------------------------------------------------------------------


def _stamp(*paths: str) -> tuple[tuple[int, int, int], ...]:
    stamps = []
    for path in paths:
        info = os.stat(path)  # follows the secret volume's ..data symlink
        stamps.append((info.st_ino, info.st_mtime_ns, info.st_size))
    return tuple(stamps)


class CertificateReloader:
    """Reloads the serving certificate into the live SSLContext when the mounted files change.

    Kubernetes updates a secret volume by swapping a symlink, so cert and key change together;
    a pair that fails to load (caught mid-write by hand) keeps the old one and is retried.
    """

    def __init__(
        self, context: ssl.SSLContext, cert: str, key: str, *, interval: float = 10.0, metrics: Metrics | None = None
    ) -> None:
        self.context = context
        self.cert = cert
        self.key = key
        self.interval = interval
        self.metrics = metrics
        self._stamp = _stamp(cert, key)

    def check(self) -> bool:
        """Reload if the files changed; True when a new certificate was loaded."""
        try:
            stamp = _stamp(self.cert, self.key)
        except OSError as exc:
            log.warning("TLS files unreadable, keeping the current certificate: %s", exc)
            return False
        if stamp == self._stamp:
            return False
        try:
            self.context.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as exc:
            log.warning("new TLS certificate does not load yet, keeping the current one: %s", exc)
            if self.metrics:
                self.metrics.tls_reloads.labels("failed").inc()
            return False
        self._stamp = stamp
        log.info("reloaded TLS certificate from %s", self.cert)
        if self.metrics:
            self.metrics.tls_reloads.labels("ok").inc()
        return True

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.check()


def watch_certificate(app: web.Application, reloader: CertificateReloader) -> None:
    add_background(app, reloader.run)
