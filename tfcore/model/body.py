"""The one decoder for HTTP request bodies (JSON or YAML), bounded in depth and in size.

Every daemon's routes and the webhook decode through here, so a hostile body is a 400 that
names the problem, never a RecursionError (a 500) in the decoder or in the code that walks
the result later: Kubernetes objects nest about 15 levels, so 64 is generous. YAML aliases
can make a small document expand into a huge one; the walk that checks the depth also
counts values and stops early.
"""

from __future__ import annotations

from typing import Any, Final, TypeVar

import msgspec
import yaml

from tfcore.model.errors import ValidationError

MAX_DEPTH: Final = 64
T = TypeVar("T")
_yaml_loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
ANY_JSON: Final[msgspec.json.Decoder[Any]] = msgspec.json.Decoder()


def decode_json(
    raw: bytes,
    decoder: msgspec.json.Decoder[T],
    *,
    where: str = "body",
    expected: str = "a JSON document",
    max_depth: int = MAX_DEPTH,
) -> T:
    """`raw` decoded by `decoder` (ANY_JSON for plain data), or ValidationError naming the problem."""
    try:
        value = decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise ValidationError.single(where, str(exc), expected) from None
    except msgspec.DecodeError as exc:
        raise ValidationError.single(where, f"not valid JSON: {exc}", expected) from None
    except RecursionError:
        raise _too_deep(where, max_depth, expected) from None
    check_shape(value, where=where, max_depth=max_depth, max_values=len(raw) + 16, expected=expected)
    return value


def decode_yaml(
    raw: bytes, *, where: str = "body", expected: str = "a YAML document", max_depth: int = MAX_DEPTH
) -> Any:
    """One YAML document (safe types only), bounded like decode_json."""
    try:
        value = yaml.load(raw, Loader=_yaml_loader)  # a safe loader
    except yaml.YAMLError as exc:
        raise ValidationError.single(where, f"not valid YAML: {_one_line(exc)}", expected) from None
    except RecursionError:
        raise _too_deep(where, max_depth, expected) from None
    check_shape(value, where=where, max_depth=max_depth, max_values=len(raw) + 16, expected=expected)
    return value


def decode_document(raw: bytes, yaml_body: bool, *, expected: str, max_depth: int = MAX_DEPTH) -> Any:
    """A JSON or YAML body as plain data (a top-level function: it runs in worker processes)."""
    if yaml_body:
        return decode_yaml(raw, expected=expected, max_depth=max_depth)
    return decode_json(raw, ANY_JSON, expected=expected, max_depth=max_depth)


def check_shape(value: Any, *, where: str, max_depth: int, max_values: int, expected: str = "a document") -> None:
    """ValidationError when `value` nests deeper than max_depth or holds more than max_values
    values (aliases re-used over and over). Iterative: a deep value cannot overflow the stack."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    seen = 0
    while stack:
        current, depth = stack.pop()
        seen += 1
        if seen > max_values:
            raise ValidationError.single(where, f"expands to more than {max_values} values", expected)
        if isinstance(current, msgspec.Struct):
            current = [getattr(current, name) for name in current.__struct_fields__]
        if isinstance(current, dict):
            children: Any = [*current.keys(), *current.values()]
        elif isinstance(current, list | tuple):
            children = current
        else:
            continue
        if depth > max_depth:
            raise _too_deep(where, max_depth, expected)
        stack.extend((child, depth + 1) for child in children)


def _too_deep(where: str, max_depth: int, expected: str) -> ValidationError:
    return ValidationError.single(where, f"nested more than {max_depth} levels deep", expected)


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())
