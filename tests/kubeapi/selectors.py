"""Label selectors (equality and set-based) and field selectors, as the API server parses them."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Json = dict[str, Any]

_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_SET = re.compile(r"^\s*(\S+?)\s+(in|notin)\s+\(([^()]*)\)\s*$")
_EQ = re.compile(r"^\s*([^\s!=<>]+)\s*(==|=|!=|<|>)\s*([^\s]*)\s*$")
_EXISTS = re.compile(r"^\s*(!?)\s*([^\s!=()<>]+)\s*$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!", "<", ">"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("=", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        # Numeric comparisons: a label that is not an integer never matches.
        try:
            number = int(value or "")
        except ValueError:
            return False
        bound = int(self.values[0])
        return number < bound if self.op == "<" else number > bound


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    if depth != 0:
        raise ValueError(f"unbalanced parentheses in selector {text!r}")
    return parts


def _check_key(key: str) -> str:
    if not _KEY.match(key) or len(key.rsplit("/", 1)[-1]) > 63:
        raise ValueError(f"invalid label key {key!r}: must be a qualified name like 'example.com/name'")
    return key


def _check_value(value: str) -> str:
    if not _VALUE.match(value) or len(value) > 63:
        raise ValueError(f"invalid label value {value!r}: must be 63 characters or less of [A-Za-z0-9-_.]")
    return value


def check_label(key: str, value: object) -> None:
    """A label as metadata.labels accepts it; ValueError says what is wrong."""
    _check_key(key)
    if not isinstance(value, str):
        raise ValueError(f"label {key!r} must have a string value")
    _check_value(value)


def parse_label_selector(text: str | None) -> list[Requirement]:
    """Raises ValueError (the server's 400) on a malformed selector."""
    if not text or not text.strip():
        return []
    requirements = []
    for raw in _split_top_level(text):
        if not raw.strip():
            raise ValueError(f"empty requirement in label selector {text!r}")
        if m := _SET.match(raw):
            values = tuple(_check_value(v.strip()) for v in m.group(3).split(",") if v.strip())
            if not values:
                raise ValueError(f"{m.group(2)} needs at least one value in {raw!r}")
            requirements.append(Requirement(_check_key(m.group(1)), m.group(2), values))
        elif m := _EQ.match(raw):
            op = "=" if m.group(2) == "==" else m.group(2)
            if op in "<>":
                try:
                    int(m.group(3))
                except ValueError:
                    raise ValueError(f"{op} needs an integer value in {raw!r}") from None
                requirements.append(Requirement(_check_key(m.group(1)), op, (m.group(3),)))
            else:
                requirements.append(Requirement(_check_key(m.group(1)), op, (_check_value(m.group(3)),)))
        elif m := _EXISTS.match(raw):
            requirements.append(Requirement(_check_key(m.group(2)), "!" if m.group(1) else "exists"))
        else:
            raise ValueError(f"unable to parse requirement {raw.strip()!r} in label selector")
    return requirements


def labels_match(requirements: list[Requirement], obj: Json) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(r.matches(labels) for r in requirements)


FieldTest = Callable[[Json], bool]


def _field_value(obj: Json, path: str) -> str:
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, dict):
            return ""
        node = node.get(part)
    if node is None:
        return ""
    if isinstance(node, bool):
        return "true" if node else "false"
    if isinstance(node, dict):  # events' `source` selects on source.component
        return str(node.get("component", ""))
    return str(node)


def parse_field_selector(text: str | None, supported: frozenset[str], kind: str) -> list[FieldTest]:
    """Only the fields the kind supports are accepted; others are the server's 400."""
    if not text or not text.strip():
        return []
    tests: list[FieldTest] = []
    for raw in text.split(","):
        m = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*$", raw)
        if not m:
            raise ValueError(f"invalid field selector requirement {raw!r}: expected field=value or field!=value")
        path, op, wanted = m.group(1), m.group(2), m.group(3)
        if path not in supported:
            raise ValueError(f'field label not supported: "{path}" for {kind}')
        tests.append(_field_test(path, wanted, negate=op == "!="))
    return tests


def _field_test(path: str, wanted: str, negate: bool) -> FieldTest:
    def test(obj: Json) -> bool:
        return (_field_value(obj, path) == wanted) != negate

    return test


def fields_match(tests: list[FieldTest], obj: Json) -> bool:
    return all(t(obj) for t in tests)
