"""A pod's GPU request as the scheduler uses it: per-GPU amounts in exact integer units, the
pool/model/vendor/index constraints and the pod's node selector and required node affinity.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from operator import attrgetter
from typing import Any, Final

from tfcore.model.annotations import WorkloadRequest, parse_pod
from tfcore.model.errors import Problem, ValidationError
from tfcore.sched.state import GPUState
from tfcore.sched.units import asked_amounts, gpu_amounts

_OPERATORS: Final = frozenset({"In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"})


@dataclass(frozen=True, slots=True)
class LabelRequirement:
    """One matchExpressions entry of a required node affinity term."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        op = self.operator
        if op == "In":
            return value is not None and value in self.values
        if op == "NotIn":
            return value is None or value not in self.values
        if op == "Exists":
            return value is not None
        if op == "DoesNotExist":
            return value is None
        if value is None or not value.lstrip("-").isdigit():
            return False
        bound = int(self.values[0])
        return int(value) > bound if op == "Gt" else int(value) < bound


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestShape:
    """Everything of a pod's request but its identity: what Filter and Score plugins may read.

    Per GPU and in exact integers (see tfcore.sched.units). Compute is either `tflops`
    (milli-TFLOPS) or `percent_ppm` (parts per million of each chosen GPU's physical TFLOPS);
    a dedicated request takes whole GPUs. Pods of one shape get the same verdict and score on
    a node, so the extender keeps those per shape (tfcore.sched.extender.cache): a field added
    here is part of that key by construction.
    """

    tflops: int = 0
    tflops_limit: int = 0
    percent_ppm: int = 0
    percent_limit_ppm: int = 0
    vram: int = 0
    vram_limit: int = 0
    gpu_count: int = 1
    pool: str | None = None
    gpu_model: str | None = None
    vendor: str | None = None
    gpu_indices: frozenset[int] = frozenset()
    dedicated: bool = False
    qos: str | None = None
    node_selector: Mapping[str, str] = field(default_factory=dict)
    affinity_terms: tuple[tuple[LabelRequirement, ...], ...] = ()
    _hash: int = field(default=0, init=False, repr=False, compare=False)  # computed on first use

    def __hash__(self) -> int:
        """Over every field, node_selector (a dict) by its items; kept, since the extender looks a
        shape up several times per call."""
        found = self._hash
        if not found:
            found = hash(shape_key(self)) or 1
            object.__setattr__(self, "_hash", found)
        return found

    def amounts_on(self, gpu: GPUState) -> tuple[int, int, int, int]:
        """(request TFLOPS, request VRAM, limit TFLOPS, limit VRAM) this pod books on `gpu`:
        units.gpu_amounts, a dedicated GPU counted whole at its virtual (oversold) capacity."""
        return gpu_amounts(self, gpu.spec.tflops_milli, gpu.virtual_tflops, gpu.virtual_vram)

    def matches_node_labels(self, labels: Mapping[str, str]) -> bool:
        for key, value in self.node_selector.items():
            if labels.get(key) != value:
                return False
        if not self.affinity_terms:
            return True
        return any(all(req.matches(labels) for req in term) for term in self.affinity_terms)

    @property
    def has_affinity(self) -> bool:
        return bool(self.node_selector or self.affinity_terms)


_SHAPE_FIELDS: Final = tuple(f.name for f in fields(RequestShape) if f.init)
_plain_values: Final = attrgetter(*(name for name in _SHAPE_FIELDS if name != "node_selector"))


def shape_key(request: RequestShape) -> Hashable:
    """The shape's fields as a plain tuple (node_selector by its items): equal exactly when the
    shapes are, and cheaper to build than a RequestShape when only a lookup is needed."""
    return _plain_values(request), frozenset(request.node_selector.items())


@dataclass(frozen=True, slots=True)
class PodRequest(RequestShape):
    """What one pod asks for: its identity (read by PreFilter, Reserve and Bind) and its shape."""

    key: str  # pod uid, or namespace/name for a pod not yet created (simulate-schedule)
    namespace: str = "default"
    name: str = ""
    node_name: str | None = None
    gpu_ids: tuple[str, ...] = ()

    @property
    def shape(self) -> RequestShape:
        """This request without its identity: equal for the replicas of one workload."""
        return RequestShape(**{name: getattr(self, name) for name in _SHAPE_FIELDS})


def pod_request(pod: Mapping[str, Any]) -> PodRequest:
    """Parse a Pod (plain data from JSON/YAML) into a PodRequest; ValidationError names each problem."""
    workload = parse_pod(pod)
    metadata = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    problems: list[Problem] = []
    name = _text(metadata.get("name"), "metadata.name", problems) or ""
    namespace = _text(metadata.get("namespace"), "metadata.namespace", problems) or "default"
    uid = _text(metadata.get("uid"), "metadata.uid", problems)
    node_name = _text(spec.get("nodeName"), "spec.nodeName", problems)
    selector = _node_selector(spec.get("nodeSelector"), problems)
    terms = _affinity_terms(spec.get("affinity"), problems)
    if problems:
        raise ValidationError(problems)
    if not uid and not name:
        raise ValidationError.single("metadata", "a pod needs a uid or a name", "metadata.uid or metadata.name")
    return from_workload_request(
        workload,
        key=uid or f"{namespace}/{name}",
        namespace=namespace,
        name=name,
        node_selector=selector,
        affinity_terms=terms,
        node_name=node_name,
    )


class RequestParser:
    """pod_request, reusing the parse of what pods share (labels, annotations, container names,
    node selector: the replicas of one Deployment) so that only the identity is read again.

    Exactly pod_request's result and errors: a pod whose shared part was not seen yet, or
    cannot be a key (unhashable values, a node affinity), is parsed in full.
    """

    def __init__(self, max_templates: int = 1024) -> None:
        self.max_templates = max_templates
        self._templates: OrderedDict[Hashable, PodRequest] = OrderedDict()

    def __call__(self, pod: Mapping[str, Any]) -> PodRequest:
        key = _template_key(pod)
        if key is None:
            return pod_request(pod)
        template = self._templates.get(key)
        if template is None:
            request = pod_request(pod)
            self._templates[key] = request
            if len(self._templates) > self.max_templates:
                self._templates.popitem(last=False)
            return request
        metadata, spec = pod["metadata"], pod["spec"]
        problems: list[Problem] = []
        name = _text(metadata.get("name"), "metadata.name", problems) or ""
        namespace = _text(metadata.get("namespace"), "metadata.namespace", problems) or "default"
        uid = _text(metadata.get("uid"), "metadata.uid", problems)
        node_name = _text(spec.get("nodeName"), "spec.nodeName", problems)
        if problems:
            raise ValidationError(problems)
        if not uid and not name:
            raise ValidationError.single("metadata", "a pod needs a uid or a name", "metadata.uid or metadata.name")
        return replace(
            template,
            key=uid or f"{namespace}/{name}",
            namespace=namespace,
            name=name,
            node_name=node_name,
            node_selector=dict(template.node_selector),
        )


def _template_key(pod: Mapping[str, Any]) -> Hashable | None:
    """What pod_request reads besides the identity, as a key; None when it cannot be one."""
    metadata, spec = pod.get("metadata"), pod.get("spec")
    if not isinstance(metadata, dict) or not isinstance(spec, dict) or spec.get("affinity") is not None:
        return None
    labels, annotations = metadata.get("labels"), metadata.get("annotations")
    containers, selector = spec.get("containers") or [], spec.get("nodeSelector")
    if not all(v is None or isinstance(v, dict) for v in (labels, annotations, selector)):
        return None
    if not isinstance(containers, list) or not all(isinstance(c, dict) for c in containers):
        return None
    key = (
        tuple(labels.items()) if labels is not None else None,
        tuple(annotations.items()) if annotations is not None else None,
        tuple(c.get("name", "") for c in containers),
        tuple(selector.items()) if selector is not None else None,
    )
    try:
        hash(key)
    except TypeError:
        return None
    return key


def from_workload_request(
    workload: WorkloadRequest,
    *,
    key: str,
    namespace: str = "default",
    name: str = "",
    node_selector: Mapping[str, str] | None = None,
    affinity_terms: Sequence[tuple[LabelRequirement, ...]] = (),
    node_name: str | None = None,
) -> PodRequest:
    """Resolve a WorkloadRequest (from tfcore.model.annotations) into a PodRequest."""
    w = workload
    compute_set = w.tflops_request is not None or w.compute_percent_request is not None
    if not (w.dedicated_gpu or compute_set or w.vram_request is not None):
        raise ValidationError.single(
            "metadata.annotations",
            "the pod asks for no GPU resources (the admission webhook resolves them from the workload "
            "profile or pool defaults before scheduling)",
            "tensor-fusion.ai/tflops-request or compute-percent-request, vram-request, or dedicated-gpu",
        )
    asked = asked_amounts(w)
    return PodRequest(
        key=key,
        namespace=namespace,
        name=name,
        tflops=asked.tflops,
        tflops_limit=asked.tflops_limit,
        percent_ppm=asked.percent_ppm,
        percent_limit_ppm=asked.percent_limit_ppm,
        vram=asked.vram,
        vram_limit=asked.vram_limit,
        gpu_count=w.gpu_count,
        pool=w.pool,
        gpu_model=w.gpu_model,
        vendor=w.vendor,
        # Before placement `index` is the user's constraint; after it, the record beside gpu-ids.
        gpu_indices=frozenset(w.gpu_indices) if not w.gpu_ids else frozenset(),
        dedicated=asked.dedicated,
        qos=w.qos,
        node_selector=dict(node_selector or {}),
        affinity_terms=tuple(affinity_terms),
        node_name=node_name,
        gpu_ids=w.gpu_ids,
    )


def _text(value: object, field: str, problems: list[Problem]) -> str | None:
    if value is None or isinstance(value, str):
        return value or None
    problems.append(Problem(field, f"must be a string, got {type(value).__name__}", "a string"))
    return None


def _node_selector(value: object, problems: list[Problem]) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        problems.append(Problem("spec.nodeSelector", "must be a map of strings", "label: value pairs"))
        return {}
    return dict(value)


def _affinity_terms(value: object, problems: list[Problem]) -> tuple[tuple[LabelRequirement, ...], ...]:
    where = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms"
    try:
        terms = value["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]  # type: ignore[index]
    except (KeyError, TypeError):
        return ()
    if not isinstance(terms, list):
        problems.append(Problem(where, "must be a list", "a list of node selector terms"))
        return ()
    parsed: list[tuple[LabelRequirement, ...]] = []
    for t, term in enumerate(terms):
        expressions = term.get("matchExpressions") if isinstance(term, Mapping) else None
        requirements: list[LabelRequirement] = []
        for e, expr in enumerate(expressions or []):
            here = f"{where}[{t}].matchExpressions[{e}]"
            requirement = _requirement(expr, here, problems)
            if requirement is not None:
                requirements.append(requirement)
        parsed.append(tuple(requirements))
    return tuple(parsed)


def _requirement(expr: object, where: str, problems: list[Problem]) -> LabelRequirement | None:
    if not isinstance(expr, Mapping) or not isinstance(expr.get("key"), str):
        problems.append(Problem(where, "needs a string key", "{key, operator, values}"))
        return None
    operator = expr.get("operator")
    if operator not in _OPERATORS:
        problems.append(Problem(f"{where}.operator", f"unknown operator {operator!r}", ", ".join(sorted(_OPERATORS))))
        return None
    values = expr.get("values") or []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        problems.append(Problem(f"{where}.values", "must be a list of strings", "a list of strings"))
        return None
    if operator in ("Gt", "Lt") and (len(values) != 1 or not values[0].lstrip("-").isdigit()):
        problems.append(Problem(f"{where}.values", f"{operator} needs exactly one integer", "one integer value"))
        return None
    return LabelRequirement(expr["key"], str(operator), tuple(values))
