"""`tensor-fusion rollout plan` and `tensor-fusion capacity plan`: offline what-if over a snapshot.

They read the same objects the controller lists (GPUPools, GPUNodes, Nodes, Pods, the hypervisor
DaemonSet and its ControllerRevisions, NodeClaims, GPUNodeClaims, the TensorFusionCluster) and
print one JSON object per pool of what the controller would do next, through tfcore.fleet.view.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tfcore.fleet import rollout, view
from tfcore.model.errors import ValidationError

STATE_HELP = "a kubectl get -o yaml List or multi-document YAML of the cluster's objects"
AT_HELP = "the moment to plan for, RFC 3339 (default: now)"


def _plan(args: argparse.Namespace) -> int:
    try:
        now = rollout.parse_time(args.at, "--at") if args.at else datetime.now(UTC)
        text = Path(args.cluster_state).read_text(encoding="utf-8")
        snap = view.load_snapshot(text, where=str(args.cluster_state))
        if args.command == "rollout":
            lines = view.rollout_summaries(snap, now)
        else:
            lines = [plan.summary() for plan in view.plan_capacity(snap, now)]
    except (ValidationError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in lines:
        print(json.dumps(line, sort_keys=True))
    return 0


def register(commands: Any) -> None:
    for name, text in (
        ("rollout", "hypervisor rolling updates: which nodes the controller replaces next, per pool"),
        ("capacity", "managed pools: what the controller provisions, compacts or expires next, per pool"),
    ):
        group = commands.add_parser(name, help=text)
        actions = group.add_subparsers(dest=f"{name}_action", metavar="ACTION", required=True)
        plan = actions.add_parser("plan", help=f"{text} (offline, from a snapshot)")
        plan.add_argument("--cluster-state", required=True, type=Path, metavar="FILE", help=STATE_HELP)
        plan.add_argument("--at", metavar="RFC3339", help=AT_HELP)
        plan.set_defaults(handler=_plan)
