"""Where a node keeps its files, shared by the hypervisor and its local clients."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def default_state_dir(env: Mapping[str, str], euid: int | None = None) -> Path:
    """$TF_STATE_DIR in `env` (the process environment, passed by the daemon), else
    /run/tensor-fusion for root, else a per-user runtime directory."""
    euid = os.geteuid() if euid is None else euid
    if env.get("TF_STATE_DIR"):
        return Path(env["TF_STATE_DIR"])
    if euid == 0:
        return Path("/run/tensor-fusion")
    runtime = env.get("XDG_RUNTIME_DIR")
    return Path(runtime) / "tensor-fusion" if runtime else Path(f"/tmp/tensor-fusion-{euid}")
