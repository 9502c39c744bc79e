"""The two wire formats of dynamicConfig.metricsFormat: `influx` (line protocol) and `json`.

The JSON form is one object per line: {"measurement", "tags", "fields", "timestamp"} with the
timestamp in nanoseconds, for pipelines (log shippers) that prefer JSON to line protocol.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import msgspec

from tfcore.metrics import lineproto
from tfcore.metrics.lineproto import FieldValue, Point, Precision
from tfcore.model.errors import Problem, ValidationError

MetricsFormat = Literal["influx", "json"]
FORMATS: tuple[str, ...] = ("influx", "json")


class _JsonPoint(msgspec.Struct, forbid_unknown_fields=True):
    measurement: str
    fields: dict[str, FieldValue]
    tags: dict[str, str] = {}
    timestamp: int | None = None


def check_format(name: str) -> MetricsFormat:
    if name not in FORMATS:
        raise ValidationError.single("metricsFormat", f"unknown format {name!r}", "influx or json")
    return name  # type: ignore[return-value]


def encode_points(points: Iterable[Point], fmt: MetricsFormat = "influx", precision: Precision = "ns") -> str:
    if fmt == "influx":
        return lineproto.encode_lines(points, precision)
    lines = []
    for point in points:
        lineproto.encode(point)  # same validation as line protocol
        payload = _JsonPoint(point.measurement, dict(point.fields), dict(point.tags), point.time_ns)
        lines.append(msgspec.json.encode(payload).decode() + "\n")
    return "".join(lines)


def decode_points(
    text: str, fmt: MetricsFormat = "influx", precision: Precision = "ns", *, where: str = "input"
) -> list[Point]:
    if fmt == "influx":
        return lineproto.decode_lines(text, precision, where=where)
    points: list[Point] = []
    problems: list[Problem] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            raw = msgspec.json.decode(line, type=_JsonPoint)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            problems.append(Problem(f"{where}:{number}", str(exc), '{"measurement": str, "fields": {...}, ...}'))
            continue
        point = Point(raw.measurement, raw.tags, raw.fields, raw.timestamp)
        try:
            lineproto.encode(point)
        except ValidationError as exc:
            problems.extend(Problem(f"{where}:{number}.{p.field}", p.message, p.expected) for p in exc.problems)
            continue
        points.append(point)
    if problems:
        raise ValidationError(problems)
    return points
