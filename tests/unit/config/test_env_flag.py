"""Boolean switches from the environment (the chart renders them quoted)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tfcore.config.env import PROGRESSIVE_MIGRATION_ENV, env_flag
from tfcore.model.errors import ValidationError


@pytest.mark.parametrize(
    ("value", "expected"), [("true", True), ("True", True), (" 1 ", True), ("false", False), ("", False), ("0", False)]
)
def test_switch_values(value: str, expected: bool) -> None:
    assert env_flag({PROGRESSIVE_MIGRATION_ENV: value}, PROGRESSIVE_MIGRATION_ENV) is expected


def test_unset_is_the_default() -> None:
    assert env_flag({}, PROGRESSIVE_MIGRATION_ENV) is False
    assert env_flag({}, PROGRESSIVE_MIGRATION_ENV, default=True) is True


@given(st.text(max_size=12))
def test_anything_else_is_refused_naming_the_variable(value: str) -> None:
    known = {"true", "1", "yes", "on", "false", "0", "no", "off", ""}
    try:
        result = env_flag({"X": value}, "X")
    except ValidationError as exc:
        assert value.strip().lower() not in known
        assert exc.problems[0].field == "X"
        assert "true" in exc.problems[0].expected
    else:
        assert value.strip().lower() in known
        assert result is (value.strip().lower() in {"true", "1", "yes", "on"})
