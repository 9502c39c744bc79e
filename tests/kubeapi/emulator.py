"""KubeEmulator: the stateful Kubernetes API server stand-in, started on 127.0.0.1."""

from __future__ import annotations

import copy
import socket
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml
from aiohttp import web
from kubernetes_asyncio import client

from tests.kubeapi.server import KubeApp
from tests.kubeapi.store import Store

CHART_CRDS = Path(__file__).resolve().parents[2] / "charts" / "tensor-fusion" / "crds"
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@cache
def _chart_crds() -> tuple[dict[str, Any], ...]:
    return tuple(yaml.load(path.read_text(), Loader=_Loader) for path in sorted(CHART_CRDS.glob("*.yaml")))


def chart_crds() -> list[dict[str, Any]]:
    """The CustomResourceDefinitions our Helm chart installs, as a user's cluster would get them.

    Parsed once per process; each call returns fresh copies, since stored objects must not be shared."""
    return copy.deepcopy(list(_chart_crds()))


class KubeEmulator:
    """An HTTP-level Kubernetes API emulator that kubernetes-asyncio talks to for real.

    `crds`: CustomResourceDefinitions installed before start (default: the chart's, so the
    tensor-fusion.ai kinds are served and validated). `history_limit`: watch events kept for
    resuming; older resourceVersions get 410 Expired. `bookmark_interval`: seconds between
    BOOKMARK events on watches that allow them.
    """

    def __init__(
        self,
        *,
        crds: list[dict[str, Any]] | None = None,
        history_limit: int = 1000,
        bookmark_interval: float = 60.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.store = Store(history_limit=history_limit)
        self.kube_app = KubeApp(self.store, bookmark_interval=bookmark_interval)
        crd_type = self.store.types[("apiextensions.k8s.io", "customresourcedefinitions")]
        for crd in chart_crds() if crds is None else crds:
            self.store.create(crd_type, None, crd)
        self._host, self._port = host, port
        self._runner: web.AppRunner | None = None
        self._clients: list[client.ApiClient] = []
        self.url = ""

    async def start(self) -> str:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._port))
        sock.setblocking(False)
        self._runner = web.AppRunner(self.kube_app.app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        host, port = sock.getsockname()[:2]
        self.url = f"http://{host}:{port}"
        return self.url

    async def stop(self) -> None:
        for api in self._clients:
            await api.close()
        self._clients.clear()
        if self._runner is not None:
            self.store.close_watchers()
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> KubeEmulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def configuration(self) -> client.Configuration:
        configuration = client.Configuration(host=self.url)
        return configuration

    def api_client(self) -> client.ApiClient:
        """The emulator's shared kubernetes-asyncio ApiClient (made on first use, closed at stop).

        Shared because each ApiClient builds an SSL context (~50 ms), even for plain HTTP."""
        if not self._clients:
            return self.new_api_client()
        return self._clients[0]

    def write_kubeconfig(self, path: Path) -> Path:
        """A kubeconfig pointing at the emulator, for daemons run as child processes."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emu", "cluster": {"server": self.url}}],
            "users": [{"name": "me", "user": {}}],
            "contexts": [{"name": "emu", "context": {"cluster": "emu", "user": "me"}}],
            "current-context": "emu",
        }
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path

    def new_api_client(self) -> client.ApiClient:
        """A separate ApiClient (its own connection pool), e.g. one per leader-election candidate."""
        api = client.ApiClient(configuration=self.configuration())
        self._clients.append(api)
        return api
