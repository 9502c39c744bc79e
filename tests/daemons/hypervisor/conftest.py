"""Hypervisor processes started by a test are stopped (gracefully, exit code checked) after it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.daemons.hypervisor.process import Hypervisor
from tests.kubeapi.emulator import KubeEmulator


@pytest.fixture
async def hypervisors(kube: KubeEmulator) -> AsyncIterator[list[Hypervisor]]:
    started: list[Hypervisor] = []
    yield started
    for hypervisor in started:
        await hypervisor.stop()
