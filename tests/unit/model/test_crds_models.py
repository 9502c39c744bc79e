"""The tensor-fusion.ai/v1 models: the spec's documents parse and round-trip exactly, and
broken documents are rejected by the models AND by the generated CRD schema, both naming
the same field."""

from __future__ import annotations

import copy
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tfcore.model import codec
from tfcore.model.crdgen import openapi_schema
from tfcore.model.errors import ValidationError
from tfcore.model.kinds import KINDS, decode_object
from tfcore.model.meta import check_cron, parse_duration
from tfcore.model.pool import GPUPool, TensorFusionCluster
from tfcore.model.quantity import Quantity
from tfcore.model.workload import WorkloadProfile

from .crd_schema import ALL_FIXTURES, FIXTURES, SPEC_FIXTURES, load, schema_errors

SPEC = FIXTURES / "spec"
OBJECTS = FIXTURES / "objects"
POOL = "spec.gpuPools[0].specTemplate"


def test_every_kind_has_a_fixture() -> None:
    kinds = {load(path)["kind"] for path in ALL_FIXTURES}
    assert kinds == {info.kind for info in KINDS}


def test_every_cluster_document_of_the_spec_is_a_fixture() -> None:
    clusters = [p for p in SPEC_FIXTURES if load(p)["kind"] == "TensorFusionCluster"]
    assert len(clusters) >= 5  # auto-update off/on, oversubscription, Karpenter, managed NodePool


@pytest.mark.parametrize("path", ALL_FIXTURES, ids=lambda p: p.stem)
def test_fixture_round_trips_exactly(path: Path) -> None:
    data = load(path)
    obj = decode_object(data, where=path.stem)
    assert type(obj).__name__ == data["kind"]
    assert codec.to_builtins(obj) == data
    # And through JSON, as the API server would send it back.
    assert codec.to_builtins(codec.decode_json(codec.encode_json(obj), type(obj))) == data


def _walk(obj: Any, *names: str | int) -> Any:
    """Follow attributes/indexes, failing the test on a missing (None) step."""
    for name in names:
        obj = obj[name] if isinstance(name, int) else getattr(obj, name)
        assert obj is not None, f"{name} is unset"
    return obj


def test_spec_values_are_read_as_written() -> None:
    enabled = codec.decode(load(SPEC / "cluster-auto-update-enabled.yaml"), TensorFusionCluster)
    pool = _walk(enabled, "spec", "gpu_pools", 0)
    assert (pool.name, pool.is_default) == ("shared", True)
    policy = _walk(pool, "spec_template", "node_manager_config", "node_pool_rolling_update_policy")
    assert (policy.auto_update, policy.batch_percentage) == (True, 20)
    assert parse_duration(policy.batch_interval) == timedelta(minutes=5)
    assert parse_duration(policy.max_duration) == timedelta(minutes=10)
    assert _walk(policy, "maintenance_window", "includes") == ["1 1 * * *"]

    conservative = codec.decode(load(SPEC / "cluster-conservative-oversubscription.yaml"), TensorFusionCluster)
    over = _walk(conservative, "spec", "gpu_pools", 0, "spec_template", "capacity_config", "oversubscription")
    assert (over.tflops_oversell_ratio, over.vram_expand_to_host_mem, over.vram_expand_to_host_disk) == (300, 40, 20)

    managed = codec.decode(load(SPEC / "cluster-managed-nodepool.yaml"), TensorFusionCluster)
    extra = _walk(managed, "spec", "computing_vendor", "params", "extra_params")
    assert extra == {"keyPairName": "ec2-ssh-key-pair"}

    pool_doc = codec.decode(load(SPEC / "gpupool-shared.yaml"), GPUPool)
    assert _walk(pool_doc, "spec", "capacity_config", "max_resources", "vram") == Quantity("960Gi")


def test_gpupool_spec_equals_cluster_spec_template() -> None:
    """A pool document is a cluster's specTemplate under `spec`: same model, same keys."""
    cluster = load(SPEC / "cluster-managed-nodepool.yaml")
    template = cluster["spec"]["gpuPools"][0]["specTemplate"]
    pool = {"apiVersion": "tensor-fusion.ai/v1", "kind": "GPUPool", "metadata": {"name": "shared"}, "spec": template}
    assert codec.to_builtins(codec.decode(pool, GPUPool)) == pool


def _set(document: Any, dotted: str, value: Any) -> Any:
    """A copy of `document` with the field at `dotted` (a.b[0].c) set to `value`."""
    result = copy.deepcopy(document)
    parts: list[str | int] = []
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", dotted):
        parts.append(int(index) if index else name)
    node = result
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = value
    return result


ROLLING = f"{POOL}.nodeManagerConfig.nodePoolRollingUpdatePolicy"
OVERSUB = f"{POOL}.capacityConfig.oversubscription"
# (fixture, field, bad value, field the model names if it differs).
BROKEN: list[tuple[str, str, Any, str | None]] = [
    ("spec/cluster-auto-update-disabled", f"{ROLLING}.autoUpdate", "sometimes", None),
    ("spec/cluster-auto-update-enabled", f"{ROLLING}.batchPercentage", -1, None),
    ("spec/cluster-auto-update-enabled", f"{ROLLING}.batchPercentage", 101, None),
    ("spec/cluster-auto-update-enabled", f"{ROLLING}.batchPercentage", "20", None),
    ("spec/cluster-auto-update-enabled", f"{ROLLING}.batchInterval", "5 minutes", None),
    ("spec/cluster-auto-update-enabled", f"{ROLLING}.maxDuration", "-10m", None),
    ("spec/cluster-auto-update-enabled", f"{ROLLING}.maintenanceWindow.includes[0]", "every night", None),
    ("spec/cluster-auto-update-enabled", f"{ROLLING}.maintenanceWindow.includes[0]", "1 1 * *", None),
    ("spec/cluster-conservative-oversubscription", f"{OVERSUB}.tflopsOversellRatio", 99, None),
    ("spec/cluster-conservative-oversubscription", f"{OVERSUB}.tflopsOversellRatio", 100001, None),
    ("spec/cluster-conservative-oversubscription", f"{OVERSUB}.vramExpandToHostMem", -5, None),
    ("spec/cluster-conservative-oversubscription", f"{OVERSUB}.vramExpandToHostDisk", 101, None),
    ("spec/cluster-conservative-oversubscription", f"{OVERSUB}.vramExpandToHostMem", 40.5, None),
    ("spec/cluster-karpenter", f"{POOL}.nodeManagerConfig.provisioningMode", "Manual", None),
    ("spec/cluster-karpenter", f"{POOL}.nodeManagerConfig.provisioningMode", "karpenter", None),
    ("spec/cluster-karpenter", f"{POOL}.nodeManagerConfig.nodeCompaction.period", 5, None),
    ("spec/cluster-managed-nodepool", "spec.computingVendor.authType", "password", None),
    ("spec/cluster-managed-nodepool", "spec.computingVendor.enable", "true", None),
    (
        "spec/cluster-managed-nodepool",
        f"{POOL}.nodeManagerConfig.nodeProvisioner.gpuRequirements[1].operator",
        "Has",
        None,
    ),
    ("spec/cluster-managed-nodepool", f"{POOL}.nodeManagerConfig.nodeProvisioner.gpuNodeLabels", ["a"], None),
    (
        "spec/cluster-managed-nodepool-taints",
        f"{POOL}.nodeManagerConfig.nodeProvisioner.gpuTaints[0].effect",
        "NoWhere",
        None,
    ),
    ("spec/cluster-managed-nodepool", "spec.gpuPools", {"name": "shared"}, None),
    ("spec/gpupool-shared", "spec.capacityConfig.maxResources.vram", "16GB", None),
    ("spec/gpupool-shared", "spec.capacityConfig.maxResources.tflops", 1.5, None),
    ("spec/gpupool-shared", "spec.capacityConfig.minResources.tflops", True, None),
    ("spec/gpupool-shared", "spec.qosConfig.defaultQoS", "urgent", None),
    ("objects/tensorfusionworkload", "spec.gpuCount", 0, None),
    ("objects/tensorfusionworkload", "spec.gpuCount", 129, None),
    ("objects/tensorfusionworkload", "spec.qos", "best-effort", None),
    ("objects/tensorfusionworkload", "spec.replicas", -1, None),
    ("objects/tensorfusionworkload", "spec.resources.limits.vram", "3 GiB", None),
    ("objects/workloadprofile", "spec.isolation", "strict", None),
    ("objects/gpu", "status.usedBy", "someone-else", None),
    ("objects/gpu", "status.capacity.vram", "-", None),
    ("objects/gpunode", "status.conditions[0].status", "Yes", None),
    ("objects/gpuresourcequota", "spec.total.alertThresholdPercent", 120, None),
]


@pytest.mark.parametrize(("fixture", "field", "value", "model_field"), BROKEN, ids=lambda v: str(v)[-40:])
def test_broken_document_rejected_by_models_and_schema(
    fixture: str, field: str, value: Any, model_field: str | None
) -> None:
    document = _set(load(FIXTURES / f"{fixture}.yaml"), field, value)

    with pytest.raises(ValidationError) as caught:
        decode_object(document)
    assert [p.field for p in caught.value.problems] == [model_field or field]

    errors = schema_errors(openapi_schema(document["kind"]), document)
    assert errors, f"the CRD schema accepted {field}={value!r}"
    assert {path for path, _ in errors} == {field}, errors


def test_cron_ranges_are_checked_by_the_models() -> None:
    """A 61st minute has the shape of a cron line, so the API server's pattern lets it
    through; the models (croniter) reject it with a message naming the entry."""
    document = _set(
        load(SPEC / "cluster-auto-update-enabled.yaml"), f"{ROLLING}.maintenanceWindow.includes[0]", "61 1 * * *"
    )
    with pytest.raises(ValidationError) as caught:
        decode_object(document)
    problem = caught.value.problems[0]
    assert problem.field == f"{ROLLING}.maintenanceWindow"
    assert "includes[0]" in problem.message
    assert "61 1 * * *" in problem.message


@pytest.mark.parametrize("expression", ["1 1 * * *", "*/5 0-6 * * MON-FRI", "0 3 1 * *", "@daily", "@hourly"])
def test_valid_cron(expression: str) -> None:
    check_cron(expression)


@pytest.mark.parametrize("expression", ["", "1 1 * *", "1 1 * * * *", "61 1 * * *", "every night", "@often"])
def test_invalid_cron(expression: str) -> None:
    with pytest.raises(ValueError, match="not a valid cron expression"):
        check_cron(expression)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5m", timedelta(minutes=5)),
        ("1h30m", timedelta(minutes=90)),
        ("500ms", timedelta(milliseconds=500)),
        ("0", timedelta(0)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "5", "5 m", "-5m", "5d", "m"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_integer_quantity_round_trips_as_integer() -> None:
    """The API server keeps `tflops: 2000` an integer (int-or-string), so should we."""
    document = _set(load(SPEC / "gpupool-shared.yaml"), "spec.capacityConfig.maxResources.tflops", 2000)
    assert codec.to_builtins(decode_object(document)) == document


def test_unknown_fields_are_ignored_by_models_but_rejected_by_the_schema() -> None:
    """Models stay forward compatible (a newer CRD may add fields); a typo in a document is
    caught by the strict schema check, as `kubectl apply --validate=strict` does."""
    document = _set(load(SPEC / "cluster-auto-update-disabled.yaml"), f"{ROLLING}.autoUpdte", True)
    decode_object(document)
    assert [path for path, _ in schema_errors(openapi_schema("TensorFusionCluster"), document)] == [ROLLING]


def test_unknown_kind_and_version_are_named() -> None:
    with pytest.raises(ValidationError, match="kind: unknown kind 'GPUPools'"):
        decode_object({"apiVersion": "tensor-fusion.ai/v1", "kind": "GPUPools"})
    with pytest.raises(ValidationError, match="apiVersion"):
        decode_object({"apiVersion": "tensor-fusion.ai/v2", "kind": "GPUPool"})
    with pytest.raises(ValidationError, match="kind"):
        codec.decode({"apiVersion": "tensor-fusion.ai/v1", "kind": "GPU"}, WorkloadProfile)
