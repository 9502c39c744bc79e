"""Open watches: what each selects, and how a stored change reads through its selectors."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from tests.kubeapi.admission import clone
from tests.kubeapi.resources import ResourceType
from tests.kubeapi.selectors import FieldTest, Requirement, fields_match, labels_match

Json = dict[str, Any]


@dataclass
class Event:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    rkey: tuple[str, str]
    obj: Json
    old: Json | None = None


@dataclass(eq=False)  # identity: each open watch is its own subscriber
class Watcher:
    """One open watch: what it selects, and a queue of (type, object) to stream; None ends it."""

    rtype: ResourceType
    namespace: str | None
    labels: list[Requirement]
    fields: list[FieldTest]
    queue: asyncio.Queue[tuple[str, Json] | None] = field(default_factory=asyncio.Queue)

    def selects(self, obj: Json | None) -> bool:
        if obj is None:
            return False
        if self.namespace is not None and obj["metadata"].get("namespace") != self.namespace:
            return False
        return labels_match(self.labels, obj) and fields_match(self.fields, obj)

    def translate(self, event: Event) -> tuple[str, Json] | None:
        """Selector-aware, as the watch cache does it: leaving the selection is a DELETED."""
        if event.rkey != self.rtype.key:
            return None
        now_in = self.selects(event.obj)
        if event.type != "MODIFIED":
            return (event.type, event.obj) if now_in else None
        was_in = self.selects(event.old)
        if now_in:
            return ("MODIFIED" if was_in else "ADDED", event.obj)
        if was_in and event.old is not None:
            gone = clone(event.old)
            gone["metadata"]["resourceVersion"] = str(event.rv)
            return ("DELETED", gone)
        return None
