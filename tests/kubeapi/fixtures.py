"""Pytest plugin: `kube`, a running KubeEmulator in the test's event loop.

Enable with `pytest_plugins = ["tests.kubeapi.fixtures"]` in tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from tests.kubeapi.emulator import KubeEmulator


@pytest_asyncio.fixture
async def kube() -> AsyncIterator[KubeEmulator]:
    """Emulator on 127.0.0.1:<ephemeral> with the chart's CRDs; `kube.api_client()` for clients."""
    async with KubeEmulator() as emulator:
        yield emulator
