"""One module per reconciler; each is a `Reconciler` (a NAME and `async def reconcile(ctx, name)`).

Which object changes queue which reconciler is declared in daemons/controller/routing.py.
"""

from __future__ import annotations

from typing import Protocol

from daemons.controller.context import Context


class Reconciler(Protocol):
    """What a reconciler module provides."""

    NAME: str  # the first half of its queue keys and the `reconciler` label of its metrics

    async def reconcile(self, ctx: Context, name: str) -> None:
        """Bring the object `name` ("name" or "namespace/name") to what the cluster asks for.

        Idempotent: it reads the store, plans with tfcore.operator and writes only differences.
        Raises KubeError/Conflict to be retried with backoff, ValidationError to be reported.
        """
        ...
