"""Kubernetes resource quantities ("16Gi", "1000m", "100", "12.5", "1e3"), exact.

The value is held as a Fraction, so no float rounding ever changes an allocation, and the
text the user wrote is kept, so a document decodes and encodes back byte for byte.
Equality and ordering compare values: Quantity("1Gi") == Quantity("1073741824").
"""

from __future__ import annotations

import re
from fractions import Fraction
from functools import total_ordering
from typing import Final

from tfcore.model.errors import ValidationError

EXPECTED_FORM: Final = (
    "a Kubernetes quantity: a decimal number with an optional suffix "
    "(Ki Mi Gi Ti Pi Ei, n u m k M G T P E, or e<exponent>), e.g. 16Gi, 1000m, 12.5"
)

_BINARY: Final = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL: Final = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_PATTERN: Final = re.compile(
    r"(?P<sign>[+-]?)(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?P<suffix>[KMGTPE]i|[eE][+-]?[0-9]+|[numkMGTPE])?"
)
# Kubernetes itself caps quantities near 2^63 and at nano precision; we refuse anything far
# outside that range instead of building giant integers from hostile input.
_MAX_DIGITS: Final = 40
_MAX_EXPONENT: Final = 30

# Used in CRD schemas. controller-gen's pattern also admits fractional exponents ("1e1.5"),
# which the API server's parser then refuses; ours admits exactly what we parse.
SCHEMA_PATTERN: Final = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$"


@total_ordering
class Quantity:
    """An exact, immutable Kubernetes quantity that remembers how it was written."""

    __slots__ = ("_is_int", "_text", "_value")

    _text: str
    _value: Fraction
    _is_int: bool

    def __init__(self, text: str | int, *, field: str = "quantity") -> None:
        if isinstance(text, bool) or not isinstance(text, (str, int)):
            raise ValidationError.single(field, f"not a quantity: {text!r}", EXPECTED_FORM)
        source = str(text)
        self._value = _parse(source, field)
        self._text = source
        self._is_int = isinstance(text, int)

    @classmethod
    def from_value(cls, value: Fraction | int, *, binary: bool = False) -> Quantity:
        """A quantity for an exact value, written in Kubernetes' canonical form."""
        return cls(_canonical(Fraction(value), binary))

    @property
    def value(self) -> Fraction:
        return self._value

    @property
    def text(self) -> str:
        return self._text

    @property
    def raw(self) -> str | int:
        """As it was given: an integer stays an integer (int-or-string), text stays text."""
        return int(self._text) if self._is_int else self._text

    def canonical(self) -> str:
        """The form the API server would write: '1000m' -> '1', '2048Mi' -> '2Gi'."""
        binary = self._text.endswith("i")
        return _canonical(self._value, binary)

    def to_int(self) -> int:
        """The value rounded up to a whole unit, as Kubernetes does for byte counts."""
        return -((-self._value.numerator) // self._value.denominator)

    def __float__(self) -> float:
        return float(self._value)

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"Quantity({self._text!r})"

    def __hash__(self) -> int:
        return hash(self._value)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Quantity):
            return self._value == other._value
        return NotImplemented

    def __lt__(self, other: Quantity) -> bool:
        if isinstance(other, Quantity):
            return self._value < other._value
        return NotImplemented

    def __add__(self, other: Quantity) -> Quantity:
        return Quantity.from_value(self._value + other._value, binary=self._text.endswith("i"))

    def __sub__(self, other: Quantity) -> Quantity:
        return Quantity.from_value(self._value - other._value, binary=self._text.endswith("i"))


def parse_quantity(text: object, *, field: str = "quantity") -> Quantity:
    """Parse `text` (str or int) or raise ValidationError naming `field`."""
    if isinstance(text, Quantity):
        return text
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise ValidationError.single(field, f"not a quantity: {text!r}", EXPECTED_FORM)
    return Quantity(text, field=field)


def _parse(text: str, field: str) -> Fraction:
    match = _PATTERN.fullmatch(text)
    if match is None:
        raise ValidationError.single(field, f"invalid quantity {text!r}", EXPECTED_FORM)
    number = match["number"]
    if len(number) > _MAX_DIGITS:
        raise ValidationError.single(field, f"quantity {text!r} has too many digits", f"at most {_MAX_DIGITS}")
    value = Fraction(number)
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        value *= 1024 ** _BINARY[suffix]
    elif suffix in _DECIMAL:
        value *= Fraction(10) ** _DECIMAL[suffix]
    else:
        exponent = int(suffix[1:])
        if abs(exponent) > _MAX_EXPONENT:
            raise ValidationError.single(
                field, f"quantity {text!r} is out of range", f"an exponent within +-{_MAX_EXPONENT}"
            )
        value *= Fraction(10) ** exponent
    return -value if match["sign"] == "-" else value


def _canonical(value: Fraction, binary: bool) -> str:
    sign = "-" if value < 0 else ""
    magnitude = abs(value)
    if magnitude == 0:
        return "0"
    if binary and magnitude.denominator == 1 and magnitude >= 1024:
        whole = magnitude.numerator
        for suffix, power in sorted(_BINARY.items(), key=lambda item: -item[1]):
            unit = 1024**power
            if whole % unit == 0:
                return f"{sign}{whole // unit}{suffix}"
    # Decimal SI: the largest multiple-of-3 exponent that leaves an integer mantissa.
    for suffix, exponent in sorted(_DECIMAL.items(), key=lambda item: -item[1]):
        mantissa = magnitude / Fraction(10) ** exponent
        if mantissa.denominator == 1:
            return f"{sign}{mantissa.numerator}{suffix}"
    # Finer than a nano: no SI suffix fits, fall back to an exact decimal exponent.
    exponent = 0
    while magnitude.denominator != 1:
        magnitude *= 10
        exponent -= 1
        if exponent < -_MAX_EXPONENT:
            raise ValueError(f"{value} has no finite decimal form")
    return f"{sign}{magnitude.numerator}e{exponent}"
