"""Each tiered pod worker's own directory of the disk tier: `<tier dir>/<namespace>/<pod>/`.

The webhook mounts exactly that directory into the pod (subPathExpr, TF_TIER_DIR), so a pod
sees only its own frozen memory. It is made before the region (the pod's containers start only
after the region exists), owned by the pod's user (mode 0700; 0777 when the pod names no user,
as its state file is then 0666), and removed with the worker: what is left in it is frozen
memory of processes that are gone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from pathlib import Path

log = logging.getLogger(__name__)


def pod_tier_dir(tier_dir: str, worker_name: str) -> Path:
    """`worker_name` is NAMESPACE/POD (checked by the caller): both parts are plain names."""
    return Path(tier_dir, *worker_name.split("/", 1))


def make(tier_dir: str, worker_name: str, tenant_uid: int | None) -> None:
    """Made (or taken over, after a restart) for the pod's user; a failure is logged, never
    fatal: the worker then has no disk tier (its shim cannot write there) and stays in memory."""
    path = pod_tier_dir(tier_dir, worker_name)
    try:
        path.parent.mkdir(mode=0o755, exist_ok=True)
        path.mkdir(mode=0o700, exist_ok=True)
        if tenant_uid is None:
            path.chmod(0o777)
        elif os.geteuid() == 0:
            os.chown(path, tenant_uid, -1, follow_symlinks=False)
    except OSError as exc:
        log.warning("worker %s: no disk tier directory %s: %s", worker_name, path, exc)


def remove(tier_dir: str, worker_name: str) -> None:
    path = pod_tier_dir(tier_dir, worker_name)
    if not path.is_dir() or path.is_symlink():
        return
    shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(OSError):
        path.parent.rmdir()  # only when no other pod of the namespace has one
