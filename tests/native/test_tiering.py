"""VRAM tiering under the shim: freeze to host and disk, resume on the next call (graph replay
included), same pointers and bytes; failures during a move keep the data; a kill mid-move
leaves exact books."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tfcore.ipc import DeviceSpec, Region, TierState

from .conftest import parse_kv, run_python, sim_env

pytestmark = pytest.mark.simulator_only  # the moves' effects are read from the simulated NVML

MIB = 1 << 20
NVML_USED = (
    "import pynvml; pynvml.nvmlInit(); print(pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(0)).used)"
)


@pytest.fixture(scope="module")
def tierwork(cc: Callable[..., Path]) -> Path:
    return cc("tierwork", "tierwork.c", flags=("-ldl",))


class Worker:
    """A tierwork process under the shim, spoken to line by line."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc

    def ask(self, line: str, answers: int) -> dict[str, str]:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return parse_kv("".join(self.proc.stdout.readline() for _ in range(answers)))

    def finish(self) -> int:
        """Asks it to quit (if it still runs), waits, closes the pipes; its exit status."""
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
        code = self.proc.wait(timeout=30)
        self.proc.stdin.close()
        self.proc.stdout.close()
        if self.proc.stderr is not None:
            self.stderr = self.proc.stderr.read()
            self.proc.stderr.close()
        return code

    stderr = ""


def start(libs: dict[str, Path], tierwork: Path, region: Path, tier_dir: Path, **extra: str) -> Worker:
    env = sim_env(libs, shim=True, TF_SHM_PATH=str(region), TF_TIER_DIR=str(tier_dir), **extra)
    proc = subprocess.Popen(
        [str(tierwork)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_limit_files,  # noqa: PLW1509
    )
    return Worker(proc)


FILE_LIMIT: list[int] = []  # set by a test to make the tier directory "full"


def _limit_files() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an over-limit write fails with EFBIG instead
    if FILE_LIMIT:
        resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT[0], FILE_LIMIT[0]))


def settle(region: Region, timeout: float = 20.0) -> TierState:
    """Waits (bounded) until every live process has handled the latest request."""
    deadline = time.monotonic() + timeout
    while True:
        state = region.tier_state()
        if state.acked or time.monotonic() > deadline:
            return state
        time.sleep(0.01)


@pytest.fixture
def regions(tmp_path: Path) -> Iterator[list[Region]]:
    """Two workers' regions, a.shm and b.shm in tmp_path, 192 MiB each, tiering on."""
    made = []
    for name in ("a", "b"):
        r = Region.create(tmp_path / f"{name}.shm", [DeviceSpec("0", 192 * MIB)])
        r.set_tier_enabled(True)
        made.append(r)
    yield made
    for r in made:
        r.close()


def nvml_used(libs: dict[str, Path]) -> int:
    return int(run_python(NVML_USED, sim_env(libs)).stdout)


@pytest.fixture
def worker_region(tmp_path: Path) -> Iterator[tuple[Region, Path]]:
    path = tmp_path / "worker.shm"
    with Region.create(path, [DeviceSpec("0", 8 << 30)]) as region:
        region.set_tier_enabled(True)
        yield region, path


def test_many_freeze_resume_cycles_keep_pointers_and_bytes(
    libs: dict[str, Path], tierwork: Path, worker_region: tuple[Region, Path], tmp_path: Path
) -> None:
    region, path = worker_region
    worker = start(libs, tierwork, path, tmp_path)
    first = worker.ask("alloc 4 16", 3)
    assert first["alloc"] == "0"
    assert first["write"] == "0"
    assert nvml_used(libs) == 64 * MIB
    for cycle in range(12):
        to = "disk" if cycle % 3 == 2 else "host"
        region.request_tier(to)
        state = settle(region)
        assert (state.acked, state.where, state.failures) == (True, to, ()), state
        assert (state.host_bytes, state.disk_bytes) == ((64 * MIB, 0) if to == "host" else (0, 64 * MIB))
        assert nvml_used(libs) == 0  # the frozen worker's device memory is back in the pool
        if cycle % 2:  # a graph instantiated before any freeze replays on the same pointers
            assert worker.ask("replay", 1) == {"replay": "0"}
            assert region.tier_state().where == "device"  # the graph launch resumed it
        back = worker.ask("check", 3)  # the next call resumes it
        assert back == {"check": "0", "same": "1", "ptrs": first["ptrs"]}, (cycle, back)
        assert region.tier_state().where == "device"
        assert nvml_used(libs) == 64 * MIB
        assert worker.ask(f"write {cycle + 7}", 1)["write"] == "0"  # new bytes survive the next move
    state = region.tier_state()
    assert (state.freezes, state.resumes) == (12, 12)
    assert worker.finish() == 0


def test_opted_out_worker_keeps_plain_allocations(
    libs: dict[str, Path], tierwork: Path, worker_region: tuple[Region, Path], tmp_path: Path
) -> None:
    region, path = worker_region
    region.set_tier_enabled(False)  # the workload's annotation vram-tiering: "false"
    worker = start(libs, tierwork, path, tmp_path)
    assert worker.ask("alloc 2 8", 3)["alloc"] == "0"
    region.request_tier("host")
    time.sleep(0.2)  # nothing watches for requests: there must be no effect to wait for
    assert region.tier_state().host_bytes == 0
    assert nvml_used(libs) == 16 * MIB
    assert worker.ask("check", 3)["same"] == "1"
    worker.finish()


def test_two_tenants_past_the_gpu_both_finish_with_their_data(
    libs: dict[str, Path], tierwork: Path, tmp_path: Path, regions: list[Region]
) -> None:
    """Limits summing to 1.5x the simulated GPU: the idle one is frozen for the other."""
    gpu = 256 * MIB
    extra = {"TF_SIM_GPU_VRAM": str(gpu)}
    a = start(libs, tierwork, tmp_path / "a.shm", tmp_path, **extra)
    a_first = a.ask("alloc 6 32", 3)
    assert a_first["alloc"] == "0"  # 192 MiB of 256
    b = start(libs, tierwork, tmp_path / "b.shm", tmp_path, **extra)
    b_first = b.ask("alloc 6 32", 3)
    assert b_first["alloc"] == "0"  # what does not fit beside a is made on the warm tier
    assert regions[1].tier_state().where == "host"
    assert b.ask("check", 3)["same"] == "1"
    regions[0].request_tier("host")  # the hypervisor's choice: a is idle
    assert settle(regions[0]).where == "host"
    regions[1].request_tier("resume")  # and b is active: onto the device, now that there is room
    assert settle(regions[1]).where == "device"
    assert b.ask("check", 3) == {"check": "0", "same": "1", "ptrs": b_first["ptrs"]}
    assert b.finish() == 0
    regions[0].request_tier("resume")  # b is gone: a comes back (it would on its next call too)
    assert settle(regions[0]).where == "device"
    assert a.ask("check", 3) == {"check": "0", "same": "1", "ptrs": a_first["ptrs"]}
    assert regions[0].tier_state().where == "device"
    assert a.finish() == 0


def test_a_worker_sold_more_than_the_gpu_allocates_past_it_on_the_warm_tier(
    libs: dict[str, Path], tierwork: Path, tmp_path: Path
) -> None:
    """A limit past the GPU (virtual VRAM a pool sells): what does not fit on the device is made
    in host memory at the same kind of pointer; kernels and copies see the right bytes, and it
    moves onto the device once there is room."""
    extra = {"TF_SIM_GPU_VRAM": str(256 * MIB)}
    with Region.create(tmp_path / "big.shm", [DeviceSpec("0", 384 * MIB)]) as region:
        region.set_tier_enabled(True)
        worker = start(libs, tierwork, tmp_path / "big.shm", tmp_path, **extra)
        first = worker.ask("alloc 10 32", 3)
        assert first["alloc"] == "0"  # 320 MiB on a 256 MiB GPU
        state = region.tier_state()
        assert state.where == "host"
        assert 64 * MIB <= state.host_bytes <= 96 * MIB  # the part past the device (sim overheads aside)
        assert nvml_used(libs) <= 256 * MIB
        assert worker.ask("check", 3) == {"check": "0", "same": "1", "ptrs": first["ptrs"]}
        assert worker.ask("write 7", 1)
        assert worker.ask("check", 3)["same"] == "1"
        assert worker.finish() == 0

    with Region.create(tmp_path / "plain.shm", [DeviceSpec("0", 384 * MIB)]) as region:
        region.set_tier_enabled(False)  # opted out: today's behaviour, out of memory at the GPU
        worker = start(libs, tierwork, tmp_path / "plain.shm", tmp_path, **extra)
        assert worker.ask("alloc 10 32", 3)["alloc"] != "0"
        assert region.tier_state().host_bytes == 0
        worker.finish()


def test_host_memory_running_out_leaves_the_worker_on_the_device(
    libs: dict[str, Path], tierwork: Path, worker_region: tuple[Region, Path], tmp_path: Path
) -> None:
    region, path = worker_region
    worker = start(libs, tierwork, path, tmp_path, TF_SIM_HOST_MEM=str(40 * MIB))
    first = worker.ask("alloc 4 16", 3)
    region.request_tier("host")
    state = settle(region)
    assert state.acked
    assert state.failures == ("host memory exhausted",)
    assert state.host_bytes == 32 * MIB  # what fit moved; the rest stayed on the device
    assert worker.ask("check", 3) == {"check": "0", "same": "1", "ptrs": first["ptrs"]}
    worker.finish()


def test_a_full_tier_directory_leaves_the_worker_on_the_host(
    libs: dict[str, Path], tierwork: Path, worker_region: tuple[Region, Path], tmp_path: Path
) -> None:
    region, path = worker_region
    FILE_LIMIT.append(20 * MIB)  # the tier file cannot grow past 20 MiB
    try:
        worker = start(libs, tierwork, path, tmp_path)
    finally:
        FILE_LIMIT.clear()
    first = worker.ask("alloc 2 16", 3)
    region.request_tier("disk")
    state = settle(region)
    assert state.failures == ("tier directory refused",)
    assert (state.host_bytes, state.disk_bytes) == (16 * MIB, 16 * MIB)  # the second stayed on the host
    assert worker.ask("check", 3) == {"check": "0", "same": "1", "ptrs": first["ptrs"]}
    assert region.tier_state().where == "device"
    worker.finish()


def test_a_kill_during_a_move_leaves_exact_books(
    libs: dict[str, Path], tierwork: Path, worker_region: tuple[Region, Path], tmp_path: Path
) -> None:
    region, path = worker_region
    # A slow PCIe makes the move long enough to kill the process in the middle of it.
    worker = start(libs, tierwork, path, tmp_path, TF_SIM_PCIE_MBPS="200")
    worker.ask("alloc 8 16", 3)
    region.request_tier("host")
    deadline = time.monotonic() + 20
    while region.tier_state().host_bytes == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    mid = region.tier_state()
    assert 0 < mid.host_bytes < 128 * MIB
    assert not mid.acked
    os.kill(worker.proc.pid, signal.SIGKILL)
    worker.finish()
    region.sweep()
    state = region.tier_state()
    assert (state.host_bytes, state.disk_bytes, state.pinned_bytes) == (0, 0, 0)
    assert region.devices()[0].vram_used_bytes == 0
    assert nvml_used(libs) == 0
    assert list(tmp_path.glob("*tier*")) == []  # the unnamed tier file leaves nothing behind


@pytest.mark.parametrize("tiered", [True, False])
def test_legacy_ipc_of_movable_memory_is_refused_with_advice(
    libs: dict[str, Path], tierwork: Path, worker_region: tuple[Region, Path], tmp_path: Path, tiered: bool
) -> None:
    region, path = worker_region
    region.set_tier_enabled(tiered)
    worker = start(libs, tierwork, path, tmp_path)
    worker.ask("alloc 1 4", 3)
    answer = worker.ask("ipc", 1)["ipc"]
    assert worker.finish() == 0
    if tiered:  # the driver refuses IPC handles of VMM memory; the shim says what to do
        assert answer != "0"
        assert 'vram-tiering: "false"' in worker.stderr
    else:
        assert answer == "0"
        assert worker.stderr == ""


def test_a_forked_child_without_cuda_does_not_hold_up_requests(
    libs: dict[str, Path], tierwork: Path, worker_region: tuple[Region, Path], tmp_path: Path
) -> None:
    region, path = worker_region
    worker = start(libs, tierwork, path, tmp_path)
    first = worker.ask("alloc 2 8", 3)
    assert worker.ask("fork", 1) == {"forked": "1"}
    deadline = time.monotonic() + 10
    while len([p for p in region.processes() if p.alive]) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)  # the child claims a slot of its own right after the fork
    assert len([p for p in region.processes() if p.alive]) == 2
    region.request_tier("host")
    state = settle(region)
    assert (state.acked, state.where, state.host_bytes) == (True, "host", 16 * MIB)
    assert worker.ask("check", 3) == {"check": "0", "same": "1", "ptrs": first["ptrs"]}
    assert worker.finish() == 0


GATED_ROUTES = (
    "memcpy2d",
    "memcpy2dasync",
    "memcpy2dunaligned",
    "memcpy3d",
    "memcpy3dasync",
    "memcpy3dpeer",
    "batch",
    "memsetd16",
    "memsetd16async",
    "memsetd2d8",
    "memsetd2d16",
    "memsetd2d32",
    "memsetd2d8async",
    "memsetd2d16async",
    "memsetd2d32async",
    "peer",
    "peerasync",
    "writevalue32",
    "waitvalue32",
    "hostfunc",
    "callback",
    "upload",
    "prefetch",
    "pointer",
    "range",
)


def test_every_route_to_movable_memory_resumes_a_worker_frozen_to_disk(
    libs: dict[str, Path], tierwork: Path, worker_region: tuple[Region, Path], tmp_path: Path
) -> None:
    """Each call is the first after a freeze to disk: it must resume before the driver runs it
    (on a GPU the unmapped VA is an illegal address, as on the simulator), and work on the
    bytes as they were."""
    region, path = worker_region
    worker = start(libs, tierwork, path, tmp_path)
    first = worker.ask("alloc 2 4", 3)
    assert first["alloc"] == "0"
    failed = {}
    for name in GATED_ROUTES:
        region.request_tier("disk")
        assert settle(region).where == "disk", name
        answer = worker.ask(f"route {name}", 1)
        where = region.tier_state().where
        verified = worker.ask("verify", 2)
        if (answer, where, verified["verify"]) != ({"route": "0"}, "device", "1"):
            failed[name] = (answer, where, verified)
    assert failed == {}
    assert worker.ask("check", 3) == {"check": "0", "same": "1", "ptrs": first["ptrs"]}
    assert worker.finish() == 0


@pytest.mark.parametrize("tiered", [True, False])
def test_pitched_memory_moves_with_the_drivers_pitch(
    libs: dict[str, Path], tierwork: Path, worker_region: tuple[Region, Path], tmp_path: Path, tiered: bool
) -> None:
    """cuMemAllocPitch_v2 memory is movable too, with the pitch the driver gives the same row."""
    region, path = worker_region
    region.set_tier_enabled(tiered)
    worker = start(libs, tierwork, path, tmp_path)
    made = worker.ask("pitch 1000 4096", 2)  # 4 MiB of 1024-byte rows: the driver pads to 512
    assert made == {"pitchalloc": "0", "pitch": "1024"}
    assert region.devices()[0].vram_used_bytes == 1024 * 4096  # charged with its padding
    region.request_tier("disk")
    state = settle(region)
    if tiered:
        assert (state.where, state.disk_bytes, state.pinned_bytes) == ("disk", 4 * MIB, 0)
        assert nvml_used(libs) == 0
    assert worker.ask("pitchcheck", 1) == {"pitchsame": "1"}
    assert region.tier_state().where == "device"
    assert worker.finish() == 0


O_DIRECT, O_TMPFILE = 0o40000, 0o20000000  # x86-64 Linux (the open flags fdinfo shows)


def _tier_file_flags(pid: int, tier_dir: Path) -> list[int]:
    """Open flags of the process's unnamed (O_TMPFILE) files in tier_dir: the tier file."""
    flags = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(str(tier_dir)) and "(deleted)" in target:
            info = Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text()
            flags.append(int(info.split("flags:")[1].split()[0], 8))
    return [f for f in flags if f & O_TMPFILE]


def _disk_round_trip(worker: Worker, region: Region, first: dict[str, str], rounds: int) -> None:
    for cycle in range(rounds):
        region.request_tier("disk")
        state = settle(region)
        assert (state.where, state.failures, state.host_bytes, state.disk_bytes) == ("disk", (), 0, 18 * MIB)
        assert worker.ask("check", 3) == {"check": "0", "same": "1", "ptrs": first["ptrs"]}, cycle
        assert worker.ask(f"write {cycle + 3}", 1)["write"] == "0"


def test_the_disk_tier_writes_with_o_direct_in_whole_blocks(
    libs: dict[str, Path], tierwork: Path, worker_region: tuple[Region, Path], tmp_path: Path
) -> None:
    """6 MiB buffers: a full and a half bounce block each, so both buffers and the short last
    block are used; straight from the device (no host tier in between), and back."""
    region, path = worker_region
    worker = start(libs, tierwork, path, tmp_path, TF_LOG_LEVEL="info")
    first = worker.ask("alloc 3 6", 3)
    assert first["alloc"] == "0"
    region.request_tier("disk")
    assert settle(region).where == "disk"
    flags = _tier_file_flags(worker.proc.pid, tmp_path)
    assert len(flags) == 1
    assert flags[0] & O_DIRECT
    assert worker.ask("check", 3) == {"check": "0", "same": "1", "ptrs": first["ptrs"]}
    _disk_round_trip(worker, region, first, 3)
    assert worker.finish() == 0
    assert "O_DIRECT" not in worker.stderr


@pytest.fixture(scope="module")
def no_odirect(cc: Callable[..., Path]) -> Path:
    return cc("no_odirect.so", "no_odirect.c", flags=("-shared", "-fPIC", "-ldl"))


@pytest.mark.parametrize("refused_at", ["open", "io"])
def test_a_tier_directory_without_o_direct_falls_back_to_buffered_io_and_says_so_once(
    libs: dict[str, Path],
    tierwork: Path,
    worker_region: tuple[Region, Path],
    no_odirect: Path,
    refused_at: str,
) -> None:
    """A filesystem that refuses O_DIRECT at open (old tmpfs) or at the first transfer (some
    FUSE filesystems): the tier file goes on buffered, the data intact, one line in the log."""
    region, path = worker_region
    tmp_path = path.parent
    worker = start(libs, tierwork, path, tmp_path, LD_PRELOAD=f"{libs['shim']} {no_odirect}", NO_ODIRECT=refused_at)
    first = worker.ask("alloc 3 6", 3)
    region.request_tier("disk")
    assert settle(region).where == "disk"
    flags = _tier_file_flags(worker.proc.pid, tmp_path)
    assert len(flags) == 1
    assert not flags[0] & O_DIRECT
    assert worker.ask("check", 3) == {"check": "0", "same": "1", "ptrs": first["ptrs"]}
    _disk_round_trip(worker, region, first, 2)
    assert worker.finish() == 0
    assert worker.stderr.count("refuses O_DIRECT") == 1, worker.stderr


SIM_UUID = "GPU-5153494d-0000-4000-8000-0000000000{:02x}"  # physical device N of the simulator


def test_memory_of_every_context_moves_and_the_callers_context_is_kept(
    libs: dict[str, Path], tierwork: Path, tmp_path: Path
) -> None:
    """A process with memory on two devices (a context each): a freeze drains and moves both,
    each in its own context; a resume run by a call from device 1's context leaves that
    context current."""
    path = tmp_path / "two.shm"
    with Region.create(
        path, [DeviceSpec(SIM_UUID.format(0), 8 << 30), DeviceSpec(SIM_UUID.format(1), 8 << 30)]
    ) as region:
        region.set_tier_enabled(True)
        worker = start(libs, tierwork, path, tmp_path, TF_SIM_GPU_COUNT="2")
        first = worker.ask("alloc 2 4", 3)
        assert first["alloc"] == "0"
        assert worker.ask("device 1", 1) == {"device": "0"}
        assert worker.ask("more 2", 1) == {"more": "0"}
        assert nvml_used(libs) == 8 * MIB  # device 0's share; device 1 holds the rest
        for to in ("host", "disk", "disk"):
            region.request_tier(to)
            state = settle(region)
            assert (state.where, state.failures, state.pinned_bytes) == (to, (), 0)
            assert state.host_bytes + state.disk_bytes == 16 * MIB
            back = worker.ask("check", 3)
            assert (back["check"], back["same"]) == ("0", "1"), to
            assert worker.ask("whoami", 1) == {"ctxdev": "1"}  # the resume put the caller's context back
            assert region.tier_state().where == "device"
        assert worker.finish() == 0


def test_a_resume_from_disk_without_device_room_lands_in_host_memory_and_runs(
    libs: dict[str, Path], tierwork: Path, tmp_path: Path, regions: list[Region]
) -> None:
    """Disk goes straight back to the device when it has room; what finds none goes to the
    warm tier instead of failing, and the call runs on it."""
    extra = {"TF_SIM_GPU_VRAM": str(256 * MIB)}
    a = start(libs, tierwork, tmp_path / "a.shm", tmp_path, **extra)
    a_first = a.ask("alloc 6 32", 3)
    regions[0].request_tier("disk")
    assert settle(regions[0]).disk_bytes == 192 * MIB
    b = start(libs, tierwork, tmp_path / "b.shm", tmp_path, **extra)
    assert b.ask("alloc 6 32", 3)["alloc"] == "0"  # the GPU now has 64 MiB left
    assert a.ask("check", 3) == {"check": "0", "same": "1", "ptrs": a_first["ptrs"]}
    state = regions[0].tier_state()
    assert (state.where, state.failures, state.disk_bytes) == ("host", ("no device memory",), 0)
    assert state.host_bytes == 128 * MIB  # two buffers found room on the device
    assert b.finish() == 0
    assert a.finish() == 0
