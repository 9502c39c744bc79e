"""A moto EC2 server over HTTP, shared by the AWS provider's tests and the fleet end-to-end tests."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest


@pytest.fixture
def moto_endpoint() -> Iterator[str]:
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    # moto keeps its state per process: start every test from an empty account.
    urllib.request.urlopen(
        urllib.request.Request(f"http://{host}:{port}/moto-api/reset", method="POST"), timeout=10
    ).close()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
