"""The `tensor-fusion` command line: one subcommand per capability, wired to tfcore."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import tfcore
from tfcore.model.errors import ValidationError

Handler = Callable[[argparse.Namespace], int]


def _paths(args: argparse.Namespace) -> int:
    from tfcore.native import NativeLibraryMissing, library_paths

    try:
        paths = library_paths()
    except NativeLibraryMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


def _crds(args: argparse.Namespace) -> int:
    from tfcore.model.crdgen import render_crds

    out: Path = args.out
    rendered = render_crds()
    if args.check:
        stale = [name for name, text in rendered.items() if _read(out / name) != text]
        extra = sorted(p.name for p in out.glob("*.yaml") if p.name not in rendered) if out.is_dir() else []
        for name in stale + extra:
            print(f"stale: {out / name}", file=sys.stderr)
        if stale or extra:
            print("run `make crds` to regenerate", file=sys.stderr)
            return 1
        return 0
    out.mkdir(parents=True, exist_ok=True)
    for stale_file in out.glob("*.yaml"):
        if stale_file.name not in rendered:
            stale_file.unlink()
    for name, text in rendered.items():
        (out / name).write_text(text, encoding="utf-8")
        print(out / name)
    return 0


def _validate(args: argparse.Namespace) -> int:
    from tfcore.model.documents import load_documents

    failed = False
    for path in args.files:
        try:
            for index, obj in enumerate(load_documents(path.read_text(encoding="utf-8"), where=str(path))):
                print(f"{path}[{index}]: ok {type(obj).__name__}")
        except ValidationError as exc:
            failed = True
            print_problems(exc)
        except OSError as exc:
            failed = True
            print(f"error: {path}: {exc.strerror}", file=sys.stderr)
    return 1 if failed else 0


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tensor-fusion",
        description="GPU virtualization and pooling for Kubernetes: fractional GPUs by TFLOPS and VRAM.",
    )
    parser.add_argument("--version", action="version", version=f"tensor-fusion {tfcore.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    paths = commands.add_parser("paths", help="print the installed native libraries, one 'name: path' line each")
    paths.set_defaults(handler=_paths)

    crds = commands.add_parser("crds", help="generate the CustomResourceDefinitions from the models")
    crds.add_argument("--out", type=Path, default=Path("charts/tensor-fusion/crds"), help="output directory")
    crds.add_argument("--check", action="store_true", help="exit 1 if the files in --out are stale")
    crds.set_defaults(handler=_crds)

    validate = commands.add_parser("validate", help="check tensor-fusion.ai/v1 YAML documents against the models")
    validate.add_argument("files", type=Path, nargs="+", metavar="FILE")
    validate.set_defaults(handler=_validate)

    # Each capability registers its own subcommands: one import and one call per line here.
    from daemons import autoscale, fleet, observability, region, shim
    from daemons.controller import cli as controller_cli
    from daemons.hypervisor import cli as hypervisor_cli
    from daemons.scheduler import cli as scheduler_cli
    from daemons.standalone import cli as standalone_cli
    from daemons.webhook import cli as webhook_cli

    capabilities = (
        *(observability, region, shim, fleet, autoscale),
        *(scheduler_cli, webhook_cli, controller_cli, hypervisor_cli, standalone_cli),
    )
    for capability in capabilities:
        capability.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    return run_command(handler, args)


def run_command(handler: Handler, args: argparse.Namespace) -> int:
    """Run one subcommand. A ValidationError it lets out is bad input: every problem is printed
    on its own line (field, what is wrong, the expected form) and the exit code is 2."""
    try:
        return handler(args)
    except ValidationError as exc:
        print_problems(exc)
        return 2


def print_problems(exc: ValidationError) -> None:
    for problem in exc.problems:
        print(f"error: {problem}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
