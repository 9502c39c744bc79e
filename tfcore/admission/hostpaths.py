"""hostPath volumes of TensorFusion pods must stay clear of the hypervisor's state directory.

The hypervisor keeps every worker's region and limits file under its state directory; the
webhook mounts a pod's own region read-only. A pod that mounts the state directory (or a
directory above or inside it) itself could rewrite its own limits or read its neighbours'.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from typing import Any

from tfcore.model.errors import Problem


def overlaps(path: str, directory: str) -> bool:
    """True when one of the two directories contains the other (or they are the same)."""
    a, b = posixpath.normpath("/" + path), posixpath.normpath("/" + directory)
    return a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")


def state_dir_mounts(
    spec: dict[str, Any], state_dir: str, own: dict[str, Any], *, what: str = "the hypervisor's state directory"
) -> list[Problem]:
    """A problem per hostPath volume of `spec` that overlaps `state_dir`, except `own` (the
    region volume the webhook itself injects, met again when a mutated pod is re-admitted)."""
    problems = []
    for index, volume in enumerate(_volumes(spec.get("volumes"))):
        if volume == own:
            continue
        host_path = volume.get("hostPath")
        path = host_path.get("path") if isinstance(host_path, dict) else None
        if isinstance(path, str) and path and overlaps(path, state_dir):
            problems.append(
                Problem(
                    f"spec.volumes[{index}].hostPath.path",
                    f"{path!r} overlaps {what} {state_dir!r}",
                    "a hostPath outside it (tensor-fusion mounts the pod's own region itself)",
                )
            )
    return problems


def _volumes(volumes: Any) -> Iterable[dict[str, Any]]:
    return [v for v in volumes if isinstance(v, dict)] if isinstance(volumes, list) else []
