"""`--host 0.0.0.0`: the node API has no TLS, so off loopback it warns loudly and its reads
need the bearer token too (on loopback, reads stay open to local tools)."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

from tests.e2e.compute_node import LocalNode


def _status(url: str, token: str = "") -> int:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code


def test_off_loopback_reads_need_the_token_and_the_node_warns(tmp_path: Path) -> None:
    with LocalNode(tmp_path) as node:
        node.start("--host", "0.0.0.0")
        token = (node.state_dir / "token").read_text().strip()
        url = node.url.replace("0.0.0.0", "127.0.0.1")
        assert _status(url + "/api/v1/devices") == 401
        assert _status(url + "/api/v1/workers", "wrong") == 401
        assert _status(url + "/api/v1/devices", token) == 200
        assert _status(url + "/healthz") == 200
        assert _status(url + "/metrics") == 200
        assert node.stop() == 0
    assert "WITHOUT TLS" in node.log.read_text()


def test_on_loopback_reads_stay_open(tmp_path: Path) -> None:
    with LocalNode(tmp_path) as node:
        node.start()
        assert _status(node.url + "/api/v1/devices") == 200
        assert node.stop() == 0
    assert "WITHOUT TLS" not in node.log.read_text()
