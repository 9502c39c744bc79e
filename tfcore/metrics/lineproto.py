"""InfluxDB line protocol: encode and decode points, with the protocol's escaping rules.

    measurement,tag=value field=1.5,count=3i,ok=t,msg="text" 1700000000000000000

Measurement names escape comma and space; tag keys, tag values and field keys also escape
"="; string field values escape double quote and backslash. Backslash is always written
escaped so that every encoded point decodes back to itself. Newlines are not representable
and are rejected.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from tfcore.model.errors import Problem, ValidationError

FieldValue = float | int | bool | str
Precision = Literal["ns", "us", "ms", "s"]
PRECISION_NS: dict[str, int] = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

_NAME_SPECIALS = {",": "\\,", " ": "\\ ", "\\": "\\\\"}
_KEY_SPECIALS = {**_NAME_SPECIALS, "=": "\\="}
_NAME_TABLE = str.maketrans(_NAME_SPECIALS)
_KEY_TABLE = str.maketrans(_KEY_SPECIALS)
_STRING_TABLE = str.maketrans({'"': '\\"', "\\": "\\\\"})
_TRUE = {"t", "T", "true", "True", "TRUE"}
_FALSE = {"f", "F", "false", "False", "FALSE"}


@dataclass(frozen=True, slots=True)
class Point:
    """One row of a metrics table. `time_ns` None means "now" to the store that receives it."""

    measurement: str
    tags: Mapping[str, str] = field(default_factory=dict)
    fields: Mapping[str, FieldValue] = field(default_factory=dict)
    time_ns: int | None = None


def check_precision(precision: str) -> Precision:
    if precision not in PRECISION_NS:
        raise ValidationError.single("precision", f"unknown precision {precision!r}", "one of ns, us, ms, s")
    return precision  # type: ignore[return-value]


def encode(point: Point, precision: Precision = "ns") -> str:
    """One line (without the trailing newline). Empty tag values are omitted, as Influx does."""
    problems = _check(point)
    if problems:
        raise ValidationError(problems)
    parts = [point.measurement.translate(_NAME_TABLE)]
    parts.extend(
        f",{key.translate(_KEY_TABLE)}={value.translate(_KEY_TABLE)}"
        for key, value in sorted(point.tags.items())
        if value
    )
    fields = ",".join(f"{key.translate(_KEY_TABLE)}={_encode_value(value)}" for key, value in point.fields.items())
    line = f"{''.join(parts)} {fields}"
    if point.time_ns is not None:
        line += f" {point.time_ns // PRECISION_NS[precision]}"
    return line


def encode_lines(points: Iterable[Point], precision: Precision = "ns") -> str:
    return "".join(encode(p, precision) + "\n" for p in points)


def decode(line: str, precision: Precision = "ns", *, where: str = "line") -> Point:
    """Parse one line; raise ValidationError naming the line and the column of the fault."""
    return _Parser(line, precision, where).point()


def decode_lines(text: str, precision: Precision = "ns", *, where: str = "input") -> list[Point]:
    """Every point in `text`, skipping blank lines and `#` comments; all problems reported together."""
    points: list[Point] = []
    problems: list[Problem] = []
    for number, line in _numbered_lines(text):
        try:
            points.append(decode(line, precision, where=f"{where}:{number}"))
        except ValidationError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ValidationError(problems)
    return points


def _numbered_lines(text: str) -> Iterator[tuple[int, str]]:
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.removesuffix("\r")
        # Only ASCII space and tab count as blank here: str.strip() would also eat U+0085 and
        # friends, which are legal in a measurement name and would turn a point into a comment.
        if line.strip(" \t") and not line.lstrip(" \t").startswith("#"):
            yield number, line


def _check(point: Point) -> list[Problem]:
    problems: list[Problem] = []

    def text_ok(where: str, text: str, *, allow_empty: bool = False) -> None:
        if not text and not allow_empty:
            problems.append(Problem(where, "must not be empty", "a non-empty string"))
        elif "\n" in text or "\r" in text:
            problems.append(Problem(where, "contains a newline", "text without line breaks"))

    text_ok("measurement", point.measurement)
    if point.measurement.startswith("#"):
        problems.append(Problem("measurement", "starts with '#', which marks a comment", "a name not starting with #"))
    for key, tag in point.tags.items():
        text_ok(f"tags.{key}", key)
        text_ok(f"tags.{key}", tag, allow_empty=True)
    if not point.fields:
        problems.append(Problem("fields", "a point needs at least one field", "a mapping of field name to value"))
    for key, field_value in point.fields.items():
        value: object = field_value  # callers may pass anything at run time
        text_ok(f"fields.{key}", key)
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(Problem(f"fields.{key}", f"{value!r} is not representable", "a finite number"))
        elif isinstance(value, int) and not isinstance(value, bool) and not _INT64_MIN <= value <= _INT64_MAX:
            problems.append(Problem(f"fields.{key}", f"{value} overflows", "a 64-bit signed integer"))
        elif isinstance(value, str):
            text_ok(f"fields.{key}", value, allow_empty=True)
        elif not isinstance(value, (bool, int, float, str)):
            problems.append(
                Problem(f"fields.{key}", f"unsupported type {type(value).__name__}", "float, int, bool, str")
            )
    return problems


def _encode_value(value: FieldValue) -> str:
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value)
    return f'"{value.translate(_STRING_TABLE)}"'


class _Parser:
    """A single-pass scanner over one line; positions are reported 1-based."""

    def __init__(self, line: str, precision: Precision, where: str) -> None:
        self.text = line
        self.pos = 0
        self.precision = precision
        self.where = where

    def fail(self, message: str, expected: str) -> ValidationError:
        return ValidationError.single(f"{self.where} col {self.pos + 1}", message, expected)

    def point(self) -> Point:
        if "\n" in self.text or "\r" in self.text:
            raise self.fail("contains a line break", "one point per line")
        measurement = self.token(stops=", ")
        if not measurement:
            raise self.fail("missing measurement name", "measurement[,tag=value...] field=value[,...] [timestamp]")
        tags: dict[str, str] = {}
        while self.peek() == ",":
            self.pos += 1
            key = self.token(stops="=, ")
            self.expect("=", "'=' after the tag key")
            value = self.token(stops=", ")
            if not key or not value:
                raise self.fail("empty tag key or value", "tag=value with both parts non-empty")
            tags[key] = value
        self.expect(" ", "a space before the fields")
        fields: dict[str, FieldValue] = {}
        while True:
            key = self.token(stops="=, ")
            if not key:
                raise self.fail("empty field key", "field=value")
            self.expect("=", "'=' after the field key")
            fields[key] = self.value(key)
            if self.peek() != ",":
                break
            self.pos += 1
        time_ns: int | None = None
        if self.peek() == " ":
            self.pos += 1
            time_ns = self.timestamp()
        if self.pos != len(self.text):
            raise self.fail("unexpected trailing text", "end of line after the timestamp")
        return Point(measurement, tags, fields, time_ns)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, char: str, expected: str) -> None:
        if self.peek() != char:
            found = repr(self.peek()) if self.peek() else "end of line"
            raise self.fail(f"found {found}", expected)
        self.pos += 1

    def token(self, stops: str) -> str:
        out: list[str] = []
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char == "\\" and self.pos + 1 < len(text) and text[self.pos + 1] in stops + "\\=,":
                out.append(text[self.pos + 1])
                self.pos += 2
                continue
            if char in stops:
                break
            out.append(char)
            self.pos += 1
        return "".join(out)

    def value(self, key: str) -> FieldValue:
        if self.peek() == '"':
            return self.string()
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in ", ":
            self.pos += 1
        raw = self.text[start : self.pos]
        if raw in _TRUE:
            return True
        if raw in _FALSE:
            return False
        if raw[-1:] in ("i", "u"):
            try:
                number = int(raw[:-1])
            except ValueError:
                number = None
            if number is not None and _INT64_MIN <= number <= (_INT64_MAX if raw[-1] == "i" else 2**64 - 1):
                if raw[-1] == "u" and number < 0:
                    raise self.fail(f"field {key!r}: unsigned integer {raw!r} is negative", "digits followed by u")
                return number
            self.pos = start
            raise self.fail(f"field {key!r}: bad integer {raw!r}", "a 64-bit integer followed by i (or u)")
        try:
            number_f = float(raw)
        except ValueError:
            number_f = math.nan
        if not math.isfinite(number_f) or raw.lower().lstrip("+-") in ("inf", "infinity", "nan") or "_" in raw:
            self.pos = start
            raise self.fail(
                f"field {key!r}: bad value {raw!r}", 'a float (1.5), integer (3i), boolean (t/f) or string ("x")'
            )
        return number_f

    def string(self) -> str:
        self.pos += 1
        out: list[str] = []
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char == "\\" and self.pos + 1 < len(text) and text[self.pos + 1] in '"\\':
                out.append(text[self.pos + 1])
                self.pos += 2
                continue
            if char == '"':
                self.pos += 1
                return "".join(out)
            out.append(char)
            self.pos += 1
        raise self.fail("unterminated string value", "a closing double quote")

    def timestamp(self) -> int:
        raw = self.text[self.pos :]
        try:
            value = int(raw)
        except ValueError:
            raise self.fail(f"bad timestamp {raw!r}", f"an integer timestamp in {self.precision}") from None
        if not raw.lstrip("-").isdigit():
            raise self.fail(f"bad timestamp {raw!r}", f"an integer timestamp in {self.precision}")
        self.pos = len(self.text)
        time_ns = value * PRECISION_NS[self.precision]
        if not _INT64_MIN <= time_ns <= _INT64_MAX:
            raise self.fail(f"timestamp {raw} is out of range", "a time that fits 64-bit nanoseconds")
        return time_ns
