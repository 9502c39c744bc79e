"""The TF_* registry: docs generated from it, one boolean grammar, names in every error."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tfcore.config.env import GREPTIME_PORT, STATE_DIR, VARIABLES, markdown_table, parse_bool
from tfcore.model.errors import ValidationError

DOC = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"


def test_the_docs_table_is_the_registry() -> None:
    text = DOC.read_text(encoding="utf-8")
    generated = text.split("<!-- generated: begin -->\n", 1)[1].split("<!-- generated: end -->", 1)[0]
    assert generated == markdown_table(), "regenerate docs/configuration.md from tfcore.config.env.markdown_table()"


def test_names_are_unique_and_prefixed() -> None:
    names = [v.name for v in VARIABLES]
    assert len(set(names)) == len(names)
    assert all(n.startswith("TF_") for n in names)


def test_unset_and_blank_read_as_the_default() -> None:
    assert STATE_DIR.read({}) == ""
    assert GREPTIME_PORT.read({"TF_GREPTIME_PORT": "  "}) == 4000
    assert GREPTIME_PORT.read({"TF_GREPTIME_PORT": "4001"}) == 4001
    with pytest.raises(ValidationError, match="TF_GREPTIME_PORT"):
        GREPTIME_PORT.read({"TF_GREPTIME_PORT": "70000"})


@given(st.text(max_size=10))
def test_every_parser_accepts_or_names_its_variable(text: str) -> None:
    fields = []
    for var in VARIABLES:
        try:
            var.read({var.name: text})
        except ValidationError as exc:
            fields.append((exc.problems[0].field, var.name))
    assert all(field == name for field, name in fields)


@given(st.text(max_size=8))
def test_parse_bool_is_total_on_its_grammar(text: str) -> None:
    word = text.strip().lower()
    if word in {"true", "1", "yes", "on", "t"}:
        assert parse_bool("X", text) is True
    elif word in {"false", "0", "no", "off", "f", ""}:
        assert parse_bool("X", text) is False
    else:
        with pytest.raises(ValidationError, match="X"):
            parse_bool("X", text)
