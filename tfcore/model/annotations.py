"""The tensor-fusion.ai/* labels and annotations of a pod, parsed into one typed request.

Every problem is collected and reported together, each naming the annotation and the
expected form, so a user fixes a manifest in one round instead of one error at a time.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Literal, TypeVar, cast, get_args

import msgspec

from tfcore.model.errors import Problem, ValidationError
from tfcore.model.quantity import EXPECTED_FORM, Quantity

PREFIX: Final = "tensor-fusion.ai/"

# Labels.
LABEL_ENABLED: Final = PREFIX + "enabled"
LABEL_WORKLOAD: Final = PREFIX + "workload"  # written by the system

# Annotations a user writes.
TFLOPS_REQUEST: Final = PREFIX + "tflops-request"
TFLOPS_LIMIT: Final = PREFIX + "tflops-limit"
VRAM_REQUEST: Final = PREFIX + "vram-request"
VRAM_LIMIT: Final = PREFIX + "vram-limit"
COMPUTE_PERCENT_REQUEST: Final = PREFIX + "compute-percent-request"
COMPUTE_PERCENT_LIMIT: Final = PREFIX + "compute-percent-limit"
GPU_COUNT: Final = PREFIX + "gpu-count"
GPU_MODEL: Final = PREFIX + "gpu-model"
VENDOR: Final = PREFIX + "vendor"
GPU_POOL: Final = PREFIX + "gpupool"
QOS: Final = PREFIX + "qos"
# "false": the workload's memory never moves off the GPU (VRAM tiering off), read by the node.
VRAM_TIERING: Final = PREFIX + "vram-tiering"
IS_LOCAL_GPU: Final = PREFIX + "is-local-gpu"
WORKLOAD_PROFILE: Final = PREFIX + "workload-profile"
INJECT_CONTAINER: Final = PREFIX + "inject-container"
DEDICATED_GPU: Final = PREFIX + "dedicated-gpu"
ENABLED_REPLICAS: Final = PREFIX + "enabled-replicas"
# Vertical autoscaling of the pod's workload (read by the controller's autoscaler).
AUTOSCALE: Final = PREFIX + "autoscale"
AUTOSCALE_TARGET: Final = PREFIX + "autoscale-target"
# Annotations the system writes when it places a pod.
GPU_IDS: Final = PREFIX + "gpu-ids"
INDEX: Final = PREFIX + "index"
# Bookkeeping of the admission webhook (canary tickets), removed from pods at creation.
ADMISSION: Final = PREFIX + "admission"
CANARY_TICKET: Final = PREFIX + "canary-ticket"

USER_ANNOTATIONS: Final = (
    TFLOPS_REQUEST, TFLOPS_LIMIT, VRAM_REQUEST, VRAM_LIMIT, COMPUTE_PERCENT_REQUEST,
    COMPUTE_PERCENT_LIMIT, GPU_COUNT, GPU_MODEL, VENDOR, GPU_POOL, QOS, IS_LOCAL_GPU,
    WORKLOAD_PROFILE, INJECT_CONTAINER, DEDICATED_GPU, ENABLED_REPLICAS,
)  # fmt: skip
SYSTEM_ANNOTATIONS: Final = (GPU_IDS, INDEX)
KNOWN_ANNOTATIONS: Final = frozenset(
    (*USER_ANNOTATIONS, *SYSTEM_ANNOTATIONS, ADMISSION, CANARY_TICKET, AUTOSCALE, AUTOSCALE_TARGET)
)
KNOWN_LABELS: Final = frozenset((LABEL_ENABLED, LABEL_WORKLOAD))

QoS = Literal["low", "medium", "high", "critical"]
QOS_LEVELS: Final[tuple[str, ...]] = get_args(QoS)
MAX_GPU_COUNT: Final = 128

_BOOL_FORM: Final = 'the string "true" or "false"'
_NAME_FORM: Final = "a lowercase RFC 1123 name: a-z, 0-9 and '-', starting and ending alphanumeric, at most 253"
_NAME: Final = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
_CONTAINER_NAME: Final = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_FREE_TEXT: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._\-/]{0,127}")
_INTEGER: Final = re.compile(r"[0-9]{1,9}")


class WorkloadRequest(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What a pod asks of tensor-fusion, resolved: a missing request equals its limit.

    Compute is either TFLOPS or a percentage of each GPU, never both. Amounts left unset
    (None) are resolved later from the workload profile or the pool's defaults.
    """

    enabled: bool = False
    tflops_request: Quantity | None = None
    tflops_limit: Quantity | None = None
    compute_percent_request: Quantity | None = None
    compute_percent_limit: Quantity | None = None
    vram_request: Quantity | None = None
    vram_limit: Quantity | None = None
    gpu_count: int = 1
    gpu_model: str | None = None
    vendor: str | None = None
    pool: str | None = None
    qos: QoS | None = None
    is_local_gpu: bool | None = None
    workload_profile: str | None = None
    inject_container: str | None = None
    dedicated_gpu: bool = False
    enabled_replicas: int | None = None
    workload: str | None = None
    gpu_ids: tuple[str, ...] = ()
    gpu_indices: tuple[int, ...] = ()
    warnings: tuple[str, ...] = ()

    def to_annotations(self) -> dict[str, str]:
        """The annotations that express this request; parsing them gives it back."""
        values: dict[str, object] = {
            TFLOPS_REQUEST: self.tflops_request,
            TFLOPS_LIMIT: self.tflops_limit,
            VRAM_REQUEST: self.vram_request,
            VRAM_LIMIT: self.vram_limit,
            COMPUTE_PERCENT_REQUEST: self.compute_percent_request,
            COMPUTE_PERCENT_LIMIT: self.compute_percent_limit,
            GPU_COUNT: self.gpu_count if self.gpu_count != 1 else None,
            GPU_MODEL: self.gpu_model,
            VENDOR: self.vendor,
            GPU_POOL: self.pool,
            QOS: self.qos,
            IS_LOCAL_GPU: self.is_local_gpu,
            WORKLOAD_PROFILE: self.workload_profile,
            INJECT_CONTAINER: self.inject_container,
            DEDICATED_GPU: self.dedicated_gpu or None,
            ENABLED_REPLICAS: self.enabled_replicas,
            GPU_IDS: ",".join(self.gpu_ids) or None,
            INDEX: ",".join(str(i) for i in self.gpu_indices) or None,
        }
        return {key: _format(value) for key, value in values.items() if value is not None}

    def to_labels(self) -> dict[str, str]:
        labels = {LABEL_ENABLED: "true" if self.enabled else "false"}
        if self.workload is not None:
            labels[LABEL_WORKLOAD] = self.workload
        return labels


def parse_pod(pod: Mapping[str, Any]) -> WorkloadRequest:
    """Parse a Pod (as plain data, e.g. from an AdmissionReview) into a WorkloadRequest."""
    metadata = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    if not isinstance(metadata, Mapping) or not isinstance(spec, Mapping):
        raise ValidationError.single("pod", "metadata and spec must be objects", "a Pod object")
    containers = spec.get("containers") or []
    if not isinstance(containers, list):
        raise ValidationError.single("spec.containers", "must be a list", "a list of containers")
    names = [c.get("name", "") for c in containers if isinstance(c, Mapping)]
    return parse_request(
        labels=_string_map(metadata.get("labels"), "metadata.labels"),
        annotations=_string_map(metadata.get("annotations"), "metadata.annotations"),
        container_names=names,
    )


def parse_request(
    *,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    container_names: Sequence[str] | None = None,
) -> WorkloadRequest:
    """Parse labels and annotations; raise ValidationError listing every problem."""
    reader = _Reader(labels or {}, annotations or {})
    enabled = reader.label(LABEL_ENABLED, _parse_bool, _BOOL_FORM)
    fields: dict[str, Any] = {
        "enabled": bool(enabled),
        "tflops_request": reader.annotation(TFLOPS_REQUEST, _positive_quantity, _QUANTITY_FORM),
        "tflops_limit": reader.annotation(TFLOPS_LIMIT, _positive_quantity, _QUANTITY_FORM),
        "vram_request": reader.annotation(VRAM_REQUEST, _byte_quantity, _BYTES_FORM),
        "vram_limit": reader.annotation(VRAM_LIMIT, _byte_quantity, _BYTES_FORM),
        "compute_percent_request": reader.annotation(COMPUTE_PERCENT_REQUEST, _percent, _PERCENT_FORM),
        "compute_percent_limit": reader.annotation(COMPUTE_PERCENT_LIMIT, _percent, _PERCENT_FORM),
        "gpu_count": reader.annotation(GPU_COUNT, _gpu_count, f"an integer from 1 to {MAX_GPU_COUNT}"),
        "gpu_model": reader.annotation(GPU_MODEL, _free_text, "a GPU model name such as A100 or H100"),
        "vendor": reader.annotation(VENDOR, _free_text, "a vendor name such as NVIDIA or AMD"),
        "pool": reader.annotation(GPU_POOL, _name, _NAME_FORM),
        "qos": reader.annotation(QOS, _qos, "one of " + ", ".join(QOS_LEVELS)),
        "is_local_gpu": reader.annotation(IS_LOCAL_GPU, _parse_bool, _BOOL_FORM),
        "workload_profile": reader.annotation(WORKLOAD_PROFILE, _name, _NAME_FORM),
        "inject_container": reader.annotation(INJECT_CONTAINER, _container_name, "a container name of this pod"),
        "dedicated_gpu": reader.annotation(DEDICATED_GPU, _parse_bool, _BOOL_FORM),
        "enabled_replicas": reader.annotation(ENABLED_REPLICAS, _replicas, "a whole number of replicas >= 0"),
        "workload": reader.label(LABEL_WORKLOAD, _name, _NAME_FORM),
        "gpu_ids": reader.annotation(GPU_IDS, _gpu_ids, "comma-separated GPU names"),
        "gpu_indices": reader.annotation(INDEX, _indices, "comma-separated GPU indices >= 0"),
    }
    _resolve_pairs(fields, reader)
    _check_combinations(fields, reader, container_names)
    if reader.problems:
        raise ValidationError(reader.problems)
    present = {k: v for k, v in fields.items() if v is not None}
    return WorkloadRequest(**present, warnings=tuple(reader.unknown_key_warnings()))


_QUANTITY_FORM: Final = "a positive " + EXPECTED_FORM
_BYTES_FORM: Final = "a positive whole number of bytes as a Kubernetes quantity, e.g. 16Gi or 512Mi"
_PERCENT_FORM: Final = "a percentage of one GPU, greater than 0 and at most 100, e.g. 50 or 12.5"

T = TypeVar("T")


class _Reader:
    """Reads keys one at a time, turning parse failures into problems."""

    def __init__(self, labels: Mapping[str, object], annotations: Mapping[str, object]) -> None:
        # Values are checked, not trusted: documents decoded from JSON may hold any type.
        self.labels = labels
        self.annotations = annotations
        self.problems: list[Problem] = []

    def label(self, key: str, parse: Callable[[str], T], expected: str) -> T | None:
        return self._read(self.labels, key, parse, expected)

    def annotation(self, key: str, parse: Callable[[str], T], expected: str) -> T | None:
        return self._read(self.annotations, key, parse, expected)

    def fail(self, key: str, message: str, expected: str | None = None) -> None:
        self.problems.append(Problem(key, message, expected))

    def _read(self, source: Mapping[str, object], key: str, parse: Callable[[str], T], expected: str) -> T | None:
        if key not in source:
            return None
        raw = source[key]
        if not isinstance(raw, str):
            self.fail(key, f"value must be a string, got {type(raw).__name__} {raw!r}", expected)
            return None
        try:
            return parse(raw)
        except (ValueError, ValidationError) as exc:
            message = exc.problems[0].message if isinstance(exc, ValidationError) else str(exc)
            self.fail(key, message, expected)
            return None

    def unknown_key_warnings(self) -> list[str]:
        """Unknown keys under our prefix are probably typos: warn, naming the closest key."""
        warnings = []
        for key, known in ((k, KNOWN_ANNOTATIONS) for k in self.annotations):
            if key.startswith(PREFIX) and key not in known:
                warnings.append(_unknown(key, "annotation", known))
        for key in self.labels:
            if key.startswith(PREFIX) and key not in KNOWN_LABELS:
                warnings.append(_unknown(key, "label", KNOWN_LABELS))
        return warnings


def _unknown(key: str, kind: str, known: frozenset[str]) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"unknown {kind} {key} is ignored{hint}"


def _resolve_pairs(fields: dict[str, Any], reader: _Reader) -> None:
    """A missing request defaults to its limit (and a missing limit to its request)."""
    for name, request_key, limit_key in (
        ("tflops", TFLOPS_REQUEST, TFLOPS_LIMIT),
        ("vram", VRAM_REQUEST, VRAM_LIMIT),
        ("compute_percent", COMPUTE_PERCENT_REQUEST, COMPUTE_PERCENT_LIMIT),
    ):
        request, limit = fields[f"{name}_request"], fields[f"{name}_limit"]
        if request is None and limit is not None and request_key not in reader.annotations:
            fields[f"{name}_request"] = limit
        elif limit is None and request is not None and limit_key not in reader.annotations:
            fields[f"{name}_limit"] = request
        elif request is not None and limit is not None and request > limit:
            reader.fail(
                request_key,
                f"request {request} is greater than {limit_key} {limit}",
                f"a request at most the limit {limit}",
            )


def _check_combinations(fields: dict[str, Any], reader: _Reader, container_names: Sequence[str] | None) -> None:
    uses_tflops = any(k in reader.annotations for k in (TFLOPS_REQUEST, TFLOPS_LIMIT))
    uses_percent = any(k in reader.annotations for k in (COMPUTE_PERCENT_REQUEST, COMPUTE_PERCENT_LIMIT))
    if uses_tflops and uses_percent:
        reader.fail(
            COMPUTE_PERCENT_REQUEST if COMPUTE_PERCENT_REQUEST in reader.annotations else COMPUTE_PERCENT_LIMIT,
            "compute-percent and tflops annotations are mutually exclusive",
            "either tflops-request/tflops-limit or compute-percent-request/compute-percent-limit",
        )
    if fields["dedicated_gpu"] and (uses_tflops or uses_percent):
        reader.fail(
            DEDICATED_GPU,
            "a dedicated GPU takes the whole device, so compute annotations cannot also be set",
            "dedicated-gpu alone, or tflops/compute-percent without dedicated-gpu",
        )
    if container_names is None or not fields["enabled"]:
        return
    chosen = fields["inject_container"]
    if chosen is not None and chosen not in container_names:
        reader.fail(
            INJECT_CONTAINER,
            f"no container named {chosen!r} in this pod",
            "one of " + (", ".join(container_names) or "the pod's containers"),
        )
    elif chosen is None and INJECT_CONTAINER not in reader.annotations and len(container_names) > 1:
        reader.fail(
            INJECT_CONTAINER,
            "is required when the pod has several containers",
            "one of " + ", ".join(container_names),
        )


def _parse_bool(text: str) -> bool:
    if text == "true":
        return True
    if text == "false":
        return False
    raise ValueError(f"invalid boolean {text!r}")


def _positive_quantity(text: str) -> Quantity:
    quantity = Quantity(text)
    if quantity.value <= 0:
        raise ValueError(f"must be greater than 0, got {text!r}")
    return quantity


def _byte_quantity(text: str) -> Quantity:
    quantity = _positive_quantity(text)
    if quantity.value.denominator != 1:
        raise ValueError(f"{text!r} is not a whole number of bytes")
    return quantity


def _percent(text: str) -> Quantity:
    quantity = _positive_quantity(text)
    if quantity.value > 100:
        raise ValueError(f"{text!r} is more than 100 percent")
    return quantity


def _integer(text: str) -> int:
    if not _INTEGER.fullmatch(text):
        raise ValueError(f"invalid integer {text!r}")
    return int(text)


def _gpu_count(text: str) -> int:
    count = _integer(text)
    if not 1 <= count <= MAX_GPU_COUNT:
        raise ValueError(f"{count} is out of range")
    return count


def _replicas(text: str) -> int:
    return _integer(text)


def _qos(text: str) -> QoS:
    if text not in QOS_LEVELS:
        raise ValueError(f"unknown qos {text!r}")
    return cast(QoS, text)


def _matching(pattern: re.Pattern[str], what: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if not pattern.fullmatch(text):
            raise ValueError(f"invalid {what} {text!r}")
        return text

    return parse


_name = _matching(_NAME, "name")
_container_name = _matching(_CONTAINER_NAME, "container name")
_free_text = _matching(_FREE_TEXT, "value")


def _gpu_ids(text: str) -> tuple[str, ...]:
    return tuple(_name(part.strip()) for part in text.split(","))


def _indices(text: str) -> tuple[int, ...]:
    return tuple(_integer(part.strip()) for part in text.split(","))


def _string_map(value: object, field: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError.single(field, f"must be a map of strings, got {type(value).__name__}", "a map")
    return dict(value)


def _format(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
