"""aiohttp glue shared by the daemons: app factory, errors as JSON, health probes, serving.

- `create_app` builds an Application with the error middleware, /healthz and /readyz, and
  background tasks run in one asyncio.TaskGroup for the app's lifetime (cleanup_ctx): a task
  that fails takes the process down (readiness flips first) rather than limping on.
- Bad input never becomes a 500: ValidationError is 400 `{"error": ..., "problems": [...]}`,
  an oversized body 413, a wrong Content-Type 415; anything unexpected is logged and a 500
  with no internals in the body.
- `serve` runs one or more apps on their listeners until SIGTERM/SIGINT, then stops accepting,
  lets in-flight requests finish (bounded) and runs the cleanup contexts.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import signal
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec
from aiohttp import web

from tfcore.model.errors import Problem, ValidationError

log = logging.getLogger(__name__)

JSON: Final = "application/json"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
BackgroundTask = Callable[[], Coroutine[Any, Any, None]]
ReadyCheck = Callable[[], "str | None"]  # None when ready, else why not

_encoder = msgspec.json.Encoder()
READY_KEY: Final = web.AppKey("tf_ready_checks", list)
BACKGROUND_KEY: Final = web.AppKey("tf_background", list)
FAILED_KEY: Final = web.AppKey("tf_failed", asyncio.Event)


class HTTPProblem(Exception):
    """An HTTP error answered as JSON `{"error": message, "problems": [...]}`."""

    def __init__(
        self, status: int, message: str, problems: Sequence[Problem] = (), headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.problems = list(problems)
        self.headers = headers


def json_response(data: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(body=_encoder.encode(data), status=status, content_type=JSON, headers=headers)


def problem_body(message: str, problems: Sequence[Problem] = ()) -> dict[str, Any]:
    return {
        "error": message,
        "problems": [{"field": p.field, "message": p.message, "expected": p.expected} for p in problems],
    }


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ValidationError as exc:
        return json_response(problem_body(str(exc), exc.problems), status=400)
    except HTTPProblem as exc:
        return json_response(problem_body(exc.message, exc.problems), status=exc.status, headers=exc.headers)
    except web.HTTPRequestEntityTooLarge as exc:
        return json_response(problem_body(f"request body too large: {exc.text}"), status=413)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return json_response(problem_body(exc.reason or str(exc.status)), status=exc.status, headers=_allow(exc))
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return json_response(problem_body("internal error; see the server log"), status=500)


def bearer_token(token: str, prefix: str = "/") -> Any:
    """Middleware: requests under `prefix` need `Authorization: Bearer <token>` (else 401)."""
    expected = token.encode()

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(prefix):
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
                raise HTTPProblem(401, "this endpoint needs Authorization: Bearer <token>")
        return await handler(request)

    return check


def _allow(exc: web.HTTPException) -> dict[str, str] | None:
    allow = exc.headers.get("Allow")
    return {"Allow": allow} if allow else None


async def read_body(request: web.Request, *, limit: int) -> bytes:
    """The whole body, or 413 once it exceeds `limit` bytes (checked while reading)."""
    if request.content_length is not None and request.content_length > limit:
        raise HTTPProblem(413, f"request body too large: {request.content_length} bytes (limit {limit})")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            raise HTTPProblem(413, f"request body too large (limit {limit} bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


def media_type(request: web.Request) -> str:
    return request.content_type.lower()


# ---- the application ----------------------------------------------------------------------


def create_app(*, client_max_size: int = 1024**2, middlewares: Sequence[Any] = ()) -> web.Application:
    """An app with the error middleware, /healthz and /readyz; add routes, ready checks, tasks."""
    app = web.Application(client_max_size=client_max_size, middlewares=[error_middleware, *middlewares])
    app[READY_KEY] = []
    app[BACKGROUND_KEY] = []
    app[FAILED_KEY] = asyncio.Event()
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.cleanup_ctx.append(_run_background)
    return app


def add_ready_check(app: web.Application, check: ReadyCheck) -> None:
    app[READY_KEY].append(check)


def add_background(app: web.Application, task: BackgroundTask) -> None:
    """Run `task()` for the app's lifetime (started at startup, cancelled at cleanup)."""
    app[BACKGROUND_KEY].append(task)


async def _healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    reasons = [r for r in (check() for check in request.app[READY_KEY]) if r]
    if reasons:
        return json_response({"status": "not ready", "reasons": reasons}, status=503)
    return json_response({"status": "ready"})


async def _run_background(app: web.Application) -> AsyncIterator[None]:
    tasks: list[BackgroundTask] = app[BACKGROUND_KEY]
    if not tasks:
        yield
        return

    async def supervise() -> None:
        try:
            async with asyncio.TaskGroup() as group:
                for task in tasks:
                    group.create_task(task())
        except* Exception as exc_group:
            for exc in exc_group.exceptions:
                log.error("background task failed", exc_info=exc)
            add_ready_check(app, lambda: "a background task failed")
            app[FAILED_KEY].set()  # `serve` stops the process

    runner = asyncio.create_task(supervise())
    try:
        yield
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner


# ---- serving --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Listener:
    """Where an app listens: host and port, and TLS (None: plain HTTP)."""

    host: str
    port: int
    ssl_context: ssl.SSLContext | None = None


def server_tls(cert: str, key: str, *, client_ca: str | None = None) -> ssl.SSLContext:
    """A server TLS context; with `client_ca`, clients must present a certificate it signed."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    if client_ca:
        context.load_verify_locations(client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


@dataclass(slots=True)
class Served:
    runners: list[web.AppRunner] = field(default_factory=list)
    sites: list[web.BaseSite] = field(default_factory=list)

    def addresses(self) -> list[tuple[str, int]]:
        found: list[tuple[str, int]] = []
        for site in self.sites:
            server = site._server
            for sock in getattr(server, "sockets", None) or ():
                name = sock.getsockname()
                found.append((str(name[0]), int(name[1])))
        return found

    async def close(self, *, grace: float = 10.0) -> None:
        for runner in self.runners:
            await runner.shutdown()
        for runner in self.runners:
            await asyncio.wait_for(runner.cleanup(), timeout=grace)


async def start(apps: Sequence[tuple[web.Application, Listener]], *, grace: float = 10.0) -> Served:
    """Start each app on its listener (port 0 picks a free port; see Served.addresses)."""
    served = Served()
    try:
        for app, listener in apps:
            runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=grace, access_log=None)
            await runner.setup()
            served.runners.append(runner)
            site = web.TCPSite(runner, listener.host, listener.port, ssl_context=listener.ssl_context)
            await site.start()
            served.sites.append(site)
    except BaseException:
        await served.close(grace=grace)
        raise
    return served


async def serve(apps: Sequence[tuple[web.Application, Listener]], *, grace: float = 10.0) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    served = await start(apps, grace=grace)
    for host, port in served.addresses():
        log.info("listening on %s:%d", host, port)
    waits = [asyncio.ensure_future(stop.wait())] + [asyncio.ensure_future(a[FAILED_KEY].wait()) for a, _ in apps]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        failed = any(a[FAILED_KEY].is_set() for a, _ in apps)
        log.info("shutting down%s", " after a background task failed" if failed else "")
    finally:
        for waiter in waits:
            waiter.cancel()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await served.close(grace=grace)
    if any(a[FAILED_KEY].is_set() for a, _ in apps):
        raise SystemExit(1)


# ---- OpenAPI ------------------------------------------------------------------------------


def openapi_document(
    *, title: str, version: str, paths: Mapping[str, Any], schemas: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """An OpenAPI 3.0 document; every operation also documents the JSON error body."""
    error_schema = {
        "type": "object",
        "required": ["error", "problems"],
        "properties": {
            "error": {"type": "string"},
            "problems": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "field": {"type": "string"},
                        "message": {"type": "string"},
                        "expected": {"type": "string", "nullable": True},
                    },
                },
            },
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": title, "version": version},
        "paths": dict(paths),
        "components": {"schemas": {"Error": error_schema, **dict(schemas or {})}},
    }


def add_openapi_route(app: web.Application, path: str, document: Mapping[str, Any]) -> None:
    body = _encoder.encode(document)

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type=JSON)

    app.router.add_get(path, handler)
