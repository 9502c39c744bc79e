"""Dependency rules import-linter cannot see: the compiled binding is not in its graph."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BINDING = "tfcore.ipc._shm"


def _imported_modules(path: Path) -> set[str]:
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    return _imports_in(path.read_text(encoding="utf-8"), package)


def _imports_in(source: str, package: str) -> set[str]:
    tree = ast.parse(source)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def test_only_tfcore_ipc_imports_the_native_binding() -> None:
    offenders = [
        str(path.relative_to(REPO))
        for top in ("tfcore", "daemons", "bench")
        for path in (REPO / top).rglob("*.py")
        if not path.is_relative_to(REPO / "tfcore/ipc") and BINDING in _imported_modules(path)
    ]
    assert offenders == [], f"only tfcore.ipc may import {BINDING}; move these behind tfcore.ipc"


def test_the_checker_sees_every_import_form() -> None:
    assert BINDING in _imported_modules(REPO / "tfcore/ipc/region.py")
    for source, package in [
        ("import tfcore.ipc._shm", "tfcore.model"),
        ("from tfcore.ipc import _shm", "tfcore.model"),
        ("from ..ipc import _shm", "tfcore.model"),
        ("from ._shm import Region", "tfcore.ipc"),
    ]:
        assert BINDING in _imports_in(source, package), source


PURE = ("tfcore/model", "tfcore/alerts", "tfcore/sched", "tfcore/admission", "tfcore/operator", "tfcore/hypervisor")
ENVIRONMENT = {"os.environ", "os.getenv", "os.environb", "os.putenv"}


def _environment_uses(source: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            name = f"{node.value.id}.{node.attr}"
            if name in ENVIRONMENT:
                found.add(name)
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            found.update(f"os.{a.name}" for a in node.names if f"os.{a.name}" in ENVIRONMENT)
    return found


def test_pure_packages_take_the_environment_as_an_argument() -> None:
    """Daemons read TF_* once through tfcore.config.env; the pure logic never reads os.environ."""
    offenders = {
        str(path.relative_to(REPO)): sorted(uses)
        for top in PURE
        for path in (REPO / top).rglob("*.py")
        if (uses := _environment_uses(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}


def test_the_environment_checker_sees_every_form() -> None:
    for source in ("x = os.environ['A']", "os.getenv('A')", "from os import environ"):
        assert _environment_uses(source), source
    assert not _environment_uses("env.get('A')")
