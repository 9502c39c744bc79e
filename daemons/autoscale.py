"""`tensor-fusion autoscale recommend`: what the controller's autoscaler would decide for one
workload, from the samples in an embedded metrics store, offline."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tfcore.autoscale.evaluate import Situation, evaluate
from tfcore.autoscale.history import WorkloadHistory
from tfcore.autoscale.resources import Amounts, Resources
from tfcore.autoscale.samples import feed, resources_query, usage_query
from tfcore.autoscale.settings import resolve
from tfcore.metrics.embedded import DuckDBStore
from tfcore.metrics.store import MetricsStore, QueryFailed, StoreUnavailable
from tfcore.model.autoscaling import AutoScalingConfig
from tfcore.model.codec import decode, load_yaml, to_builtins
from tfcore.model.errors import ValidationError
from tfcore.model.meta import QoSLevel
from tfcore.model.workload import TensorFusionWorkload, WorkloadProfile

WORKLOAD_FORM = "NAMESPACE/NAME"
QOS_LEVELS = ("low", "medium", "high", "critical")


class Failed(Exception):
    """A problem to print and exit 1 on."""


def register(commands: Any) -> None:
    group = commands.add_parser("autoscale", help="vertical autoscaling of GPU workloads")
    actions = group.add_subparsers(dest="autoscale_command", metavar="ACTION", required=True)
    recommend = actions.add_parser(
        "recommend", help="print, as one JSON object, what the autoscaler would do for a workload now"
    )
    recommend.add_argument("--store", type=Path, required=True, help="embedded metrics store (DuckDB file)")
    recommend.add_argument("--workload", required=True, metavar=WORKLOAD_FORM)
    recommend.add_argument(
        "--config",
        type=Path,
        help="YAML: an autoScalingConfig, or a WorkloadProfile / TensorFusionWorkload (its spec's config, "
        "resources and QoS); default: autoscaling on for all resources, spec from the store",
    )
    recommend.add_argument("--at", help="evaluate at this RFC 3339 instant (default: now)")
    recommend.set_defaults(handler=_recommend)


def _recommend(args: argparse.Namespace) -> int:
    try:
        result = asyncio.run(_run(args))
    except ValidationError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    except Failed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, sort_keys=True))
    return 0


def parse_workload(text: str) -> tuple[str, str]:
    namespace, _, name = text.partition("/")
    if not namespace or not name or "/" in name:
        raise ValidationError.single("--workload", f"{text!r} is not a namespaced name", WORKLOAD_FORM)
    return namespace, name


def parse_at(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise ValidationError.single("--at", f"{text!r} is not an RFC 3339 instant", "e.g. 2026-12-06T18:00:00Z")
    return at.astimezone(UTC)


def load_config(path: Path) -> tuple[AutoScalingConfig, Resources | None, QoSLevel | None]:
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise Failed(f"{path}: {exc.strerror}") from None
    data = load_yaml(raw, where=str(path))
    if isinstance(data, dict) and data.get("kind") in {"WorkloadProfile", "TensorFusionWorkload"}:
        obj: WorkloadProfile | TensorFusionWorkload = (
            decode(data, WorkloadProfile, where=str(path))
            if data["kind"] == "WorkloadProfile"
            else decode(data, TensorFusionWorkload, where=str(path))
        )
        spec = obj.spec
        config = (spec.auto_scaling_config if spec else None) or AutoScalingConfig()
        return config, Resources.of(spec.resources if spec else None), spec.qos if spec else None
    return decode(data, AutoScalingConfig, where=str(path)), None, None


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    namespace, name = parse_workload(args.workload)
    at = parse_at(args.at)
    if args.config is not None:
        config, original, qos = load_config(args.config)
    else:
        config = decode({"autoSetResources": {"enable": True, "targetResource": "all"}}, AutoScalingConfig)
        original, qos = None, None
    settings = resolve(config)
    if not args.store.is_file():
        raise Failed(f"--store {args.store}: no such file (expected the DuckDB file of an embedded metrics store)")
    store = await DuckDBStore(args.store).open()
    try:
        history = WorkloadHistory.for_settings(settings)
        rows = await _query(store, usage_query(store.dialect, namespace, name, at - settings.history, at))
        feed(history, rows)
        if original is None:
            original, qos = await _stored_spec(store, namespace, name, at)
    finally:
        await store.close()
    outcome = evaluate(history, Situation(settings, config, original, original, qos, at))
    recommendation = outcome.recommendation or (outcome.estimate.resources if outcome.estimate.confident else None)
    return {
        "workload": f"{namespace}/{name}",
        "at": at.isoformat().replace("+00:00", "Z"),
        "recommendation": to_builtins(recommendation.to_api()) if recommendation else None,
        "apply": to_builtins(outcome.apply.to_api()) if outcome.apply else None,
        "targets": sorted(settings.targets) if settings.enabled else [],
        "samples": outcome.estimate.samples,
        "confident": outcome.estimate.confident,
        "reason": outcome.reason,
    }


async def _query(store: MetricsStore, sql: str) -> list[tuple[Any, ...]]:
    try:
        return (await store.query(sql)).rows
    except (QueryFailed, StoreUnavailable) as exc:
        raise Failed(f"metrics store: {exc}") from None


async def _stored_spec(store: MetricsStore, namespace: str, name: str, at: datetime) -> tuple[Resources, QoSLevel]:
    rows = await _query(store, resources_query(store.dialect, namespace, name, at))
    if not rows:
        raise Failed(
            f"no tf_worker_resources row for {namespace}/{name} before {at:%Y-%m-%dT%H:%M:%SZ}; "
            "give --config with a WorkloadProfile or TensorFusionWorkload to say its resources"
        )
    tflops_request, tflops_limit, vram_request, vram_limit, qos = rows[0]
    resources = Resources(
        Amounts(float(tflops_request or 0), float(vram_request or 0)),
        Amounts(float(tflops_limit or tflops_request or 0), float(vram_limit or vram_request or 0)),
    )
    level: QoSLevel = qos if qos in QOS_LEVELS else "medium"
    return resources, level
