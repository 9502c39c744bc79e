"""Reading a plugin's args (pluginConfig[].args) with typed, named errors."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from tfcore.model.errors import Problem, ValidationError


class ArgsReader:
    """Takes args one by one; `done()` raises one ValidationError for every problem, unknown keys included."""

    def __init__(self, plugin: str, raw: object, where: str) -> None:
        self.plugin = plugin
        self.where = where or f"pluginConfig[{plugin}].args"
        self.problems: list[Problem] = []
        self.known: list[str] = []
        if raw is not None and not isinstance(raw, Mapping):
            self.problems.append(Problem(self.where, f"args of {plugin} must be a mapping", "key: value pairs"))
            raw = None
        self.raw: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}

    def integer(self, key: str, default: int, *, minimum: int = 0) -> int:
        self.known.append(key)
        value = self.raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self._fail(key, f"got {value!r}", f"an integer >= {minimum}")
            return default
        if value < minimum:
            self._fail(key, f"{value} is below the minimum", f"an integer >= {minimum}")
            return default
        return value

    def number(self, key: str, default: float | None, *, low: float, high: float | None = None) -> float | None:
        self.known.append(key)
        value = self.raw.get(key, default)
        if value is None:
            return None
        expected = f"a number from {low} to {high}" if high is not None else f"a number > {low}"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self._fail(key, f"got {value!r}", expected)
            return default
        if value < low or (high is not None and value > high) or (high is None and value <= low):
            self._fail(key, f"{value} is out of range", expected)
            return default
        return float(value)

    def choice(self, key: str, default: str, options: Collection[str]) -> str:
        self.known.append(key)
        value = self.raw.get(key, default)
        if value not in options:
            self._fail(key, f"got {value!r}", "one of " + ", ".join(options))
            return default
        return str(value)

    def done(self) -> None:
        for key in self.raw:
            if key not in self.known:
                self._fail(str(key), f"unknown argument of {self.plugin}", "one of " + ", ".join(self.known))
        if self.problems:
            raise ValidationError(self.problems)

    def _fail(self, key: str, message: str, expected: str) -> None:
        self.problems.append(Problem(f"{self.where}.{key}", message, expected))
