"""AdmissionReview (admission.k8s.io/v1) in and out: the wire format of a pod admission.

The request body is untrusted: every shape problem becomes a ValidationError naming the
field, which the server turns into HTTP 400 (never 500).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from tfcore.model.body import decode_json
from tfcore.model.errors import Problem, ValidationError

API_VERSION: Final = "admission.k8s.io/v1"
KIND: Final = "AdmissionReview"
OPERATIONS: Final = ("CREATE", "UPDATE", "DELETE", "CONNECT")
# A review larger than this is not a pod the API server would send (etcd caps objects at ~1.5 MiB).
MAX_BODY_BYTES: Final = 3 * 1024 * 1024

_json_decoder: Final = msgspec.json.Decoder()
_json_encoder: Final = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class PodReview:
    """The parts of an AdmissionRequest for a pod that admission decisions use."""

    uid: str
    operation: str
    namespace: str
    pod: dict[str, Any]
    dry_run: bool = False
    request_name: str = ""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to answer: allow (optionally with a JSON patch) or deny with a message."""

    allowed: bool
    patch: list[dict[str, Any]] | None = None
    message: str = ""
    code: int = 200
    warnings: tuple[str, ...] = field(default=())

    @classmethod
    def allow(cls, patch: list[dict[str, Any]] | None = None, warnings: tuple[str, ...] = ()) -> Verdict:
        return cls(True, patch or None, warnings=warnings)

    @classmethod
    def deny(cls, message: str, code: int = 403, warnings: tuple[str, ...] = ()) -> Verdict:
        return cls(False, None, message=message, code=code, warnings=warnings)


def parse_review(body: bytes) -> PodReview:
    """Decode an AdmissionReview v1 whose request is about a core/v1 Pod."""
    if len(body) > MAX_BODY_BYTES:
        raise ValidationError.single("body", f"{len(body)} bytes is too large", f"at most {MAX_BODY_BYTES} bytes")
    document = decode_json(body, _json_decoder, expected="an AdmissionReview JSON document")
    if not isinstance(document, dict):
        raise ValidationError.single("body", f"must be a JSON object, got {type(document).__name__}", "an object")
    problems: list[Problem] = []
    if document.get("apiVersion") != API_VERSION:
        problems.append(Problem("apiVersion", f"unsupported {document.get('apiVersion')!r}", repr(API_VERSION)))
    if document.get("kind") != KIND:
        problems.append(Problem("kind", f"unsupported {document.get('kind')!r}", repr(KIND)))
    request = document.get("request")
    if not isinstance(request, dict):
        problems.append(Problem("request", "missing or not an object", "an AdmissionRequest object"))
        raise ValidationError(problems)
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        problems.append(Problem("request.uid", "missing or not a string", "the request's UID"))
    operation = request.get("operation")
    if operation not in OPERATIONS:
        problems.append(Problem("request.operation", f"unsupported {operation!r}", "one of " + ", ".join(OPERATIONS)))
    kind = request.get("kind")
    if not isinstance(kind, Mapping) or (kind.get("group"), kind.get("version"), kind.get("kind")) != ("", "v1", "Pod"):
        problems.append(
            Problem("request.kind", f"not a core/v1 Pod: {kind!r}", '{"group":"","version":"v1","kind":"Pod"}')
        )
    namespace = request.get("namespace", "")
    if not isinstance(namespace, str):
        problems.append(Problem("request.namespace", "not a string", "a namespace name"))
    name = request.get("name", "")
    if not isinstance(name, str):
        problems.append(Problem("request.name", "not a string", "the object's name or empty"))
    pod = request.get("object")
    if operation in ("CREATE", "UPDATE") and not isinstance(pod, dict):
        problems.append(Problem("request.object", "missing or not an object", "the Pod being admitted"))
    elif isinstance(pod, dict):
        problems.extend(_pod_shape_problems(pod))
    dry_run = request.get("dryRun", False)
    if not isinstance(dry_run, bool):
        problems.append(Problem("request.dryRun", "not a boolean", "true or false"))
    if problems:
        raise ValidationError(problems)
    return PodReview(
        uid=str(uid),
        operation=str(operation),
        namespace=namespace or _pod_namespace(pod),
        pod=pod if isinstance(pod, dict) else {},
        dry_run=dry_run,
        request_name=name,
    )


def _pod_shape_problems(pod: dict[str, Any]) -> list[Problem]:
    """Only what the mutation walks; the API server has validated the rest."""
    problems = []
    metadata, spec = pod.get("metadata", {}), pod.get("spec", {})
    if not isinstance(metadata, dict):
        problems.append(Problem("request.object.metadata", "not an object", "ObjectMeta"))
    else:
        for key in ("labels", "annotations"):
            value = metadata.get(key)
            if value is not None and not (isinstance(value, dict) and all(isinstance(v, str) for v in value.values())):
                problems.append(Problem(f"request.object.metadata.{key}", "not a map of strings", "a map of strings"))
    if not isinstance(spec, dict):
        problems.append(Problem("request.object.spec", "not an object", "PodSpec"))
        return problems
    for key in ("containers", "initContainers", "volumes"):
        items = spec.get(key)
        if items is None:
            continue
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            problems.append(Problem(f"request.object.spec.{key}", "not a list of objects", f"a list of {key}"))
            continue
        if key == "volumes":
            continue
        for index, container in enumerate(items):
            problems.extend(_container_shape_problems(container, f"request.object.spec.{key}[{index}]"))
    return problems


def _container_shape_problems(container: dict[str, Any], where: str) -> list[Problem]:
    problems = []
    if not isinstance(container.get("name", ""), str):
        problems.append(Problem(f"{where}.name", "not a string", "a container name"))
    for key in ("env", "volumeMounts"):
        value = container.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, dict) for v in value)):
            problems.append(Problem(f"{where}.{key}", "not a list of objects", f"a list of {key} entries"))
    resources = container.get("resources")
    if resources is not None:
        if not isinstance(resources, dict):
            problems.append(Problem(f"{where}.resources", "not an object", "ResourceRequirements"))
        else:
            for key in ("requests", "limits"):
                value = resources.get(key)
                if value is not None and not isinstance(value, dict):
                    problems.append(Problem(f"{where}.resources.{key}", "not an object", "a map of quantities"))
    return problems


def _pod_namespace(pod: object) -> str:
    if isinstance(pod, dict) and isinstance(pod.get("metadata"), dict):
        namespace = pod["metadata"].get("namespace", "")
        return namespace if isinstance(namespace, str) else ""
    return ""


def encode_response(uid: str, verdict: Verdict) -> bytes:
    """The AdmissionReview answer the API server expects, patch base64-encoded."""
    response: dict[str, Any] = {"uid": uid, "allowed": verdict.allowed}
    if verdict.patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(_json_encoder.encode(verdict.patch)).decode("ascii")
    if not verdict.allowed:
        response["status"] = {"code": verdict.code, "message": verdict.message, "reason": _reason(verdict.code)}
    if verdict.warnings:
        response["warnings"] = list(verdict.warnings)
    return _json_encoder.encode({"apiVersion": API_VERSION, "kind": KIND, "response": response})


def _reason(code: int) -> str:
    return {400: "BadRequest", 403: "Forbidden", 422: "Invalid"}.get(code, "InternalError")
