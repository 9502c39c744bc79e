"""A small, safe subset of Go templates: literal text and `{{ .Field }}` lookups, nothing else.

No expressions, pipelines or function calls, so a rule author cannot run code; anything but
a field lookup is a clear error at load time, and an unknown field is a clear error naming
the fields that exist.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tfcore.model.errors import ValidationError

_ACTION = re.compile(r"\{\{-?\s*(?P<body>.*?)\s*-?\}\}", re.DOTALL)
_FIELD = re.compile(r"^\.(?P<name>[A-Za-z_][A-Za-z0-9_]*)$")
EXPECTED = "literal text with {{ .Field }} lookups"


@dataclass(frozen=True, slots=True)
class Template:
    source: str
    parts: tuple[str | tuple[str], ...]  # literal text, or (field name,)

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(part[0] for part in self.parts if isinstance(part, tuple))

    def render(self, values: Mapping[str, Any], *, where: str = "template") -> str:
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            name = part[0]
            if name not in values:
                known = ", ".join(sorted(values)) or "none"
                raise ValidationError.single(where, f"unknown field .{name}", f"one of: {known}")
            out.append(format_value(values[name]))
        return "".join(out)


def parse(source: str, *, where: str = "template") -> Template:
    parts: list[str | tuple[str]] = []
    position = 0
    for match in _ACTION.finditer(source):
        literal = source[position : match.start()]
        _check_literal(literal, where)
        if literal:
            parts.append(literal)
        field = _FIELD.match(match["body"])
        if not field:
            raise ValidationError.single(
                where, f"unsupported template action {match.group(0)!r}: only field lookups are allowed", EXPECTED
            )
        parts.append((field["name"],))
        position = match.end()
    rest = source[position:]
    _check_literal(rest, where)
    if rest:
        parts.append(rest)
    return Template(source, tuple(parts))


def _check_literal(text: str, where: str) -> None:
    if "{{" in text:
        raise ValidationError.single(where, "unclosed '{{'", EXPECTED)
    if "}}" in text:
        raise ValidationError.single(where, "'}}' without a matching '{{'", EXPECTED)


def format_value(value: Any) -> str:
    """Numbers as a person writes them (97, not 97.0), times in RFC 3339, missing as empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(round(value, 6))
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
