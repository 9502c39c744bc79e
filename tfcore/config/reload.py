"""Reload a file mounted from a ConfigMap whenever it changes, keeping the last good version.

The kubelet updates a ConfigMap volume by writing a new timestamped directory and atomically
swapping the `..data` symlink; `config.yaml` is a symlink through `..data`. Inotify watches on
the file miss that swap, so we poll: stat through the symlinks, and read and hash the content
when anything moved. A new version that fails to parse is rejected with the reason logged
(once per bad version) and the previous one stays in force.

Generic: a path, a parse function (raise on bad input) and an on-change callback.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)

Parse = Callable[[str], T]
OnChange = Callable[[T], Awaitable[None] | None]


class ConfigReloader(Generic[T]):
    def __init__(
        self,
        path: str | Path,
        parse: Parse[T],
        on_change: OnChange[T] | None = None,
        *,
        poll_interval: float = 2.0,
        name: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.name = name or self.path.name
        self.current: T | None = None
        self.last_error: str | None = None
        self.reloads = 0
        self.rejected = 0
        self._parse = parse
        self._on_change = on_change
        self._poll_interval = poll_interval
        self._signature: tuple[object, ...] | None = None
        self._digest: str | None = None  # of the content last looked at, good or bad

    async def load(self) -> T:
        """First load: raise if the file is missing or invalid (there is nothing to fall back to)."""
        text = await asyncio.to_thread(self.path.read_text, encoding="utf-8")
        value = self._parse(text)
        self._signature = await asyncio.to_thread(self._stat_signature)
        self._digest = _digest(text)
        self.current = value
        await self._notify(value)
        return value

    async def check(self) -> bool:
        """Look once; True when a new valid version was installed."""
        signature = await asyncio.to_thread(self._stat_signature)
        if signature == self._signature:
            return False
        self._signature = signature
        try:
            text = await asyncio.to_thread(self.path.read_text, encoding="utf-8")
        except OSError as exc:
            self._reject(f"cannot read: {exc.strerror or exc}", digest=None)
            return False
        digest = _digest(text)
        if digest == self._digest:
            return False  # touched or re-linked, same content
        try:
            value = self._parse(text)
        except Exception as exc:
            self._reject(str(exc), digest=digest)
            return False
        self._digest = digest
        self.current = value
        self.last_error = None
        self.reloads += 1
        log.info("%s: reloaded %s", self.name, self.path)
        try:
            await self._notify(value)
        except Exception:
            log.exception("%s: applying the new config failed", self.name)
        return True

    async def run(self) -> None:
        """Poll until cancelled."""
        while True:
            await asyncio.sleep(self._poll_interval)
            await self.check()

    def _reject(self, reason: str, *, digest: str | None) -> None:
        if digest is not None and digest == self._digest:
            return
        self._digest = digest
        self.rejected += 1
        self.last_error = reason
        kept = "keeping the previous version" if self.current is not None else "no valid version loaded yet"
        log.error("%s: rejected new %s (%s): %s", self.name, self.path, kept, reason)

    async def _notify(self, value: T) -> None:
        if self._on_change is None:
            return
        result = self._on_change(value)
        if inspect.isawaitable(result):
            await result

    def _stat_signature(self) -> tuple[object, ...]:
        try:
            real = os.path.realpath(self.path)
            st = os.stat(real)
        except OSError as exc:
            return ("missing", exc.errno)
        return (real, st.st_ino, st.st_mtime_ns, st.st_size)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
