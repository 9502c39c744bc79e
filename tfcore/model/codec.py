"""Decoding and encoding of model objects: msgspec with the project's own types and errors.

Every model document (CRDs, configs, HTTP bodies) goes through `decode` so that a bad
document raises ValidationError naming the field path and the expected form.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec
import yaml

from tfcore.model.errors import ValidationError
from tfcore.model.quantity import EXPECTED_FORM, SCHEMA_PATTERN, Quantity

T = TypeVar("T")

_PATH_IN_MESSAGE = re.compile(r" - at `\$(?P<path>[^`]*)`$")


def dec_hook(type_: type, obj: Any) -> Any:
    if type_ is Quantity:
        if isinstance(obj, float):
            raise ValueError(
                f"{obj!r} is a float, write it as a quoted string like '{obj!r}'; expected {EXPECTED_FORM}"
            )
        if isinstance(obj, bool) or not isinstance(obj, (str, int)):
            raise ValueError(f"not a quantity: {obj!r}; expected {EXPECTED_FORM}")
        try:
            return Quantity(obj)
        except ValidationError as exc:
            raise ValueError(f"{exc.problems[0].message}; expected {EXPECTED_FORM}") from None
    raise NotImplementedError(f"no decoder for {type_!r}")


def enc_hook(obj: Any) -> Any:
    if isinstance(obj, Quantity):
        return obj.raw
    raise NotImplementedError(f"cannot encode {type(obj)!r}")


def schema_hook(type_: type) -> dict[str, Any]:
    """JSON schema of the project's custom types (used by the CRD generator)."""
    if type_ is Quantity:
        # The API server accepts anyOf only in exactly this int-or-string form, with the
        # pattern beside it (it applies to the string form), as controller-gen emits it.
        return {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": SCHEMA_PATTERN,
            "x-kubernetes-int-or-string": True,
        }
    raise NotImplementedError(f"no schema for {type_!r}")


def decode(data: Any, type_: type[T], *, where: str = "") -> T:
    """Convert plain data (as from JSON/YAML) into `type_`, or raise ValidationError."""
    try:
        return msgspec.convert(data, type_, dec_hook=dec_hook, strict=True)
    except msgspec.ValidationError as exc:
        raise _translate(exc, where) from None


def decode_json(raw: bytes | str, type_: type[T], *, where: str = "") -> T:
    try:
        data = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise ValidationError.single(where or "document", f"not valid JSON: {exc}", "a JSON document") from None
    return decode(data, type_, where=where)


def load_yaml(raw: bytes | str, *, where: str = "") -> Any:
    """One YAML document as plain data; syntax errors become ValidationError."""
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ValidationError.single(where or "document", f"not valid YAML: {exc}", "a YAML document") from None


def to_builtins(obj: Any) -> Any:
    """Plain dicts/lists/strings, omitting unset optional fields; quantities as written."""
    return msgspec.to_builtins(obj, enc_hook=enc_hook)


def encode_json(obj: Any) -> bytes:
    return msgspec.json.encode(obj, enc_hook=enc_hook)


def _translate(exc: msgspec.ValidationError, where: str) -> ValidationError:
    message = str(exc)
    path = ""
    match = _PATH_IN_MESSAGE.search(message)
    if match:
        path = match["path"].lstrip(".")
        message = message[: match.start()]
    field = ".".join(part for part in (where, path) if part) or "document"
    expected: str | None = None
    if "; expected " in message:
        message, expected = message.split("; expected ", 1)
    elif message.startswith("Expected ") and ", got " in message:
        wanted, got = message[len("Expected ") :].split(", got ", 1)
        message, expected = f"got {got}", wanted.replace("`", "")
    return ValidationError.single(field, message, expected)
