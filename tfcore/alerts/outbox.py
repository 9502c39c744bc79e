"""What still has to reach AlertManager, deduplicated by alert identity.

Only the latest state of each alert is kept (a resolution replaces its pending firing), so a
long outage costs one entry per alert, not one per evaluation, and recovery sends each alert
once. Firing alerts are also remembered as active so that, after an outage (AlertManager may
have restarted and forgotten them), `resync` queues them all again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from tfcore.alerts.state import Alert

Key = tuple[tuple[str, str], ...]


@dataclass(slots=True)
class Outbox:
    max_pending: int = 10_000
    pending: dict[Key, Alert] = field(default_factory=dict)
    active: dict[Key, Alert] = field(default_factory=dict)
    dropped: int = 0

    def put(self, alerts: Iterable[Alert]) -> None:
        for alert in alerts:
            self.pending.pop(alert.key, None)  # re-insert: the newest state goes to the back
            self.pending[alert.key] = alert
            if alert.firing:
                self.active[alert.key] = alert
            else:
                self.active.pop(alert.key, None)
        while len(self.pending) > self.max_pending:
            del self.pending[next(iter(self.pending))]
            self.dropped += 1

    def take(self, limit: int) -> list[Alert]:
        batch: list[Alert] = []
        while self.pending and len(batch) < limit:
            key = next(iter(self.pending))
            batch.append(self.pending.pop(key))
        return batch

    def give_back(self, batch: Iterable[Alert]) -> None:
        """A batch that failed to send: requeue each alert unless a newer state is already queued."""
        older = {a.key: a for a in batch if a.key not in self.pending}
        self.pending = {**older, **self.pending}

    def resync(self) -> None:
        """Queue every active (firing) alert again, keeping newer queued states."""
        self.give_back(self.active.values())
