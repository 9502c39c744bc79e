"""`tensor-fusion controller`: flags as Go's flag package reads them (the spec's controller.command).

`-flag value`, `-flag=value`, `--flag value` and `--flag=value` all work; a boolean alone means
true and `-flag=false` (any of Go's ParseBool spellings) sets it explicitly; prefixes are not
expanded (Go does not) and unknown flags are an error naming the flag.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from typing import Any

import uvloop

from daemons.controller.daemon import DEFAULT_LEASE_NAME, Options, check_alert_address, parse_bind_address, run
from daemons.controller.observability import ENV_DYNAMIC_CONFIG
from tfcore.alerts.builtin import use_rules_file
from tfcore.config import env as environment
from tfcore.k8s import KubeError
from tfcore.logs import setup_logging
from tfcore.model.errors import ValidationError
from tfcore.web.greptime import greptime_from_env

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def go_bool(text: str) -> bool:
    """Go's strconv.ParseBool."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {text!r} (expected true or false)")


class GoBool(argparse.Action):
    """A boolean flag: present means true; `-flag=false` (any ParseBool spelling) sets it explicitly."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        kwargs.setdefault("default", False)
        super().__init__(option_strings, dest, nargs="?", const=True, type=go_bool, **kwargs)

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option: Any = None
    ) -> None:
        setattr(namespace, self.dest, values)


def _both(name: str) -> tuple[str, str]:
    return f"-{name}", f"--{name}"


def register(commands: Any) -> None:
    """Add the `controller` subcommand to the CLI's subparsers object."""
    p = commands.add_parser(
        "controller",
        help="run the operator: TensorFusionCluster, GPUPool, GPUNode, GPU and workload reconcilers",
        description="Reconciles the tensor-fusion.ai/v1 objects; with -leader-elect only the holder of the "
        "Lease does. Serves /metrics, /healthz and /readyz on -metrics-bind-address.",
        allow_abbrev=False,
    )
    p.add_argument(
        *_both("metrics-bind-address"),
        dest="metrics_bind_address",
        default=":8080",
        metavar="ADDR",
        help='metrics and health address, e.g. ":9000"; "0" disables it (default ":8080")',
    )
    p.add_argument(
        *_both("leader-elect"),
        dest="leader_elect",
        action=GoBool,
        help="elect a leader through a coordination.k8s.io Lease (run 2 replicas for HA)",
    )
    p.add_argument(
        *_both("enable-auto-scale"),
        dest="enable_auto_scale",
        action=GoBool,
        help="vertical autoscaling: resize workloads' TFLOPS/VRAM in place from measured usage",
    )
    p.add_argument(*_both("enable-alert"), dest="enable_alert", action=GoBool, help="evaluate alert rules")
    p.add_argument(
        *_both("alert-manager-addr"),
        dest="alert_manager_addr",
        default="",
        metavar="HOST:PORT",
        help="AlertManager address, e.g. alertmanager.monitoring.svc.cluster.local:9093",
    )
    p.add_argument(*_both("kubeconfig"), dest="kubeconfig", metavar="FILE", help="kubeconfig (default: in-cluster)")
    p.add_argument(
        *_both("leader-election-namespace"),
        dest="lease_namespace",
        metavar="NS",
        help="namespace of the Lease (default: $POD_NAMESPACE, the service account's, tensor-fusion-sys)",
    )
    p.add_argument(
        *_both("leader-election-id"),
        dest="lease_name",
        default=DEFAULT_LEASE_NAME,
        metavar="NAME",
        help=f"name of the Lease (default {DEFAULT_LEASE_NAME})",
    )
    p.add_argument(
        *_both("dynamic-config"),
        dest="dynamic_config",
        metavar="FILE",
        help=f"dynamic config (metricsTTL, metricsFormat, alertRules), reloaded live (default ${ENV_DYNAMIC_CONFIG}; "
        "without it the built-in rules)",
    )
    p.add_argument(
        *_both("metrics-store"),
        dest="metrics_store",
        metavar="PATH",
        help="embedded DuckDB metrics file, used unless TF_GREPTIME_HOST is set "
        "(default $TF_STATE_DIR or /var/lib/tensor-fusion, else a temp dir)",
    )
    # allow_abbrev=False does not cover single-dash long flags (CPython 3.11): no prefix match at all.
    vars(p)["_get_option_tuples"] = lambda option_string: []
    p.set_defaults(handler=_controller)


def options_from(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Options:
    """The daemon's options from flags and the chart's environment, checked; ValidationError names the bad one."""
    env = os.environ if env is None else env
    parse_bind_address(args.metrics_bind_address)
    if args.alert_manager_addr:
        check_alert_address(args.alert_manager_addr)
    elif args.enable_alert:
        raise ValidationError.single("-alert-manager-addr", "required with -enable-alert", "host:port of AlertManager")
    greptime = greptime_from_env(env)
    return Options(
        metrics_bind_address=args.metrics_bind_address,
        leader_elect=args.leader_elect,
        enable_auto_scale=args.enable_auto_scale,
        enable_alert=args.enable_alert,
        alert_manager_addr=args.alert_manager_addr,
        kubeconfig=args.kubeconfig,
        lease_namespace=args.lease_namespace,
        lease_name=args.lease_name,
        dynamic_config=args.dynamic_config or environment.DYNAMIC_CONFIG.read(env) or None,
        greptime=greptime,
        metrics_store=args.metrics_store,
        nvidia_progressive_migration=environment.progressive_migration(None, env),
    )


def _controller(args: argparse.Namespace) -> int:
    setup_logging()  # these raise ValidationError on bad input: exit code 2 (daemons.cli.run_command)
    options = options_from(args)
    use_rules_file(environment.BUILTIN_ALERT_RULES.read(os.environ) or None)
    try:
        uvloop.run(run(options))
    except KubeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
