"""`tensor-fusion shim install`, the init container of every TF pod: copy the shim, then wait
(bounded) for the hypervisor to create the pod's region."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tfcore.ipc import DeviceSpec, Region, limits_path
from tfcore.native import library_paths


def install(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "daemons.cli", "shim", "install", "--to", str(tmp_path / "lib.so"), *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_copies_this_installations_shim(tmp_path: Path) -> None:
    done = install(tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "lib.so").read_bytes() == library_paths()["shim"].read_bytes()
    assert (tmp_path / "lib.so").stat().st_mode & 0o777 == 0o755
    assert not list(tmp_path.glob(".*.tmp"))


def test_waits_for_the_region_the_hypervisor_creates(tmp_path: Path) -> None:
    region = tmp_path / "worker" / "shm"
    region.parent.mkdir()

    def hypervisor() -> None:
        time.sleep(0.5)
        Region.create(region, [DeviceSpec("GPU-0", 1 << 30)]).close()

    creator = threading.Thread(target=hypervisor)
    started = time.monotonic()
    creator.start()
    done = install(tmp_path, "--wait-region", str(region), "--timeout", "30")
    creator.join()
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started >= 0.5
    assert limits_path(region).exists()
    assert f"region {region} is ready" in done.stdout


def test_gives_up_after_the_timeout_saying_what_to_check(tmp_path: Path) -> None:
    region = tmp_path / "shm"
    region.write_bytes(b"")  # the usage file alone is not a region: the limits are missing
    started = time.monotonic()
    done = install(tmp_path, "--wait-region", str(region), "--timeout", "0.5")
    assert done.returncode == 1
    assert time.monotonic() - started < 20
    assert "did not appear within 0.5 s" in done.stderr
    assert "hypervisor running on this node" in done.stderr


@pytest.mark.parametrize("timeout", ["0", "-1", "7200"])
def test_bad_timeouts_are_refused(tmp_path: Path, timeout: str) -> None:
    done = install(tmp_path, "--timeout", timeout)
    assert done.returncode == 2
    assert "--timeout" in done.stderr


def test_an_unreadable_source_is_a_clear_error(tmp_path: Path) -> None:
    done = install(tmp_path, "--source", str(tmp_path / "missing.so"))
    assert done.returncode == 1
    assert "cannot install the shim" in done.stderr
