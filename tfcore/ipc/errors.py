"""Errors of the shared-memory region facade."""

from __future__ import annotations

from pathlib import Path


class RegionError(Exception):
    """A region file could not be created, opened or used; says which file and why."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"shared-memory region {path}: {reason}")
        self.path = Path(path)
        self.reason = reason
