"""Validate rendered objects: built-in kinds against Kubernetes' own schemas (kubernetes-validate,
strict: unknown fields are errors), our custom resources against our CRDs' OpenAPI schemas."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import yaml

KUBERNETES_VERSION = "1.33.0"
CRDS = Path(__file__).resolve().parents[2] / "charts" / "tensor-fusion" / "crds"
# Kinds of other projects the chart may render (cert-manager when webhook.certManager.enabled);
# their schemas are not ours to carry, so they are checked by the tests that render them.
FOREIGN_GROUPS = ("cert-manager.io/",)


def _strict(schema: Any) -> Any:
    """An OpenAPI v3 structural schema as JSON Schema that rejects unknown fields (the API server
    would prune them silently: for a chart that is a typo nobody sees)."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _strict(value) for key, value in schema.items()}
    if "properties" in out and not schema.get("x-kubernetes-preserve-unknown-fields"):
        out.setdefault("additionalProperties", False)
    if schema.get("nullable"):
        out.pop("nullable")
        if "type" in out:
            out["type"] = [out["type"], "null"]
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    return out


@functools.cache
def crd_schemas() -> dict[tuple[str, str], Any]:
    """(apiVersion, kind) -> strict JSON Schema of the object, from charts/tensor-fusion/crds."""
    schemas: dict[tuple[str, str], Any] = {}
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text(encoding="utf-8"))
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = _strict(version["schema"]["openAPIV3Schema"])
            schema.setdefault("properties", {})["metadata"] = {"type": "object"}
            schemas[(f"{group}/{version['name']}", kind)] = schema
    return schemas


def problems(obj: dict[str, Any]) -> list[str]:
    """Every schema violation of one rendered object, each naming the object."""
    return list(_problems(json.dumps(obj, sort_keys=True)))


@functools.lru_cache(maxsize=1024)
def _problems(text: str) -> tuple[str, ...]:
    # Scenarios share most objects (RBAC, Services): validate each distinct object once.
    return tuple(_validate(json.loads(text)))


def _validate(obj: dict[str, Any]) -> list[str]:
    api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    where = f"{kind}/{obj.get('metadata', {}).get('name')}"
    if api_version.startswith(FOREIGN_GROUPS):
        return []
    if (api_version, kind) in crd_schemas():
        validator = jsonschema.Draft7Validator(crd_schemas()[(api_version, kind)])
        return [f"{where}: {'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{where}: {'.'.join(map(str, exc.path))}: {exc.message}"]
    except kubernetes_validate.utils.SchemaNotFoundError:
        return [f"{where}: no schema for {api_version} {kind} in Kubernetes {KUBERNETES_VERSION} or our CRDs"]
    return []
