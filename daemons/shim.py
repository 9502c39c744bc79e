"""`tensor-fusion shim install`: what the webhook's init container runs in every TF pod.

Copies the shim into the pod's shared emptyDir, then waits (bounded) until the hypervisor has
created the pod's region, so no container of the pod starts before its limits exist: the
region's files are mounted into the workload container, which needs them in place.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from tfcore.ipc import limits_path
from tfcore.native import library_paths

POLL_SECONDS = 0.1


def register(commands: Any) -> None:
    shim = commands.add_parser("shim", help="the LD_PRELOAD shim inside pods")
    actions = shim.add_subparsers(dest="shim_action", metavar="ACTION", required=True)
    install = actions.add_parser("install", help="copy the shim for a pod and wait for the pod's region")
    install.add_argument("--to", type=Path, required=True, help="where the workload container finds the shim")
    install.add_argument("--source", type=Path, help="the shim to copy (default: this installation's)")
    install.add_argument("--wait-region", type=Path, metavar="SHM", help="wait until this region (and .limits) exist")
    install.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the region (default 120)")
    install.set_defaults(handler=_install)


def _install(args: argparse.Namespace) -> int:
    if not 0 < args.timeout <= 3600:
        print(f"error: --timeout: {args.timeout} s: expected 0 to 3600 seconds", file=sys.stderr)
        return 2
    source: Path = args.source or _installed_shim()
    target: Path = args.to
    try:
        staged = target.with_name(f".{target.name}.tmp")
        shutil.copyfile(source, staged)
        os.chmod(staged, 0o755)
        os.replace(staged, target)  # never a half-written library for the workload to load
    except OSError as exc:
        print(f"error: cannot install the shim from {source} to {target}: {exc.strerror}", file=sys.stderr)
        return 1
    print(f"installed {target}")
    if args.wait_region is None:
        return 0
    region: Path = args.wait_region
    deadline = time.monotonic() + args.timeout
    while not (region.exists() and limits_path(region).exists()):
        if time.monotonic() > deadline:
            print(
                f"error: region {region} did not appear within {args.timeout:g} s: is the tensor-fusion "
                "hypervisor running on this node, and was the pod placed by the tensor-fusion scheduler "
                "(annotation tensor-fusion.ai/gpu-ids)?",
                file=sys.stderr,
            )
            return 1
        time.sleep(POLL_SECONDS)
    print(f"region {region} is ready")
    return 0


def _installed_shim() -> Path:
    return library_paths()["shim"]
