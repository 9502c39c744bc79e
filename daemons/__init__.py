"""Thin process wiring, one package per daemon, plus the `tensor-fusion` CLI.

The import name `daemons` is also the top-level package of an unrelated PyPI distribution
(`daemons`). Installed into one environment, the two overwrite each other's files, so the
result is neither. Rather than rename every import, a foreign `daemons` distribution is
detected here, at import, and refused with what to do (README.md, Quick start).
"""

from __future__ import annotations

import os
import sys


def foreign_distribution() -> str | None:
    """'daemons VERSION' when a distribution named `daemons` is installed on sys.path.

    A directory scan rather than importlib.metadata, which would double the CLI's import time."""
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:  # a zip, a missing directory
            continue
        for name in names:
            if name.startswith("daemons-") and name.endswith((".dist-info", ".egg-info")):
                return "daemons " + name.removeprefix("daemons-").rsplit(".", 1)[0]
    return None


_clash = foreign_distribution()
if _clash is not None:
    raise ImportError(
        f"the distribution {_clash} is installed beside tensor-fusion and uses the same top-level "
        "package name `daemons`: their files overwrite each other. Uninstall it (`pip uninstall daemons`, "
        "then reinstall tensor-fusion) or install tensor-fusion into a virtual environment of its own."
    )
