"""The real `tensor-fusion controller` process: the spec's flags, a kubeconfig, SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp
from hypothesis import given
from hypothesis import strategies as st
from kubernetes_asyncio import client

from daemons.controller.daemon import parse_bind_address
from tests.kubeapi.emulator import KubeEmulator
from tests.kubeapi.objects import eventually
from tfcore.model.errors import ValidationError

LEASE = "tensor-fusion-controller-leader"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_spec_command_serves_leads_and_releases_on_sigterm(kube: KubeEmulator, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kube.write_kubeconfig(kubeconfig)
    port = _free_port()
    command = [
        *(sys.executable, "-m", "daemons.cli", "controller"),
        *("-metrics-bind-address", f"127.0.0.1:{port}", "-leader-elect", "-enable-auto-scale", "-enable-alert"),
        *("-alert-manager-addr", "alertmanager.monitoring.svc.cluster.local:9093", "-kubeconfig", str(kubeconfig)),
    ]
    env = dict(os.environ, POD_NAMESPACE="default", TF_STATE_DIR=str(tmp_path))
    process = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    coordination = client.CoordinationV1Api(kube.api_client())
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:

            async def ready() -> int:
                try:
                    async with http.get("/readyz") as reply:
                        return reply.status
                except aiohttp.ClientConnectionError:
                    return 0

            await eventually(ready, lambda status: status == 200, timeout=20)
            lease = await eventually(_lease(coordination), lambda found: bool(found and found.spec.holder_identity))
            async with http.get("/metrics") as reply:
                assert "tf_controller_is_leader 1.0" in await reply.text()
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), timeout=15)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, output.decode()
    text = output.decode()
    assert "Traceback" not in text  # -enable-auto-scale runs the autoscaler and stops cleanly
    assert lease is not None
    released = await coordination.read_namespaced_lease(LEASE, "default")
    assert not released.spec.holder_identity  # a follower would take over at once


def _lease(api: client.CoordinationV1Api):  # type: ignore[no-untyped-def]
    async def probe() -> client.V1Lease | None:
        try:
            return await api.read_namespaced_lease(LEASE, "default")
        except client.ApiException:
            return None

    return probe


@given(st.text(max_size=40))
def test_bind_address_parser_only_raises_validation_errors(text: str) -> None:
    field = None
    result = None
    try:
        result = parse_bind_address(text)
    except ValidationError as error:
        field = error.problems[0].field
    assert field in (None, "-metrics-bind-address")
    assert result is None or 0 <= result[1] <= 65535
