"""`tensor-fusion metrics write` and `tensor-fusion alerts test`: try rules before shipping them."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from tfcore.alerts.rules import CompiledRule, check_columns, compile_rule
from tfcore.alerts.state import RuleState
from tfcore.config.dynamic import parse_dynamic_config
from tfcore.metrics.embedded import DuckDBStore
from tfcore.metrics.formats import FORMATS, check_format, decode_points
from tfcore.metrics.lineproto import PRECISION_NS, check_precision
from tfcore.metrics.store import QueryFailed, StoreUnavailable
from tfcore.model.errors import ValidationError


def register(commands: Any) -> None:
    """Add the `metrics` and `alerts` subcommands to the CLI's subparsers object."""
    metrics = commands.add_parser("metrics", help="work with the embedded metrics store")
    metrics_actions = metrics.add_subparsers(dest="metrics_action", metavar="ACTION", required=True)
    write = metrics_actions.add_parser("write", help="append points from stdin (line protocol) to an embedded store")
    write.add_argument("--store", type=Path, required=True, metavar="PATH", help="DuckDB file (created if missing)")
    write.add_argument("--format", choices=FORMATS, default="influx", help="input format (default: influx)")
    write.add_argument("--precision", choices=list(PRECISION_NS), default="ns", help="timestamp unit (default: ns)")
    write.set_defaults(handler=_metrics_write)

    alerts = commands.add_parser("alerts", help="work with alert rules")
    alerts_actions = alerts.add_subparsers(dest="alerts_action", metavar="ACTION", required=True)
    test = alerts_actions.add_parser(
        "test", help="validate every rule of a dynamic config and evaluate each once against a store; sends nothing"
    )
    test.add_argument("--config", type=Path, required=True, metavar="FILE", help="config.yaml or a Helm values file")
    test.add_argument("--store", type=Path, required=True, metavar="PATH", help="DuckDB file with metrics")
    test.add_argument("--at", type=_instant, default=None, metavar="TIME", help="evaluate as of this RFC 3339 time")
    test.set_defaults(handler=_alerts_test)


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _print_problems(exc: ValidationError) -> None:
    for problem in exc.problems:
        print(f"error: {problem}", file=sys.stderr)


def _metrics_write(args: argparse.Namespace) -> int:
    try:
        points = decode_points(
            sys.stdin.read(), check_format(args.format), check_precision(args.precision), where="stdin"
        )
    except ValidationError as exc:
        _print_problems(exc)
        print("error: nothing written", file=sys.stderr)
        return 1

    async def write() -> int:
        store = await DuckDBStore(args.store).open()
        try:
            result = await store.write(points)
        finally:
            await store.close()
        for rejected in result.rejected:
            print(f"rejected: {rejected.point.measurement}: {rejected.reason}", file=sys.stderr)
        print(f"wrote {result.written} point(s) to {args.store}")
        return 1 if result.rejected else 0

    try:
        return asyncio.run(write())
    except StoreUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _alerts_test(args: argparse.Namespace) -> int:
    try:
        config = parse_dynamic_config(args.config.read_text(encoding="utf-8"), where=str(args.config))
    except OSError as exc:
        print(f"error: {args.config}: {exc.strerror}", file=sys.stderr)
        return 1
    except ValidationError as exc:
        _print_problems(exc)
        return 1
    now = args.at or datetime.now(UTC)
    try:
        return asyncio.run(_evaluate_all(list(config.alert_rules), args.store, now))
    except StoreUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


async def _evaluate_all(rules: list[CompiledRule], store_path: Path, now: datetime) -> int:
    store = await DuckDBStore(store_path).open()
    failed = False
    try:
        for rule in rules:
            failed |= not await _evaluate_one(store, rule, now)
    finally:
        await store.close()
    return 1 if failed else 0


async def _evaluate_one(store: DuckDBStore, rule: CompiledRule, now: datetime) -> bool:
    sql = rule.render_query(store.dialect, now)
    try:
        problems = check_columns(rule, await store.columns(sql))
        if problems:
            raise ValidationError(problems)
        rows = (await store.query(sql)).records()
        # One evaluation: show what fires once consecutiveCount hits in a row have been seen.
        single = compile_rule(msgspec.structs.replace(rule.rule, consecutive_count=1))
        alerts = RuleState(single).observe(rows, now)
    except (QueryFailed, ValidationError) as exc:
        print(f"FAIL  {rule.name}: {exc}")
        return False
    hits = f"after {rule.rule.consecutive_count} consecutive hits" if rule.rule.consecutive_count > 1 else "now"
    print(f"ok    {rule.name}: " + (f"{len(alerts)} alert(s) would fire {hits}" if alerts else "nothing fires"))
    for alert in alerts:
        labels = ", ".join(f'{k}="{v}"' for k, v in alert.labels.items())
        print(f"  FIRING {{{labels}}}")
        for key, value in alert.annotations.items():
            print(f"    {key}: {value}")
    return True
