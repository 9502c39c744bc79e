"""`tensor-fusion region create|show|sweep`: debug a worker's shared-memory region on a node.

A process started with LD_PRELOAD of the shim and TF_SHM_PATH=PATH is held to the region's
limits.  Wiring only: parsing and formatting here, the region itself is tfcore.ipc.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from tfcore.ipc import DeviceSpec, Region, RegionError, limits_path
from tfcore.model.errors import Problem, ValidationError
from tfcore.model.quantity import parse_quantity

DEVICE_FORM = "a CUDA device ordinal (0, 1, ...) or a GPU UUID (GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)"
_DEVICE = re.compile(r"^(?:[0-9]{1,4}|GPU-[0-9a-fA-F-]{1,40})$")


def register(commands: Any) -> None:
    """Adds the `region` command group to the CLI's subparsers."""
    region = commands.add_parser("region", help="create, inspect and sweep a worker's shared-memory region")
    actions = region.add_subparsers(dest="region_command", metavar="ACTION", required=True)

    create = actions.add_parser("create", help="create a region (PATH and PATH.limits)")
    create.add_argument("path", type=Path, metavar="PATH")
    create.add_argument("--vram", required=True, help="VRAM limit per device, a quantity such as 1Gi")
    create.add_argument(
        "--device",
        action="append",
        dest="devices",
        metavar="N|UUID",
        help="device granted (repeatable; default 0): " + DEVICE_FORM,
    )
    create.add_argument("--tflops-request", default="0", help="TFLOPS request per device (quantity)")
    create.add_argument("--tflops-limit", default="0", help="TFLOPS limit per device (quantity)")
    create.add_argument("--tenant-uid", type=int, help="owner of the state file (mode 0600); else mode 0666")
    create.set_defaults(handler=_create)

    show = actions.add_parser("show", help="print limits, usage and processes")
    show.add_argument("path", type=Path, metavar="PATH")
    show.add_argument("--json", action="store_true", help="one JSON document instead of text")
    show.set_defaults(handler=_show)

    sweep = actions.add_parser("sweep", help="reclaim the usage of processes that are gone")
    sweep.add_argument("path", type=Path, metavar="PATH")
    sweep.set_defaults(handler=_sweep)


def parse_create(args: argparse.Namespace) -> list[DeviceSpec]:
    """The devices a `region create` asks for; ValidationError names each bad option."""
    problems: list[Problem] = []
    numbers: dict[str, int] = {}
    for field, text, scale in (
        ("--vram", args.vram, 1),
        ("--tflops-request", args.tflops_request, 1000),
        ("--tflops-limit", args.tflops_limit, 1000),
    ):
        try:
            value = parse_quantity(text, field=field).value * scale
        except ValidationError as exc:
            problems.extend(exc.problems)
            continue
        if value < 0 or value.denominator != 1:
            unit = "bytes" if scale == 1 else "thousandths of a TFLOPS"
            problems.append(Problem(field, f"{text!r} is not a whole number of {unit}", "a non-negative quantity"))
            continue
        numbers[field] = int(value)
    if numbers.get("--vram") == 0:
        problems.append(Problem("--vram", "a limit of 0 would mean no limit", "a positive quantity such as 1Gi"))
    devices = args.devices or ["0"]
    for index, device in enumerate(devices):
        if not _DEVICE.match(device):
            problems.append(Problem(f"--device[{index}]", f"{device!r} names no device", DEVICE_FORM))
    if len(set(devices)) != len(devices):
        problems.append(Problem("--device", "the same device is given twice", "each device once"))
    if len(devices) > 16:
        problems.append(Problem("--device", f"{len(devices)} devices; a region holds at most 16", None))
    if problems:
        raise ValidationError(problems)
    return [
        DeviceSpec(device, numbers["--vram"], numbers["--tflops-request"], numbers["--tflops-limit"])
        for device in devices
    ]


def _create(args: argparse.Namespace) -> int:
    try:
        specs = parse_create(args)
        with Region.create(args.path, specs, tenant_uid=args.tenant_uid):
            pass
    except RegionError as exc:  # a ValidationError goes on to daemons.cli.run_command: exit code 2
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"created {args.path} and {limits_path(args.path)}")
    print(f"run a process under it: LD_PRELOAD=<shim> TF_SHM_PATH={args.path} COMMAND")
    return 0


def describe(region: Region) -> dict[str, Any]:
    """Everything `region show` prints, as plain data."""
    header = region.header()
    return {
        "path": str(region.path),
        "version": f"{header.version_major}.{header.version_minor}",
        "generation": header.generation,
        "devices": [
            {
                "index": d.index,
                "device": d.uuid,
                "vram_limit_bytes": d.vram_limit_bytes,
                "vram_used_bytes": d.vram_used_bytes,
                "tflops_request_milli": d.tflops_request_milli,
                "tflops_limit_milli": d.tflops_limit_milli,
            }
            for d in region.devices()
        ],
        "processes": [
            {"slot": p.slot, "pid": p.pid, "alive": p.alive, "used_bytes": list(p.used_bytes[: header.device_count])}
            for p in region.processes()
        ],
        "shared": [
            {"entry": a.entry, "device": a.device, "bytes": a.bytes, "holder_slots": list(a.holders)}
            for a in region.shared()
        ],
    }


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def _show(args: argparse.Namespace) -> int:
    try:
        with Region.open(args.path) as region:
            info = describe(region)
    except RegionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"region {info['path']} (layout {info['version']}, limits generation {info['generation']})")
    for d in info["devices"]:
        limit = _mib(d["vram_limit_bytes"]) if d["vram_limit_bytes"] else "no limit"
        print(f"  device {d['index']} [{d['device']}]: VRAM {_mib(d['vram_used_bytes'])} used of {limit}")
    if not info["processes"]:
        print("  no processes")
    for p in info["processes"]:
        state = "alive" if p["alive"] else "dead (run `tensor-fusion region sweep`)"
        used = ", ".join(_mib(b) for b in p["used_bytes"])
        print(f"  process {p['pid']} (slot {p['slot']}): {state}; uses {used}")
    for a in info["shared"]:
        slots = ", ".join(str(slot) for slot in a["holder_slots"])
        print(f"  shared allocation {a['entry']} on device {a['device']}: {_mib(a['bytes'])}, held by slots {slots}")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    try:
        with Region.open(args.path, readonly=False) as region:
            result = region.sweep()
            count = region.header().device_count
    except RegionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    freed = ", ".join(f"device {i}: {_mib(b)}" for i, b in enumerate(result.reclaimed_bytes[:count]))
    print(f"reclaimed {result.reclaimed_slots} dead process slot(s); returned {freed}")
    return 0
