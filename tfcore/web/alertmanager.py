"""AlertManager v2 client: POST /api/v2/alerts, the transport behind tfcore.alerts.delivery."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp

from tfcore.alerts.delivery import DeliveryFailed
from tfcore.alerts.state import Alert

log = logging.getLogger(__name__)


def alertmanager_url(address: str) -> str:
    """`-alert-manager-addr` is host:port (as in the spec); a full http(s) URL works too."""
    address = address.strip().rstrip("/")
    if not address:
        raise ValueError("empty AlertManager address; expected host:port or http(s)://host:port")
    return address if address.startswith(("http://", "https://")) else f"http://{address}"


def to_payload(alert: Alert) -> dict[str, Any]:
    body: dict[str, Any] = {
        "labels": dict(alert.labels),
        "annotations": {k: v for k, v in alert.annotations.items() if v},
        "startsAt": _rfc3339(alert.starts_at),
        "endsAt": _rfc3339(alert.ends_at),
    }
    if alert.generator_url:
        body["generatorURL"] = alert.generator_url
    return body


class AlertManagerClient:
    def __init__(self, address: str, *, session: aiohttp.ClientSession | None = None, timeout: float = 5.0) -> None:
        self.url = alertmanager_url(address) + "/api/v2/alerts"
        self._session = session
        self._owns_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def send(self, alerts: Sequence[Alert]) -> None:
        if not alerts:
            return
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.post(
                self.url, json=[to_payload(a) for a in alerts], timeout=self._timeout
            ) as response:
                if response.status == 200:
                    return
                text = (await response.text())[:500]
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryFailed(f"{self.url}: {exc!r}") from exc
        if 400 <= response.status < 500 and response.status not in (408, 429):
            # Our payload was refused: retrying the same bytes cannot succeed. Say so loudly.
            log.error("AlertManager refused %d alerts with %d: %s", len(alerts), response.status, text)
            return
        raise DeliveryFailed(f"{self.url}: HTTP {response.status}: {text}")

    async def close(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()
        self._session = None


def _rfc3339(instant: datetime) -> str:
    utc = instant.astimezone(UTC) if instant.tzinfo else instant.replace(tzinfo=UTC)
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")
