"""The webhook over real HTTPS (a test CA): admissions, bad bodies, probes, metrics, cert reload."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import shutil
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from daemons.webhook.server import MUTATE_PATH, CertificateReloader, Webhook, build_app
from tests.daemons.webhook.tls import CertAuthority
from tests.unit.admission.pods import cluster, owner_ref, review_body, tf_pod
from tfcore.admission import InjectionConfig
from tfcore.model import annotations as ann
from tfcore.web.app import Listener, Served, server_tls, start


class Server:
    def __init__(self, served: Served, webhook: Webhook, context: ssl.SSLContext, cert: Path, key: Path) -> None:
        self.served = served
        self.webhook = webhook
        self.context = context
        self.cert, self.key = cert, key
        port = served.addresses()[0][1]
        self.url = f"https://localhost:{port}"


@pytest.fixture
async def server(test_ca: CertAuthority, tmp_path: Path) -> AsyncIterator[Server]:
    cert, key = test_ca.issue("webhook")
    shutil.copy(cert, tmp_path / "tls.crt")
    shutil.copy(key, tmp_path / "tls.key")
    context = server_tls(str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"))
    webhook = Webhook(InjectionConfig(), cluster)
    served = await start([(build_app(webhook), Listener("127.0.0.1", 0, context))], grace=1.0)
    try:
        yield Server(served, webhook, context, tmp_path / "tls.crt", tmp_path / "tls.key")
    finally:
        await served.close(grace=1.0)


def client_tls(ca: CertAuthority) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca.cert))


async def post(server: Server, ca: CertAuthority, body: bytes | io.BytesIO, **headers: str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            server.url + MUTATE_PATH,
            data=body,
            ssl=client_tls(ca),
            headers={"Content-Type": "application/json", **headers},
        ) as response,
    ):
        return response.status, await response.json(content_type=None)


async def test_a_tf_pod_is_patched_over_https(server: Server, test_ca: CertAuthority) -> None:
    status, answer = await post(server, test_ca, review_body(tf_pod(), uid="abc"))
    assert status == 200
    response = answer["response"]
    assert response["uid"] == "abc"
    assert response["allowed"] is True
    patch = json.loads(base64.b64decode(response["patch"]))
    assert {"op": "add", "path": "/spec/schedulerName", "value": "tensor-fusion-scheduler"} in patch


async def test_a_pod_that_is_not_ours_is_allowed_without_patch(server: Server, test_ca: CertAuthority) -> None:
    pod = tf_pod()
    pod["metadata"]["labels"] = {"app": "other"}
    status, answer = await post(server, test_ca, review_body(pod, uid="n"))
    assert status == 200
    assert answer["response"] == {"uid": "n", "allowed": True}


async def test_an_invalid_annotation_is_denied_with_its_name(server: Server, test_ca: CertAuthority) -> None:
    status, answer = await post(server, test_ca, review_body(tf_pod({ann.QOS: "ultra"}), uid="d"))
    assert status == 200
    assert answer["response"]["allowed"] is False
    assert ann.QOS in answer["response"]["status"]["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"", "body"),
        (b"{", "body"),
        (b"[1]", "body"),
        (b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}', "request"),
        (b'{"apiVersion":"v1","kind":"AdmissionReview","request":{"uid":"x"}}', "apiVersion"),
    ],
)
async def test_bad_bodies_are_400_with_the_problem(
    server: Server, test_ca: CertAuthority, body: bytes, field: str
) -> None:
    status, answer = await post(server, test_ca, body)
    assert status == 400
    assert field in {p["field"] for p in answer["problems"]}
    assert answer["error"]


async def test_an_oversized_body_is_413(server: Server, test_ca: CertAuthority) -> None:
    status, answer = await post(server, test_ca, io.BytesIO(b"{" + b" " * (4 * 1024 * 1024) + b"}"))
    assert status == 413
    assert "too large" in answer["error"]


async def test_canary_listing_failure_admits_native_with_a_warning(server: Server, test_ca: CertAuthority) -> None:
    pod = tf_pod({ann.TFLOPS_LIMIT: "1", ann.VRAM_LIMIT: "1Gi", ann.ENABLED_REPLICAS: "2"})
    pod["metadata"]["ownerReferences"] = [owner_ref("ReplicaSet", "web-1", "rs-1")]
    status, answer = await post(server, test_ca, review_body(pod, uid="c"))
    assert status == 200
    response = answer["response"]
    assert response["allowed"] is True
    assert "stays native" in response["warnings"][0]
    patch = json.loads(base64.b64decode(response["patch"]))
    assert patch == [{"op": "add", "path": "/metadata/annotations/tensor-fusion.ai~1admission", "value": "native"}]


async def test_probes_and_metrics(server: Server, test_ca: CertAuthority) -> None:
    await post(server, test_ca, review_body(tf_pod()))
    await post(server, test_ca, b"nope")
    async with aiohttp.ClientSession() as session:
        for path in ("/healthz", "/readyz"):
            async with session.get(server.url + path, ssl=client_tls(test_ca)) as response:
                assert response.status == 200
        async with session.get(server.url + "/metrics", ssl=client_tls(test_ca)) as response:
            text = await response.text()
    assert 'tf_webhook_admissions_total{result="mutated"} 1.0' in text
    assert 'tf_webhook_admissions_total{result="bad_request"} 1.0' in text
    assert "tf_webhook_admission_seconds_count 2.0" in text


async def test_plain_http_is_refused(server: Server) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientError):
            async with session.post(server.url.replace("https", "http") + MUTATE_PATH, data=b"{}") as response:
                await response.read()


async def _served_certificate(server: Server, ca: CertAuthority) -> bytes:
    """The DER certificate a fresh TLS handshake gets."""
    port = server.served.addresses()[0][1]
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_tls(ca), server_hostname="localhost")
    der: bytes = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    await writer.wait_closed()
    return der


async def test_a_renewed_certificate_is_served_after_reload(server: Server, test_ca: CertAuthority) -> None:
    reloader = CertificateReloader(server.context, str(server.cert), str(server.key), metrics=server.webhook.metrics)
    before = await _served_certificate(server, test_ca)
    assert reloader.check() is False
    cert, key = test_ca.issue("webhook-renewed")
    server.key.write_bytes(key.read_bytes())
    assert reloader.check() is False  # a half-written pair keeps the old certificate
    server.cert.write_bytes(cert.read_bytes())
    assert reloader.check() is True
    after = await _served_certificate(server, test_ca)
    assert after != before
