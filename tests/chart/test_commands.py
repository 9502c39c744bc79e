"""Every command line the chart renders for our image is accepted by the real CLI parser."""

from __future__ import annotations

from typing import Any

import pytest

from daemons.cli import build_parser
from tests.chart.conftest import SPEC, Render

WRAPPER = "/manager"  # the Dockerfile's wrapper: exec tensor-fusion controller "$@"


def our_commands(objects: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    found = []
    for obj in objects:
        template = obj.get("spec", {}).get("template", {}).get("spec")
        if not template:
            continue
        for item in template["containers"] + template.get("initContainers", []):
            command = item.get("command", [])
            if command[:1] == ["tensor-fusion"]:
                found.append((f"{obj['metadata']['name']}/{item['name']}", command[1:]))
            elif command[:1] == [WRAPPER]:
                found.append((f"{obj['metadata']['name']}/{item['name']}", ["controller", *command[1:]]))
    return found


@pytest.mark.parametrize("files", [(), (SPEC / "values-production.yaml",), (SPEC / "existing-alertmanager.yaml",)])
def test_rendered_commands_parse(render: Render, files: tuple[Any, ...]) -> None:
    commands = our_commands(render(*files))
    subcommands = {argv[0] for _, argv in commands}
    assert {"controller", "scheduler", "webhook", "hypervisor"} <= subcommands
    parser = build_parser()
    for where, argv in commands:
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # argparse reports and exits on a flag the daemon does not know
            pytest.fail(f"{where}: tensor-fusion {' '.join(argv)} was refused ({exc.code})")
        assert getattr(args, "handler", None) is not None, where
