"""A scheduler service on an in-memory cluster, and HTTP clients for its two apps."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from daemons.scheduler.http import admin_app, extender_app
from daemons.scheduler.memory import MemoryCluster
from daemons.scheduler.mirror import ClusterMirror
from daemons.scheduler.service import SchedulerService
from tests.daemons.scheduler.cluster import fleet
from tfcore.sched import Allocator


class Setup:
    def __init__(self, nodes: int = 3, gpus: int = 2, *, reuse_decisions: bool = True) -> None:
        self.service = SchedulerService(Allocator(), reuse_decisions=reuse_decisions)
        self.cluster = MemoryCluster(fleet(nodes, gpus))
        self.mirror = ClusterMirror(self.service)
        self.cluster.attach(self.mirror)


@pytest_asyncio.fixture
async def setup() -> Setup:
    return Setup()


@pytest_asyncio.fixture
async def admin(setup: Setup) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with TestClient(TestServer(admin_app(setup.service))) as client:
        yield client


@pytest_asyncio.fixture
async def extender(setup: Setup) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with TestClient(TestServer(extender_app(setup.service, setup.cluster))) as client:
        yield client
