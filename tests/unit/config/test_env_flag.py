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


KNOWN = {"true", "1", "yes", "on", "t", "false", "0", "no", "off", "f", ""}


@given(st.text(max_size=12).filter(lambda v: v.strip().lower() not in KNOWN))
def test_anything_else_is_refused_naming_the_variable(value: str) -> None:
    with pytest.raises(ValidationError) as info:
        env_flag({"X": value}, "X")
    assert info.value.problems[0].field == "X"
    assert "true" in (info.value.problems[0].expected or "")


@given(st.sampled_from(sorted(KNOWN)), st.sampled_from(["", " ", "\t"]), st.booleans())
def test_known_words_in_any_case_and_padding(word: str, pad: str, upper: bool) -> None:
    value = pad + (word.upper() if upper else word) + pad
    assert env_flag({"X": value}, "X") is (word in {"true", "1", "yes", "on", "t"})
