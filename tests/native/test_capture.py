"""Stream capture on the simulated driver, as cuda.h documents it (tests/native/c/capture.c):
where capture may begin, that captured work (kernels, copies, host functions, stream-ordered
allocations and frees) runs only when the graph is launched, the errors of unsafe or
synchronizing calls and the invalidation they cause, thread modes, fork and join through
events.  The same under the shim with a region: it passes capture through unchanged.

Not marked simulator_only: on a GPU (`make gpu-check`) it checks that the simulator's
expectations are the real driver's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import make_region, parse_kv, run, sim_env

INVALID_VALUE, UNSUPPORTED, INVALIDATED, UNMATCHED, UNJOINED = "1", "900", "901", "903", "904"
ISOLATION, IMPLICIT, CAPTURED_EVENT, WRONG_THREAD = "905", "906", "907", "908"

EXPECTED = {
    "legacy_begin": INVALID_VALUE,  # the legacy stream cannot capture
    "begin": "0",
    "begin_again": INVALID_VALUE,  # already capturing
    "status": "1",  # CU_STREAM_CAPTURE_STATUS_ACTIVE
    "other_status": "0",
    "legacy_query": IMPLICIT,  # a blocking stream of the context captures
    "info": "1,1,0",  # an id, the graph being built, no dependencies yet
    "kernel": "0",
    "info_after_kernel": "1,1",  # the next node depends on the kernel's
    "copy": "0",
    "host": "0",
    "alloc": "0,1",  # an address, and
    "alloc_free_unchanged": "1",  # no memory until the graph runs
    "free": "0",
    "free_plain": INVALID_VALUE,  # a captured free must name a graph allocation
    "end": "0,1",
    "nodes": "5",  # kernel, copy, host function, allocation, free
    "ran_while_captured": "0,0",  # neither the copy nor the host function ran
    "graph": "0,0",
    "ran_at_launch": "xyz,1",
    "end_not_capturing": INVALID_VALUE,
    "sync": UNSUPPORTED,
    "sync_status": "2",  # CU_STREAM_CAPTURE_STATUS_INVALIDATED
    "after_sync_kernel": INVALIDATED,
    "sync_end": f"{INVALIDATED},1",  # and no graph
    "threadlocal_other": "0",  # another thread is not prohibited by a thread-local capture
    "threadlocal_end": "0",
    "global_other_relaxed": "0",
    "global_other": UNSUPPORTED,  # a global capture prohibits other default-mode threads
    "global_end": INVALIDATED,
    "own_alloc": UNSUPPORTED,  # cuMemAlloc while this thread captures
    "own_end": INVALIDATED,
    "sync_copy": UNSUPPORTED,
    "sync_copy_end": INVALIDATED,
    "legacy_kernel": IMPLICIT,  # even in relaxed mode
    "legacy_end": INVALIDATED,
    "wrong_thread_end": WRONG_THREAD,
    "right_thread_end": "0",
    "event_query": CAPTURED_EVENT,
    "fork": "0",
    "forked_status": "1",  # the waiting stream joined the capture
    "forked_end": UNMATCHED,  # capture ends where it began
    "unjoined_end": UNJOINED,
    "after_end_status": "0",
    "join": "0",
    "joined_end": "0,2",
    "joined_graph": "0,0",
    "isolation": ISOLATION,  # an event recorded outside the capture
    "isolation_end": INVALIDATED,
}


@pytest.fixture(scope="module")
def capture(cc: Callable[..., Path]) -> Path:
    return cc("capture", "capture.c", flags=("-ldl", "-lpthread"))


@pytest.mark.parametrize("shim", [False, True], ids=["driver", "under-shim"])
def test_stream_capture_follows_the_documented_rules(
    libs: dict[str, Path], capture: Path, tmp_path: Path, shim: bool
) -> None:
    extra = {"TF_SHM_PATH": str(make_region(tmp_path / "w.shm", ("0", 1 << 30)))} if shim else {}
    done = run([str(capture)], sim_env(libs, shim=shim, **extra))
    out = parse_kv(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    assert out == EXPECTED
