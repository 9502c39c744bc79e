"""Kubernetes quantities: grammar, exact values, canonical form, and hostile input."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tfcore.model.errors import ValidationError
from tfcore.model.quantity import Quantity, parse_quantity

GI = 1024**3


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("16Gi", 16 * GI),
        ("3Gi", 3 * GI),
        ("1000m", 1),
        ("100", 100),
        ("12.5", Fraction(25, 2)),
        (".5", Fraction(1, 2)),
        ("5.", 5),
        ("1e3", 1000),
        ("1E3", 1000),
        ("2E", 2 * 10**18),
        ("1.5e-3", Fraction(3, 2000)),
        ("100n", Fraction(1, 10**7)),
        ("250u", Fraction(1, 4000)),
        ("4k", 4000),
        ("2M", 2_000_000),
        ("1Ki", 1024),
        ("1Ei", 1024**6),
        ("-2Ki", -2048),
        ("+7", 7),
        ("0", 0),
    ],
)
def test_parses_exact_value(text: str, value: Fraction | int) -> None:
    quantity = Quantity(text)
    assert quantity.value == value
    assert str(quantity) == text  # the text as written survives


@pytest.mark.parametrize(
    ("text", "canonical"),
    [("1000m", "1"), ("2048Mi", "2Gi"), ("1536Mi", "1536Mi"), ("12.5", "12500m"), ("1e3", "1k"), ("0.5Ki", "512")],
)
def test_canonical_form_matches_the_api_server(text: str, canonical: str) -> None:
    assert Quantity(text).canonical() == canonical


@pytest.mark.parametrize(
    "text",
    ["", " 1", "1 ", "Gi", "1Gb", "1.2.3", "1e", "e3", "0x10", "1_000", "\uff11", "1ki", "--1", "1e99", "9" * 41],
)
def test_rejects_malformed_text_naming_the_field(text: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_quantity(text, field="spec.vram")
    assert caught.value.problems[0].field == "spec.vram"
    assert "Kubernetes quantity" in str(caught.value) or "expected" in str(caught.value)


@pytest.mark.parametrize("value", [1.5, None, True, [1], {"a": 1}])
def test_rejects_non_text(value: object) -> None:
    with pytest.raises(ValidationError):
        parse_quantity(value)


def test_compares_and_hashes_by_value() -> None:
    assert Quantity("1Gi") == Quantity("1073741824")
    assert Quantity("500m") < Quantity("1")
    assert len({Quantity("1k"), Quantity("1000")}) == 1
    assert Quantity("1Gi") + Quantity("1Gi") == Quantity("2Gi")
    assert (Quantity("3Gi") - Quantity("1Gi")).text == "2Gi"
    assert Quantity("1500m").to_int() == 2


_SUFFIXES = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E", "e3", "e-2", "E+4"]


@st.composite
def quantity_texts(draw: st.DrawFn) -> str:
    whole = draw(st.integers(min_value=0, max_value=10**12))
    fraction = draw(st.one_of(st.just(""), st.from_regex(r"\.[0-9]{0,6}", fullmatch=True)))
    sign = draw(st.sampled_from(["", "+", "-"]))
    return f"{sign}{whole}{fraction}{draw(st.sampled_from(_SUFFIXES))}"


@given(quantity_texts())
def test_valid_quantities_round_trip_exactly(text: str) -> None:
    quantity = Quantity(text)
    assert Quantity(quantity.text) == quantity
    assert Quantity(quantity.canonical()).value == quantity.value
    assert Quantity.from_value(quantity.value).value == quantity.value


@given(st.fractions(max_denominator=1).filter(lambda f: abs(f) < 10**20), st.booleans())
def test_from_value_is_exact(value: Fraction, binary: bool) -> None:
    assert Quantity.from_value(value, binary=binary).value == value


@given(st.text(max_size=40))
def test_random_text_parses_or_raises_validation_error(text: str) -> None:
    try:
        quantity = Quantity(text)
    except ValidationError:
        return
    assert Quantity(quantity.canonical()) == quantity
