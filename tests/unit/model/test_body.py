"""The bounded body decoder: any bytes give a value or a ValidationError naming the body."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tfcore.model.body import ANY_JSON, MAX_DEPTH, check_shape, decode_json, decode_yaml
from tfcore.model.errors import ValidationError


@given(st.binary(max_size=300))
@settings(max_examples=200, deadline=None)
def test_any_bytes_decode_or_name_the_body(raw: bytes) -> None:
    decoders: tuple[Callable[[], object], ...] = (lambda: decode_json(raw, ANY_JSON), lambda: decode_yaml(raw))
    for decode in decoders:
        fields = []
        try:
            decode()
        except ValidationError as exc:
            fields = [p.field for p in exc.problems]
        assert fields in ([], ["body"])


@pytest.mark.parametrize("depth", [MAX_DEPTH, MAX_DEPTH + 1, 5000])
def test_depth_is_bounded_in_json_and_yaml(depth: int) -> None:
    raw = b"[" * depth + b"]" * depth
    decoders: tuple[Callable[[], object], ...] = (lambda: decode_json(raw, ANY_JSON), lambda: decode_yaml(raw))
    for decode in decoders:
        if depth <= MAX_DEPTH:
            decode()
        else:
            with pytest.raises(ValidationError, match="nest"):
                decode()


def test_yaml_aliases_cannot_expand_without_bound() -> None:
    lines = ["a0: &a0 [1, 2, 3, 4, 5, 6, 7, 8]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 8) + "]" for i in range(1, 9)]
    with pytest.raises(ValidationError, match="expands to more than"):
        decode_yaml("\n".join(lines).encode())


def test_the_shape_check_names_where() -> None:
    with pytest.raises(ValidationError, match=r"body\.Pod: nested more than 2 levels"):
        check_shape([[[1]]], where="body.Pod", max_depth=2, max_values=100)
