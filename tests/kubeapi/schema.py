"""Custom-resource admission as the API server does it with a structural schema.

Order as in apiextensions-apiserver: prune fields the schema does not declare (unless
`x-kubernetes-preserve-unknown-fields`), apply `default`s, then validate with the
openAPIV3Schema; failures become a 422 with one cause per field. `metadata` is the server's
own: only ObjectMeta fields survive, and names are checked as DNS subdomains.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import jsonschema  # type: ignore[import-untyped]

from tests.kubeapi import errors
from tests.kubeapi.resources import ResourceType

Json = dict[str, Any]

OBJECT_META_FIELDS = frozenset(
    {
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    }
)
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

_LABEL_RULE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)
_SUBDOMAIN_RULE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character"
)
_REASONS = {
    "type": "FieldValueTypeInvalid",
    "required": "FieldValueRequired",
    "enum": "FieldValueNotSupported",
    "maxLength": "FieldValueTooLong",
    "maxItems": "FieldValueTooMany",
}


def name_problem(name: str, label: bool = False) -> str | None:
    if label:
        if len(name) > 63 or not _DNS_LABEL.match(name):
            return _LABEL_RULE
    elif len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        return _SUBDOMAIN_RULE
    return None


def prune(value: Any, schema: Json) -> Any:
    """Drop what the schema does not declare, the way the server silently does."""
    if schema.get("x-kubernetes-preserve-unknown-fields") and "properties" not in schema:
        return value
    if isinstance(value, dict):
        properties = schema.get("properties")
        additional = schema.get("additionalProperties")
        if properties is not None:
            keep_unknown = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
            return {
                k: prune(v, properties[k]) if k in properties else v
                for k, v in value.items()
                if k in properties or keep_unknown
            }
        if isinstance(additional, dict):
            return {k: prune(v, additional) for k, v in value.items()}
        if schema.get("type") == "object" and not additional:
            return {}
        return value
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [prune(v, schema["items"]) for v in value]
    return value


def apply_defaults(value: Any, schema: Json) -> Any:
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = apply_defaults(value[key], sub)
        additional = schema.get("additionalProperties")
        if isinstance(additional, dict):
            for key in value:
                value[key] = apply_defaults(value[key], additional)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(v, schema["items"]) for v in value]
    return value


def _field(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else "null"


def _causes(validator: jsonschema.protocols.Validator, obj: Json) -> list[Json]:
    causes = []
    for error in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
        leaf = error
        if error.validator == "anyOf" and error.context:  # report the branch that got furthest
            leaf = max(error.context, key=lambda e: len(e.absolute_path))
        path = list(error.absolute_path) + list(leaf.relative_path if leaf is not error else [])
        if error.validator == "required":
            missing = re.match(r"'([^']+)'", error.message)
            path.append(missing.group(1) if missing else "?")
            message = "Required value"
        elif leaf.validator == "type":
            got = _json_type(leaf.instance)
            message = f'Invalid value: "{got}": {_field(path)} in body must be of type {leaf.validator_value}: "{got}"'
        else:
            message = f"Invalid value: {json.dumps(leaf.instance)}: {_field(path)} in body {leaf.message}"
        causes.append(errors.cause(_field(path), _REASONS.get(str(leaf.validator), "FieldValueInvalid"), message))
    return causes


def make_admitter(schema: Json) -> Callable[[ResourceType, Json], Json]:
    """Prune, default and validate objects of one custom resource version."""
    return _admitter(json.dumps(schema, sort_keys=True))


@lru_cache(maxsize=256)
def _admitter(schema_text: str) -> Callable[[ResourceType, Json], Json]:
    # Cached by schema text: every emulator in a test run installs the same chart CRDs.
    body_schema = json.loads(schema_text)
    props = body_schema.setdefault("properties", {})
    props.pop("metadata", None)
    validator_cls = jsonschema.validators.validator_for({"$schema": "http://json-schema.org/draft-04/schema#"})
    validator = validator_cls(body_schema)

    def admit(rtype: ResourceType, obj: Json) -> Json:
        metadata = {k: v for k, v in (obj.get("metadata") or {}).items() if k in OBJECT_META_FIELDS}
        body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
        body = apply_defaults(prune(body, {**body_schema, "properties": props}), body_schema)
        causes = _causes(validator, body)
        if causes:
            raise errors.invalid(rtype, metadata.get("name", ""), causes)
        return {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "metadata": metadata, **body}

    return admit
