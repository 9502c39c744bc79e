"""The CRD generator: structural schemas, CRD metadata, the checked-in files, and agreement
between the schemas the API server enforces and the models the daemons decode with."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from tfcore.model import codec
from tfcore.model.crdgen import crd_document, openapi_schema, render_crds
from tfcore.model.errors import ValidationError
from tfcore.model.kinds import KINDS, KindInfo
from tfcore.model.meta import GPUResourceRequirements, GPUResources
from tfcore.model.pool import Oversubscription
from tfcore.model.quantity import SCHEMA_PATTERN, Quantity

from .crd_schema import ALL_FIXTURES, load, schema_errors, structural_problems, sub_schema

CRD_DIR = Path(__file__).resolve().parents[3] / "charts" / "tensor-fusion" / "crds"
KIND_IDS = [info.kind for info in KINDS]


@pytest.mark.parametrize("info", KINDS, ids=KIND_IDS)
def test_schema_is_structural(info: KindInfo) -> None:
    assert structural_problems(openapi_schema(info.kind)) == []


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        ({"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}}, "a: forbidden keyword $ref"),
        ({"type": "object", "properties": {"a": {"description": "untyped"}}}, "a: no type"),
        (
            {
                "type": "object",
                "properties": {
                    "q": {
                        "x-kubernetes-int-or-string": True,
                        "anyOf": [{"type": "integer"}, {"type": "string", "pattern": "^x$"}],
                    }
                },
            },
            "q: anyOf other than the int-or-string form",
        ),
        ({"type": "object", "properties": {"a": {"type": "object"}}}, "a: object that would be pruned empty"),
        ({"type": "object", "properties": {"a": {"enum": ["x"]}}}, "a: enum without type"),
        ({"type": "object", "properties": {"n": {"type": "integer", "minimum": 1, "default": 0}}}, "n: default 0"),
    ],
)
def test_structural_checker_catches(schema: dict[str, Any], problem: str) -> None:
    schema["properties"]["metadata"] = {"type": "object"}
    assert any(p.startswith(problem) for p in structural_problems(schema)), structural_problems(schema)


@pytest.mark.parametrize("path", ALL_FIXTURES, ids=lambda p: p.stem)
def test_schema_accepts_fixture(path: Path) -> None:
    document = load(path)
    assert schema_errors(openapi_schema(document["kind"]), document) == []


@pytest.mark.parametrize("info", KINDS, ids=KIND_IDS)
def test_crd_document(info: KindInfo) -> None:
    crd = crd_document(info)
    spec = crd["spec"]
    assert crd["metadata"]["name"] == f"{info.plural}.tensor-fusion.ai"
    assert (spec["group"], spec["scope"]) == ("tensor-fusion.ai", info.scope)
    assert (spec["names"]["kind"], spec["names"]["listKind"]) == (info.kind, f"{info.kind}List")
    assert spec["names"]["categories"] == ["tensor-fusion"]
    [version] = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1", True, True)
    assert version["subresources"] == {"status": {}}
    schema = version["schema"]["openAPIV3Schema"]
    for column in version.get("additionalPrinterColumns", []):
        path = column["jsonPath"].lstrip(".")
        if path.startswith("metadata."):
            continue
        node = sub_schema(schema, path)
        assert column["type"] != "integer" or node.get("type") == "integer", column


def test_scopes_match_the_api() -> None:
    cluster = {
        "TensorFusionCluster",
        "GPUPool",
        "GPUNode",
        "GPU",
        "GPUNodeClass",
        "GPUNodeClaim",
        "SchedulingConfigTemplate",
    }
    assert {i.kind for i in KINDS if i.scope == "Cluster"} == cluster
    assert {i.kind for i in KINDS if i.scope == "Namespaced"} == {
        "TensorFusionWorkload",
        "TensorFusionConnection",
        "WorkloadProfile",
        "GPUResourceQuota",
    }


def test_main_kinds_have_printer_columns() -> None:
    def names(kind: str) -> set[str]:
        return {c.name for c in next(i for i in KINDS if i.kind == kind).columns}

    assert {"Model", "VRAM", "TFLOPS", "Phase", "Age"} <= names("GPU")
    assert {"Phase", "Total TFLOPS", "Available TFLOPS", "Total VRAM", "Available VRAM"} <= names("GPUPool")
    assert {"Phase", "Total TFLOPS", "Total VRAM"} <= names("TensorFusionCluster")
    assert {"Replicas", "Ready", "QoS"} <= names("TensorFusionWorkload")


def test_render_is_deterministic_and_parses() -> None:
    first, second = render_crds(), render_crds()
    assert first == second
    assert len(first) == len(KINDS)
    for name, text in first.items():
        document = yaml.safe_load(text)
        assert name == f"tensor-fusion.ai_{document['spec']['names']['plural']}.yaml"


def test_openapi_schema_returns_a_copy() -> None:
    openapi_schema("GPU")["properties"].clear()
    assert "status" in openapi_schema("GPU")["properties"]


def test_quantity_uses_the_api_server_int_or_string_form() -> None:
    node = sub_schema(openapi_schema("GPU"), "status.capacity.vram")
    assert node == {
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "pattern": SCHEMA_PATTERN,
        "x-kubernetes-int-or-string": True,
    }


def test_defaults_are_the_documented_ones() -> None:
    over = sub_schema(openapi_schema("GPUPool"), "spec.capacityConfig.oversubscription")["properties"]
    assert {k: v["default"] for k, v in over.items()} == {
        "tflopsOversellRatio": 500,
        "vramExpandToHostMem": 50,
        "vramExpandToHostDisk": 70,
    }


def test_free_form_fields_keep_unknown_keys() -> None:
    pool = openapi_schema("GPUPool")
    for path in ("spec.componentConfig",):
        assert sub_schema(pool, path).get("x-kubernetes-preserve-unknown-fields") is True
    cluster = openapi_schema("TensorFusionCluster")
    vendor = sub_schema(cluster, "spec.computingVendor.params.extraParams")
    assert vendor["x-kubernetes-preserve-unknown-fields"] is True


def test_checked_in_crds_are_current() -> None:
    expected = render_crds()
    actual = {p.name: p.read_text(encoding="utf-8") for p in sorted(CRD_DIR.glob("*.yaml"))}
    stale = sorted(name for name in expected.keys() | actual.keys() if expected.get(name) != actual.get(name))
    assert not stale, f"charts/tensor-fusion/crds is stale ({', '.join(stale)}): run `make crds`"


# Property tests: the schema the API server enforces and the models agree.

OVERSUB_SCHEMA = sub_schema(openapi_schema("GPUPool"), "spec.capacityConfig.oversubscription")
RESOURCES_SCHEMA = sub_schema(openapi_schema("WorkloadProfile"), "spec.resources")


def quantities() -> st.SearchStrategy[Quantity]:
    number = st.one_of(
        st.integers(0, 10**6).map(str),
        st.decimals(0, 10**4, places=3, allow_nan=False, allow_infinity=False).map(lambda d: format(d, "f")),
    )
    suffix = st.sampled_from(["", "Ki", "Mi", "Gi", "Ti", "m", "k", "M", "G", "e3", "E-2"])
    return st.builds(lambda n, s: Quantity(n + s), number, suffix)


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


@given(
    st.builds(
        Oversubscription,
        tflops_oversell_ratio=optional(st.integers(100, 100000)),
        vram_expand_to_host_mem=optional(st.integers(0, 100)),
        vram_expand_to_host_disk=optional(st.integers(0, 100)),
    )
)
def test_valid_oversubscription_round_trips_and_validates(value: Oversubscription) -> None:
    data = codec.to_builtins(value)
    assert codec.decode(data, Oversubscription) == value
    assert schema_errors(OVERSUB_SCHEMA, data) == []


@given(
    st.builds(
        GPUResourceRequirements,
        requests=optional(st.builds(GPUResources, tflops=optional(quantities()), vram=optional(quantities()))),
        limits=optional(st.builds(GPUResources, tflops=optional(quantities()), vram=optional(quantities()))),
    )
)
def test_valid_resources_round_trip_and_validate(value: GPUResourceRequirements) -> None:
    data = msgspec.json.decode(codec.encode_json(value))
    decoded = codec.decode(data, GPUResourceRequirements)
    assert decoded == value
    assert codec.to_builtins(decoded) == data
    assert schema_errors(RESOURCES_SCHEMA, data) == []


@given(
    st.sampled_from(["tflopsOversellRatio", "vramExpandToHostMem", "vramExpandToHostDisk"]), st.integers(-1000, 200000)
)
def test_models_and_schema_agree_on_ranges(field: str, number: int) -> None:
    data = {field: number}
    try:
        codec.decode(data, Oversubscription)
        model_ok = True
    except ValidationError:
        model_ok = False
    assert model_ok == (schema_errors(OVERSUB_SCHEMA, data) == [])


@given(st.text(alphabet="0123456789.+-eEKMGTPinumk", max_size=8))
def test_quantity_pattern_agrees_with_the_parser(text: str) -> None:
    """The API server's pattern and our parser accept the same strings, except that the
    parser also refuses absurd exponents."""
    pattern_ok = re.fullmatch(SCHEMA_PATTERN, text) is not None
    error = ""
    try:
        Quantity(text)
    except ValidationError as exc:
        error = str(exc)
    if pattern_ok:
        assert error in ("", *([error] if "out of range" in error else []))
    else:
        assert error
