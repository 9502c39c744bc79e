"""Durations as rules and configs write them: 15s, 1m30s, 500ms, 2h, 30d, 1w."""

from __future__ import annotations

import re
from datetime import timedelta

from tfcore.model.errors import ValidationError

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
EXPECTED = "a positive duration like 15s, 1m30s, 500ms, 2h or 30d"


def parse_duration(text: object, *, field: str) -> timedelta:
    if not isinstance(text, str) or not text:
        raise ValidationError.single(field, f"not a duration: {text!r}", EXPECTED)
    position, seconds = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != position:
            break
        seconds += float(match[1]) * _UNITS[match[2]]
        position = match.end()
    if position != len(text):
        raise ValidationError.single(field, f"not a duration: {text!r}", EXPECTED)
    if seconds <= 0:
        raise ValidationError.single(field, f"{text!r} is not positive", EXPECTED)
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The largest unit that divides evenly: 30d, 90m, 15s, 500ms (GreptimeDB's TTL syntax too)."""
    total_ms = round(value.total_seconds() * 1000)
    for unit in ("d", "h", "m", "s", "ms"):
        size = round(_UNITS[unit] * 1000)
        if total_ms % size == 0:
            return f"{total_ms // size}{unit}"
    return f"{total_ms}ms"
