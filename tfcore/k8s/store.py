"""One informer-fed object store per process: every daemon reads the cluster through it.

`Store` holds the latest copy of each watched object by kind and key and tells subscribers
what changed; it never goes back in time (a copy older than the one held, by resourceVersion,
is dropped) and a write's answer can be put in with `remember` so a reconcile that follows does
not act on the state before its own write. `Informers` runs one list+watch per resource into
a store and says when all of them have listed once.

Usage:
    store = Store()
    store.subscribe(lambda change: ...)          # optional: react to changes
    informers = Informers(api, store, [Resource.of(PODS, label_selector=...), ...])
    await informers.run()                        # in a task; informers.synced is an Event
    store.get("Pod", "ns/name"); store.objects("GPU")
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, ValuesView
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from tfcore.k8s.client import KubeClient
from tfcore.k8s.informer import Event, EventType, Informer, Resource
from tfcore.model.view import Meta, key_of

Raw = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Change:
    """What one event did to the store.

    `type` is the event's; a relist reports every listed object as SYNC and every object it
    no longer has as DELETED, with `relist` set. `previous` is the copy held before a MODIFIED,
    else None.
    """

    type: EventType
    kind: str
    obj: Raw
    previous: Raw | None = None
    relist: bool = False  # one of the changes a relist (SYNC event) reports


Listener = Callable[[Change], None]
RelistListener = Callable[[str, tuple[Raw, ...]], None]


class Store:
    def __init__(self, kinds: Iterable[str] = ()) -> None:
        self._objects: dict[str, dict[str, Raw]] = {kind: {} for kind in kinds}
        self._listeners: list[Listener] = []
        self._relist_listeners: list[RelistListener] = []
        self.changes = 0  # bumped on every applied change: a cheap "anything new?" for memos

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def subscribe_relists(self, listener: RelistListener) -> None:
        """Also hear each relist whole: `listener(kind, listed)`, once per list (an empty one
        included), after the store holds it and before its per-object changes. For a reader
        that replaces what it knew of a kind at once (and skips the changes with `relist` set)."""
        self._relist_listeners.append(listener)

    # ---- reading -------------------------------------------------------------------------

    def kinds(self) -> tuple[str, ...]:
        return tuple(self._objects)

    def get(self, kind: str, key: str) -> Raw | None:
        return self._objects.get(kind, {}).get(key)

    def objects(self, kind: str) -> ValuesView[Raw]:
        return self._by_kind(kind).values()

    def of_kind(self, kind: str) -> Mapping[str, Raw]:
        """All objects of a kind by key, read-only."""
        return MappingProxyType(self._by_kind(kind))

    def view(self) -> Mapping[str, Mapping[str, Raw]]:
        """Every kind by key, read-only (for readers that take the whole cache, e.g. samplers)."""
        return MappingProxyType({kind: MappingProxyType(objs) for kind, objs in self._objects.items()})

    def _by_kind(self, kind: str) -> dict[str, Raw]:
        return self._objects.setdefault(kind, {})

    # ---- writing -------------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        """The informer handler: fold one event in and notify the subscribers."""
        held = self._by_kind(event.kind)
        if event.type == "SYNC":
            listed = {key_of(o): o for o in event.objects}
            gone = [obj for key, obj in held.items() if key not in listed]
            held.clear()
            held.update(listed)
            self.changes += 1
            for relisted in self._relist_listeners:
                relisted(event.kind, event.objects)
            self._notify([Change("SYNC", event.kind, o, relist=True) for o in event.objects])
            self._notify([Change("DELETED", event.kind, o, relist=True) for o in gone])
            return
        key = key_of(event.obj)
        previous = held.get(key)
        if event.type == "DELETED":
            held.pop(key, None)
        elif previous is None or Meta(event.obj.get("metadata") or {}).version >= _version(previous):
            held[key] = event.obj
        self.changes += 1
        self._notify([Change(event.type, event.kind, event.obj, previous if event.type == "MODIFIED" else None)])

    def remember(self, obj: Raw) -> None:
        """Take a write's answer now (only for a watched kind, and only if it is not older)."""
        held = self._objects.get(str(obj.get("kind") or ""))
        if held is None:
            return
        key = key_of(obj)
        current = held.get(key)
        if current is None or _version(obj) >= _version(current):
            held[key] = obj
            self.changes += 1

    def _notify(self, changes: list[Change]) -> None:
        for change in changes:
            for listener in self._listeners:
                listener(change)


def _version(obj: Raw) -> int:
    return Meta(obj.get("metadata") or {}).version


class Informers:
    """One informer per resource, all feeding one store."""

    def __init__(
        self,
        api: KubeClient,
        store: Store,
        resources: Iterable[Resource],
        *,
        watch_timeout: int = 300,
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        """`on_event`: also called with each raw event after the store took it."""
        self.store = store
        self._extra = on_event
        self.informers = [Informer(api, r, self._handle, watch_timeout=watch_timeout) for r in resources]
        for informer in self.informers:
            store._by_kind(informer.resource.kind)  # a kind with no object yet still reads as empty

    def _handle(self, event: Event) -> None:
        self.store.apply(event)
        if self._extra is not None:
            self._extra(event)

    def synced(self) -> bool:
        return all(i.synced.is_set() for i in self.informers)

    def unsynced(self) -> list[str]:
        return [i.resource.kind for i in self.informers if not i.synced.is_set()]

    async def wait_synced(self) -> None:
        await asyncio.gather(*(i.synced.wait() for i in self.informers))

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for informer in self.informers:
                group.create_task(informer.run())
