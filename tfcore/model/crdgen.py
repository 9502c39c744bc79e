"""CustomResourceDefinitions generated from the models: the chart's crds/ are this output.

msgspec's JSON schema is turned into a Kubernetes *structural* schema: $refs inlined,
Optional[X] -> X, every node typed, enums typed, quantities in the one int-or-string form the
API server accepts (`anyOf: [{type: integer}, {type: string}]` with the pattern beside it),
free-form maps kept with x-kubernetes-preserve-unknown-fields. Anything else that is not
structural (a real union, a bare untyped value) is a bug in the models and raises here.
Pure: no file I/O; the CLI writes `render_crds()` to disk.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any, Final

import msgspec
import yaml

from tfcore.model import codec
from tfcore.model.kinds import KINDS, KindInfo, kind_info
from tfcore.model.meta import API_GROUP, API_VERSION

CATEGORY: Final = "tensor-fusion"
HEADER: Final = "# Generated from tfcore.model by tfcore.model.crdgen. Do not edit: run `make crds`.\n"
INT_OR_STRING: Final = "x-kubernetes-int-or-string"
PRESERVE: Final = "x-kubernetes-preserve-unknown-fields"

# Keywords a structural schema node may carry after conversion; anything else means the
# converter met a form it does not understand, and it refuses rather than guess.
_ALLOWED: Final = frozenset(
    {
        "type",
        "description",
        "properties",
        "required",
        "items",
        "additionalProperties",
        "enum",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "pattern",
        "default",
        "anyOf",
        INT_OR_STRING,
        PRESERVE,
    }
)
_NULL: Final = {"type": "null"}


def crd_file_name(info: KindInfo) -> str:
    return f"{API_GROUP}_{info.plural}.yaml"


def render_crds() -> dict[str, str]:
    """File name -> YAML text of the CRD, for every kind; byte-for-byte deterministic."""
    return {crd_file_name(info): render_crd(info) for info in sorted(KINDS, key=lambda i: i.plural)}


def render_crd(info: KindInfo) -> str:
    text = yaml.safe_dump(crd_document(info), sort_keys=True, default_flow_style=False, allow_unicode=True, width=100)
    return HEADER + text


def crd_document(info: KindInfo) -> dict[str, Any]:
    """The apiextensions.k8s.io/v1 CustomResourceDefinition of one kind, as plain data."""
    names: dict[str, Any] = {
        "kind": info.kind,
        "listKind": info.list_kind,
        "plural": info.plural,
        "singular": info.singular,
        "categories": [CATEGORY],
    }
    if info.short_names:
        names["shortNames"] = list(info.short_names)
    version: dict[str, Any] = {
        "name": API_VERSION,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": openapi_schema(info.kind)},
        "subresources": {"status": {}},
    }
    if info.columns:
        version["additionalPrinterColumns"] = [
            {"name": c.name, "type": c.type, "jsonPath": c.json_path} | ({"priority": c.priority} if c.priority else {})
            for c in info.columns
        ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": info.resource},
        "spec": {"group": API_GROUP, "names": names, "scope": info.scope, "versions": [version]},
    }


def openapi_schema(kind: str) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of `kind` (a fresh copy, safe to modify)."""
    return copy.deepcopy(_schema(kind))


@cache
def _schema(kind: str) -> dict[str, Any]:
    raw = msgspec.json.schema(kind_info(kind).type, schema_hook=codec.schema_hook)
    root = _convert(raw, raw.get("$defs", {}), kind)
    # The API server owns these three: apiVersion/kind are checked against the URL and
    # metadata is validated as ObjectMeta, so the schema may only say they exist.
    root["properties"].update(
        apiVersion={"type": "string", "description": "The API group and version: tensor-fusion.ai/v1."},
        kind={"type": "string", "description": f"Always {kind}."},
        metadata={"type": "object"},
    )
    root.pop("required", None)
    return root


def _convert(node: dict[str, Any], defs: dict[str, Any], path: str) -> dict[str, Any]:
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        return _convert({**target, **{k: v for k, v in node.items() if k != "$ref"}}, defs, path)
    out = {k: v for k, v in node.items() if k not in ("title", "$defs")}
    if "default" in out and out["default"] is None:
        del out["default"]  # msgspec's marker of an optional field, not a real default
    if "anyOf" in out and _NULL in out["anyOf"]:
        branches = [b for b in out.pop("anyOf") if b != _NULL]
        if len(branches) != 1:
            raise ValueError(f"{path}: a union of {len(branches)} types is not a structural schema")
        return _convert({**out, **branches[0]}, defs, path)
    if out.get(INT_OR_STRING):
        return _int_or_string(out, path)
    if "anyOf" in out:
        raise ValueError(f"{path}: anyOf is only allowed for int-or-string values")
    if "enum" in out and "type" not in out:
        out["type"] = _enum_type(out["enum"], path)
    kind = out.get("type")
    if kind == "object":
        _convert_object(out, defs, path)
    elif kind == "array":
        out["items"] = _convert(out["items"], defs, f"{path}[]")
    elif kind is None and not out.get(PRESERVE):
        raise ValueError(f"{path}: schema node has no type: {out}")
    unknown = set(out) - _ALLOWED
    if unknown:
        raise ValueError(f"{path}: keywords {sorted(unknown)} are not supported in a structural schema")
    return out


def _convert_object(out: dict[str, Any], defs: dict[str, Any], path: str) -> None:
    properties = out.get("properties")
    if properties is not None:
        out["properties"] = {name: _convert(sub, defs, f"{path}.{name}") for name, sub in properties.items()}
    if out.get("required"):
        out["required"] = sorted(out["required"])
    else:
        out.pop("required", None)
    extra = out.get("additionalProperties")
    if extra is True or extra == {}:
        del out["additionalProperties"]
        out[PRESERVE] = True
    elif isinstance(extra, dict):
        out["additionalProperties"] = _convert(extra, defs, f"{path}.*")
    if not out.get("properties") and "additionalProperties" not in out and not out.get(PRESERVE):
        # The API server would prune every key of such an object: say what it holds.
        raise ValueError(f"{path}: object with no properties must be free-form or a typed map")


def _int_or_string(out: dict[str, Any], path: str) -> dict[str, Any]:
    patterns = {b["pattern"] for b in out.get("anyOf", ()) if "pattern" in b}
    if "pattern" in out:
        patterns.add(out["pattern"])
    if len(patterns) > 1:
        raise ValueError(f"{path}: int-or-string with several patterns")
    result: dict[str, Any] = {k: v for k, v in out.items() if k in ("description", "default")}
    result["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if patterns:
        result["pattern"] = patterns.pop()
    result[INT_OR_STRING] = True
    return result


def _enum_type(values: list[Any], path: str) -> str:
    kinds = {type(v) for v in values}
    for python_type, name in ((str, "string"), (bool, "boolean"), (int, "integer")):
        if kinds == {python_type}:
            return name
    raise ValueError(f"{path}: enum mixes types {sorted(k.__name__ for k in kinds)}")
