"""Test helpers: fixtures, strict validation against a CRD schema (like `kubectl apply
--validate=strict`), and a checker of the API server's structural-schema rules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import yaml

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
SPEC_FIXTURES = sorted((FIXTURES / "spec").glob("*.yaml"))
OBJECT_FIXTURES = sorted((FIXTURES / "objects").glob("*.yaml"))
ALL_FIXTURES = SPEC_FIXTURES + OBJECT_FIXTURES

INT_OR_STRING = "x-kubernetes-int-or-string"
PRESERVE = "x-kubernetes-preserve-unknown-fields"
INT_OR_STRING_ANY_OF = [{"type": "integer"}, {"type": "string"}]
# Keywords the API server forbids in a structural schema, or that we never emit.
FORBIDDEN = ("$ref", "$defs", "definitions", "oneOf", "allOf", "not", "nullable", "title", "$schema")
TYPES = {"object", "array", "string", "integer", "number", "boolean"}


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema as plain JSON Schema where unknown fields are errors, except where the
    CRD keeps unknown fields. int-or-string needs no translation: its anyOf is plain JSON
    Schema and `pattern` only applies to strings."""
    node = {k: v for k, v in schema.items() if not k.startswith("x-kubernetes-")}
    if schema.get(PRESERVE):
        return node
    if "properties" in node:
        node["properties"] = {name: strict(sub) for name, sub in node["properties"].items()}
        node.setdefault("additionalProperties", False)
    if isinstance(node.get("additionalProperties"), dict):
        node["additionalProperties"] = strict(node["additionalProperties"])
    if "items" in node:
        node["items"] = strict(node["items"])
    return node


def json_path(parts: Any) -> str:
    """A jsonschema error path in the models' style: spec.gpuPools[0].name."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".")


def schema_errors(schema: dict[str, Any], document: Any) -> list[tuple[str, str]]:
    """(path, message) of every violation of `schema` by `document`, strict mode."""
    validator = jsonschema.Draft4Validator(strict(schema))
    errors = validator.iter_errors(document)
    return sorted((json_path(e.absolute_path), e.message) for e in errors)


def structural_problems(schema: dict[str, Any], path: str = "", *, root: bool = True) -> list[str]:
    """Violations of the Kubernetes structural-schema rules (apiextensions v1), as text."""
    problems: list[str] = []
    where = path or "<root>"
    for keyword in FORBIDDEN:
        if keyword in schema:
            problems.append(f"{where}: forbidden keyword {keyword}")
    kind = schema.get("type")
    if "anyOf" in schema and (
        not schema.get(INT_OR_STRING) or schema["anyOf"] != INT_OR_STRING_ANY_OF or kind is not None
    ):
        problems.append(f"{where}: anyOf other than the int-or-string form")
    if kind is None and not (schema.get(INT_OR_STRING) or schema.get(PRESERVE)):
        problems.append(f"{where}: no type")
    if kind is not None and kind not in TYPES:
        problems.append(f"{where}: unknown type {kind!r}")
    if schema.get(INT_OR_STRING) and kind is not None:
        problems.append(f"{where}: int-or-string with a type")
    if "enum" in schema and kind is None:
        problems.append(f"{where}: enum without type")
    if root and "additionalProperties" in schema:
        problems.append(f"{where}: additionalProperties at the root")
    if "properties" in schema and "additionalProperties" in schema:
        problems.append(f"{where}: both properties and additionalProperties")
    if schema.get("additionalProperties") is False:
        problems.append(f"{where}: additionalProperties false is not allowed in a CRD")
    typed = schema.get("properties") or "additionalProperties" in schema or schema.get(PRESERVE)
    if kind == "object" and not typed and not (not root and path == "metadata"):
        problems.append(f"{where}: object that would be pruned empty")
    if kind == "array" and "items" not in schema:
        problems.append(f"{where}: array without items")
    if root:
        metadata = schema.get("properties", {}).get("metadata", {})
        if set(metadata) - {"type"} or metadata.get("type") != "object":
            problems.append("metadata: may only be {type: object} here")
    for name, sub in schema.get("properties", {}).items():
        problems += structural_problems(sub, f"{path}.{name}".lstrip("."), root=False)
    if isinstance(schema.get("additionalProperties"), dict):
        problems += structural_problems(schema["additionalProperties"], f"{path}.*", root=False)
    if isinstance(schema.get("items"), dict):
        problems += structural_problems(schema["items"], f"{path}[]", root=False)
    if "default" in schema:
        default_errors = list(jsonschema.Draft4Validator(strict(schema)).iter_errors(schema["default"]))
        if default_errors:
            problems.append(f"{where}: default {schema['default']!r} is invalid: {default_errors[0].message}")
    return problems


def sub_schema(schema: dict[str, Any], dotted: str) -> dict[str, Any]:
    """The schema of a nested field: 'spec.capacityConfig.oversubscription'."""
    node = schema
    for name in dotted.split("."):
        node = node["properties"][name]
    return node
