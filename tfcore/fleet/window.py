"""Maintenance windows: cron expressions that open a window of a given length, in a time zone.

A window opens at every time one of the `includes` expressions fires (evaluated in the pool's
time zone, so "1 1 * * *" means 01:01 local time, daylight saving included) and stays open for
the rollout's `maxDuration`. No expressions means always open.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from tfcore.model.errors import ValidationError


def parse_timezone(name: str | None, *, field: str = "maintenanceWindow.timezone") -> ZoneInfo:
    """An IANA zone ("Europe/Berlin"); UTC when unset. ValidationError names the field."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError.single(
            field, f"unknown time zone {name!r}", "an IANA zone such as UTC or Europe/Berlin"
        ) from None


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    includes: tuple[str, ...]
    length: timedelta
    zone: ZoneInfo

    def opened_at(self, now: datetime) -> datetime | None:
        """When the window that is open at `now` opened (the latest firing); None when closed.

        With no expressions the window is always open and has no opening time.
        """
        local = now.astimezone(self.zone)
        latest: datetime | None = None
        for expression in self.includes:
            # get_prev from just after `now` includes a firing exactly at `now`.
            fired = croniter(expression, local + timedelta(microseconds=1)).get_prev(datetime)
            if local - fired < self.length and (latest is None or fired > latest):
                latest = fired
        return latest

    def is_open(self, now: datetime) -> bool:
        return not self.includes or self.opened_at(now) is not None

    def next_opening(self, now: datetime) -> datetime | None:
        """The next firing after `now` (None when there are no expressions)."""
        local = now.astimezone(self.zone)
        upcoming = [croniter(e, local).get_next(datetime) for e in self.includes]
        return min(upcoming) if upcoming else None


def window(includes: Sequence[str] | None, length: timedelta, timezone: str | None = None) -> MaintenanceWindow:
    return MaintenanceWindow(tuple(includes or ()), length, parse_timezone(timezone))
