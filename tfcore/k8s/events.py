"""Kubernetes Events (core/v1) about the objects the controller manages; best effort."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from tfcore.k8s.client import KubeClient, request_json
from tfcore.k8s.errors import KubeError
from tfcore.k8s.resources import EVENTS

log = logging.getLogger(__name__)

EventType = Literal["Normal", "Warning"]
CLUSTER_SCOPED_NAMESPACE = "default"  # where Events about cluster-scoped objects go, as kubectl expects


class EventRecorder:
    """Writes one Event per call; a failure is logged, never raised (Events are advisory)."""

    def __init__(self, api: KubeClient, component: str, *, host: str = "") -> None:
        self.api = api
        self.component = component
        self.host = host
        self.sent = 0
        self.failed = 0

    async def emit(self, obj: Mapping[str, Any], type_: EventType, reason: str, message: str) -> None:
        metadata = obj.get("metadata") or {}
        name = str(metadata.get("name") or "")
        namespace = str(metadata.get("namespace") or CLUSTER_SCOPED_NAMESPACE)
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{name}.{time.time_ns():x}", "namespace": namespace},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion"),
                "kind": obj.get("kind"),
                "name": name,
                "namespace": metadata.get("namespace"),
                "uid": metadata.get("uid"),
                "resourceVersion": metadata.get("resourceVersion"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": self.component, "host": self.host},
            "reportingComponent": self.component,
            "reportingInstance": self.host,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await request_json(self.api, "POST", EVENTS.collection(namespace), body=body)
            self.sent += 1
        except KubeError as exc:
            self.failed += 1
            log.info("event %s on %s/%s not recorded: %s", reason, obj.get("kind"), name, exc)
