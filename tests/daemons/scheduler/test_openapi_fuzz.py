"""schemathesis against /api/openapi.json: no generated request makes the admin API answer 5xx."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from daemons.scheduler.http import admin_app, admin_openapi
from tests.daemons.scheduler.conftest import Setup
from tfcore.web.app import Listener, start

schema = schemathesis.openapi.from_dict(admin_openapi())


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    """The admin app on its own loop in a thread (schemathesis calls it synchronously)."""
    loop = asyncio.new_event_loop()
    ready: list[str] = []
    stop = threading.Event()

    async def serve() -> None:
        served = await start([(admin_app(Setup().service), Listener("127.0.0.1", 0))])
        ready.append(f"http://127.0.0.1:{served.addresses()[0][1]}")
        while not stop.is_set():
            await asyncio.sleep(0.02)
        await served.close(grace=1)

    thread = threading.Thread(target=lambda: loop.run_until_complete(serve()), daemon=True)
    thread.start()
    while not ready:
        thread.join(0.01)
    yield ready[0]
    stop.set()
    thread.join(5)
    loop.close()


OPERATIONS = [op.ok() for op in schema.get_all_operations()]  # type: ignore[union-attr]  # Err fails the import


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.label)
def test_no_server_errors(operation: schemathesis.APIOperation[Any, Any, Any, Any], base_url: str) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=25, suppress_health_check=list(HealthCheck), deadline=None)
    def check(case: schemathesis.Case[Any]) -> None:
        response = case.call(base_url=base_url, timeout=5)
        assert response.status_code < 500, (response.status_code, response.text)

    check()
