"""What the API server checks and defaults per kind before storing an object (pure functions)."""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tests.kubeapi import errors
from tests.kubeapi.resources import ResourceType
from tests.kubeapi.schema import OBJECT_META_FIELDS, name_problem
from tests.kubeapi.selectors import check_label

Json = dict[str, Any]
# Pod spec fields an update may change (the rest is immutable once created).
_POD_MUTABLE = ("activeDeadlineSeconds", "terminationGracePeriodSeconds", "tolerations", "schedulingGates")
_POD_UPDATE_FORBIDDEN = (
    "Forbidden: pod updates may not change fields other than `spec.containers[*].image`, "
    "`spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing "
    "tolerations), `spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def clone(obj: Json) -> Json:
    result: Json = copy.deepcopy(obj)
    return result


def envelope(rtype: ResourceType, body: Any) -> Json:
    if not isinstance(body, dict):
        raise errors.bad_request(f"the body of the request must be a {rtype.kind} object")
    obj = clone(body)
    versions = [rtype.api_version(v) for v in rtype.versions]
    if obj.get("apiVersion") not in (None, *versions):
        raise errors.bad_request(
            f"the API version in the data ({obj['apiVersion']}) does not match the expected API version ({versions[0]})"
        )
    if obj.get("kind") not in (None, rtype.kind):
        raise errors.bad_request(
            f"the kind in the data ({obj['kind']}) does not match the expected kind ({rtype.kind})"
        )
    obj["apiVersion"], obj["kind"] = versions[0], rtype.kind
    if not isinstance(obj.setdefault("metadata", {}), dict):
        raise errors.bad_request("metadata must be an object")
    obj["metadata"] = {k: v for k, v in obj["metadata"].items() if k in OBJECT_META_FIELDS and v is not None}
    return obj


def check_name(rtype: ResourceType, name: str) -> None:
    problem = name_problem(name, label=rtype.key in {("", "namespaces"), ("", "services")})
    if problem:
        raise errors.invalid(
            rtype, name, [errors.cause("metadata.name", "FieldValueInvalid", f'Invalid value: "{name}": {problem}')]
        )


def admit(rtype: ResourceType, obj: Json, old: Json | None, allocate_ip: Callable[[], str]) -> Json:
    """Kind-specific defaulting and validation on create (old None) and update."""
    name = obj["metadata"]["name"]
    if causes := metadata_problems(obj["metadata"]):
        raise errors.invalid(rtype, name, causes)
    if rtype.admit is not None:
        return rtype.admit(rtype, obj)
    if rtype.key == ("", "pods"):
        spec = obj.get("spec")
        if not isinstance(spec, dict) or not spec.get("containers"):
            raise errors.invalid(rtype, name, [errors.cause("spec.containers", "FieldValueRequired", "Required value")])
        if old is not None and (problem := pod_spec_problem(old.get("spec") or {}, spec)):
            raise errors.invalid(rtype, name, [errors.cause("spec", "FieldValueForbidden", problem)])
    elif rtype.key == ("", "secrets"):
        string_data = obj.pop("stringData", None) or {}
        encoded = {k: base64.b64encode(str(v).encode()).decode() for k, v in string_data.items()}
        obj["data"] = {**(obj.get("data") or {}), **encoded}
        obj.setdefault("type", "Opaque")
    elif rtype.key == ("", "services"):
        spec = obj.setdefault("spec", {})
        previous = (old or {}).get("spec") or {}
        if not spec.get("clusterIP"):
            spec["clusterIP"] = previous.get("clusterIP") or allocate_ip()
        spec["clusterIPs"] = [spec["clusterIP"]]
        spec.setdefault("type", "ClusterIP")
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
    elif rtype.key == ("", "namespaces"):
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
    elif rtype.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
        causes = check_crd(obj)
        if causes:
            raise errors.invalid(rtype, name, causes)
    return obj


def metadata_problems(meta: Json) -> list[Json]:
    causes = []
    for n, ref in enumerate(meta.get("ownerReferences") or []):
        for required in ("apiVersion", "kind", "name", "uid"):
            if not isinstance(ref, dict) or not ref.get(required):
                causes.append(
                    errors.cause(f"metadata.ownerReferences[{n}].{required}", "FieldValueRequired", "Required value")
                )
    for key, value in (meta.get("labels") or {}).items():
        try:
            check_label(key, value)
        except ValueError as problem:
            causes.append(errors.cause("metadata.labels", "FieldValueInvalid", f"Invalid value: {value!r}: {problem}"))
    for field_name in ("labels", "annotations"):
        if any(not isinstance(v, str) for v in (meta.get(field_name) or {}).values()):
            causes.append(errors.cause(f"metadata.{field_name}", "FieldValueTypeInvalid", "values must be strings"))
    return causes


def crd_status(crd: Json) -> Json:
    stamp = now()
    conditions = [
        {"type": t, "status": "True", "reason": r, "message": m, "lastTransitionTime": stamp}
        for t, r, m in (
            ("NamesAccepted", "NoConflicts", "no conflicts found"),
            ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        )
    ]
    versions = [v["name"] for v in crd["spec"]["versions"] if v.get("storage")]
    return {"acceptedNames": crd["spec"]["names"], "conditions": conditions, "storedVersions": versions}


def check_crd(crd: Json) -> list[Json]:
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    causes = []
    for path in ("group", "scope", "versions"):
        if not spec.get(path):
            causes.append(errors.cause(f"spec.{path}", "FieldValueRequired", "Required value"))
    for path in ("plural", "kind"):
        if not names.get(path):
            causes.append(errors.cause(f"spec.names.{path}", "FieldValueRequired", "Required value"))
    if spec.get("scope") not in (None, "Namespaced", "Cluster"):
        causes.append(errors.cause("spec.scope", "FieldValueNotSupported", 'supported values: "Cluster", "Namespaced"'))
    expected = f"{names.get('plural')}.{spec.get('group')}"
    if not causes and crd["metadata"]["name"] != expected:
        causes.append(
            errors.cause(
                "metadata.name", "FieldValueInvalid", f'must be spec.names.plural+"."+spec.group: "{expected}"'
            )
        )
    return causes


def pod_spec_problem(old: Json, new: Json) -> str | None:
    def frozen(spec: Json) -> Json:
        spec = {k: v for k, v in spec.items() if k not in _POD_MUTABLE}
        for field_name in ("containers", "initContainers"):
            spec[field_name] = [{k: v for k, v in c.items() if k != "image"} for c in spec.get(field_name) or []]
        return spec

    if frozen(old) != frozen(new):
        return _POD_UPDATE_FORBIDDEN
    old_tolerations = old.get("tolerations") or []
    if any(t not in (new.get("tolerations") or []) for t in old_tolerations):
        return "Forbidden: existing toleration can not be modified except its tolerationSeconds"
    gates = new.get("schedulingGates") or []
    if any(g not in (old.get("schedulingGates") or []) for g in gates):
        return "Forbidden: only deletion is allowed, but found new scheduling gate"
    return None
