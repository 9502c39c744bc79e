"""`tensor-fusion webhook` as a process: kubeconfig to the API emulator, real TLS, SIGTERM."""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import socket
import ssl
import sys
from pathlib import Path

import aiohttp

from tests.daemons.webhook.tls import CertAuthority
from tests.kubeapi import KubeEmulator
from tests.unit.admission.pods import CLUSTER, review_body, tf_pod
from tfcore.k8s import request_json


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _kubeconfig(path: Path, url: str) -> Path:
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "emulator", "cluster": {"server": url}}],
                "users": [{"name": "test", "user": {"token": "unused"}}],
                "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "test"}}],
                "current-context": "emulator",
            }
        ),
        encoding="utf-8",
    )
    return path


async def test_the_webhook_process_serves_reads_pools_and_stops_on_sigterm(
    kube: KubeEmulator, test_ca: CertAuthority, tmp_path: Path
) -> None:
    await request_json(kube.api_client(), "POST", "/apis/tensor-fusion.ai/v1/tensorfusionclusters", body=CLUSTER)
    cert, key = test_ca.issue("webhook-process")
    port = _free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "daemons.cli", "webhook", "--host", "127.0.0.1", "--port", str(port),
        "--tls-cert-file", str(cert), "--tls-key-file", str(key), "--shim-path", "/opt/tf/libtfshim.so",
        "--kubeconfig", str(_kubeconfig(tmp_path / "kubeconfig", kube.url)), "--grace", "2",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    client_tls = ssl.create_default_context(cafile=str(test_ca.cert))
    url = f"https://localhost:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(200):  # up to ~10 s on a busy machine: imports and the first list
                try:
                    async with session.get(url + "/readyz", ssl=client_tls) as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the webhook never became ready")
            async with session.post(url + "/mutate-v1-pod", data=review_body(tf_pod()), ssl=client_tls) as response:
                assert response.status == 200
                answer = await response.json()
        patch = json.loads(base64.b64decode(answer["response"]["patch"]))
        pool = next(op for op in patch if op["path"] == "/metadata/annotations/tensor-fusion.ai~1gpupool")
        assert pool["value"] == "prod-shared"  # the default pool as the GPUPool the controller creates
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=10) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
