"""VRAM tiering on the simulated GPU: freeze and resume bandwidth as a ratio to a plain
cuMemcpyDtoH of the same bytes (target >= 0.8), and what tiering costs a worker that is not
oversubscribed (tiering on, nothing frozen, over the same shim with tiering off).

The simulator moves bytes across "PCIe" at TF_SIM_PCIE_MBPS on its timeline, so both the plain
copy and the moves are bound by the same modelled link: the ratio shows what the mechanism adds
(per-allocation VMM calls, the watcher's poll, the drain), not the host's memcpy speed.  Freeze
and resume are timed from the hypervisor's request to the last process's acknowledgement.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.bench_shim import SOURCE as SHIM_CALLS
from bench.bench_shim import _run
from tfcore.ipc import DeviceSpec, Region
from tfcore.native import library_paths

REPO = Path(__file__).resolve().parents[1]
TIERWORK = REPO / "tests" / "native" / "c" / "tierwork.c"
# Slow enough that the modelled link, not the simulator's own memmove into fresh pages, bounds
# every copy (the model only adds time: a copy never ends before its memmove).
PCIE_MBPS = 500
BUFFERS, MIB_EACH = 4, 64
ROUNDS = 5
LAUNCHES = 200_000
CALLGRIND_LAUNCHES = 20_000
ALLOC_PAIRS, ALLOC_MIB = 200, 64
# The disk figures: a link this fast leaves the disk as what bounds a move to and from it.
DISK_PCIE_MBPS = 1_000_000  # a movable size: what a framework's caching allocator asks for


def _ask(proc: subprocess.Popen[str], line: str, answers: int) -> dict[str, str]:
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.write(line + "\n")
    proc.stdin.flush()
    return dict(proc.stdout.readline().strip().split("=", 1) for _ in range(answers))


def _timed_request(region: Region, to: str) -> float:
    start = time.monotonic()
    region.request_tier(to)
    while not region.tier_state().acked:
        time.sleep(0.0005)
    return time.monotonic() - start


def _tiered(tierwork: Path, base: dict[str, str], shim: Path, work: Path) -> dict[str, float]:
    """Freeze/resume vs plain copies, and the per-call figures of a worker with movable memory."""
    path = work / "bw.shm"
    with Region.create(path, [DeviceSpec("0", 64 << 30)]) as region:
        region.set_tier_enabled(True)
        env = dict(base, LD_PRELOAD=str(shim), TF_SHM_PATH=str(path), TF_TIER_DIR=str(work))
        proc = subprocess.Popen([str(tierwork)], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        _ask(proc, f"alloc {BUFFERS} {MIB_EACH}", 3)
        pair = float(_ask(proc, f"allocfree {ALLOC_PAIRS} {ALLOC_MIB}", 2)["allocfree_ns"])
        launch = statistics.median(float(_ask(proc, f"launches {LAUNCHES}", 2)["launch_ns"]) for _ in range(ROUNDS))
        plain, freeze, resume = [], [], []
        for _ in range(ROUNDS):
            plain.append(int(_ask(proc, "copyout", 2)["copyout_ns"]) / 1e9)
            freeze.append(_timed_request(region, "host"))
            resume.append(_timed_request(region, "resume"))
        assert proc.stdin is not None
        assert proc.stdout is not None
        proc.stdin.write("quit\n")
        proc.stdin.close()
        proc.wait(timeout=60)
        proc.stdout.close()
    return {
        "plain_s": statistics.median(plain),
        "freeze_s": statistics.median(freeze),
        "resume_s": statistics.median(resume),
        "pair_ns": pair,
        "launch_ns": launch,
    }


def _plain_file(work: Path, nbytes: int) -> tuple[float, float]:
    """A plain write (then fdatasync) and a cold read (page cache dropped for the file) of the
    same bytes in the same directory, in 4 MiB calls: what the disk itself gives."""
    chunk = os.urandom(4 << 20)
    path = work / "plain.bin"
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    start = time.monotonic()
    for _ in range(nbytes // len(chunk)):
        os.write(fd, chunk)
    os.fdatasync(fd)
    wrote = time.monotonic() - start
    os.close(fd)
    fd = os.open(path, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    start = time.monotonic()
    while os.read(fd, len(chunk)):
        pass
    read = time.monotonic() - start
    os.close(fd)
    path.unlink()
    return wrote, read


def _disk(tierwork: Path, base: dict[str, str], shim: Path, work: Path) -> dict[str, float]:
    """Freeze to disk and resume from it, the link modelled so fast that the disk and the
    simulator's own memory traffic bound both; against plain file I/O of the same bytes."""
    path = work / "disk.shm"
    with Region.create(path, [DeviceSpec("0", 64 << 30)]) as region:
        region.set_tier_enabled(True)
        env = dict(base, LD_PRELOAD=str(shim), TF_SHM_PATH=str(path), TF_TIER_DIR=str(work))
        proc = subprocess.Popen([str(tierwork)], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        _ask(proc, f"alloc {BUFFERS} {MIB_EACH}", 3)
        to_disk, back, plain_write, plain_read = [], [], [], []
        for _ in range(ROUNDS):
            to_disk.append(_timed_request(region, "disk"))
            back.append(_timed_request(region, "resume"))
            wrote, read = _plain_file(work, BUFFERS * MIB_EACH << 20)
            plain_write.append(wrote)
            plain_read.append(read)
        assert _ask(proc, "check", 3)["same"] == "1"
        assert proc.stdin is not None
        assert proc.stdout is not None
        proc.stdin.write("quit\n")
        proc.stdin.close()
        proc.wait(timeout=60)
        proc.stdout.close()
    return {
        "to_disk_s": statistics.median(to_disk),
        "from_disk_s": statistics.median(back),
        "plain_write_s": statistics.median(plain_write),
        "plain_read_s": statistics.median(plain_read),
    }


def _untiered(tierwork: Path, base: dict[str, str], shim: Path, work: Path) -> tuple[float, float]:
    """The same alloc/free pairs and launches (after the same allocations) with tiering off."""
    path = work / "plain.shm"
    with Region.create(path, [DeviceSpec("0", 64 << 30)]):
        pass
    env = dict(base, LD_PRELOAD=str(shim), TF_SHM_PATH=str(path))
    script = f"alloc {BUFFERS} {MIB_EACH}\nallocfree {ALLOC_PAIRS} {ALLOC_MIB}\n"
    script += f"launches {LAUNCHES}\n" * ROUNDS + "quit\n"
    done = subprocess.run(
        [str(tierwork)], env=env, input=script, capture_output=True, text=True, timeout=300, check=True
    )
    rows = [x.split("=", 1) for x in done.stdout.split() if "=" in x]
    launch = statistics.median(float(v) for k, v in rows if k == "launch_ns")
    return float(dict(rows)["allocfree_ns"]), launch


def _launch_instructions(tierwork: Path, env: dict[str, str], work: Path) -> float:
    """Instructions per launch of a process holding movable (or, untiered, plain) memory, by
    callgrind: the difference between runs of n and 2n launches, so start-up cancels out."""
    counts = []
    for launches in (CALLGRIND_LAUNCHES, 2 * CALLGRIND_LAUNCHES):
        out = work / "callgrind.out"
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", str(tierwork)],
            env=env,
            input=f"alloc 2 4\nlaunches {launches}\nquit\n",
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        found = re.search(r"Collected : (\d+)", done.stderr)
        if found is None:
            raise RuntimeError(f"no instruction count from callgrind: {done.stderr[-500:]}")
        counts.append(int(found.group(1)))
    return (counts[1] - counts[0]) / CALLGRIND_LAUNCHES


def _small_calls(binary: Path, base: dict[str, str], shim: Path, work: Path) -> dict[str, tuple[float, float]]:
    """bench_shim's program (1 MiB allocations: below the movable size) with tiering off and on."""
    off, on = work / "off.shm", work / "on.shm"
    with Region.create(off, [DeviceSpec("0", 64 << 30)]):
        pass
    with Region.create(on, [DeviceSpec("0", 64 << 30)]) as r:
        r.set_tier_enabled(True)
    runs_off, runs_on = [], []
    for _ in range(ROUNDS):
        runs_off.append(_run(binary, dict(base, LD_PRELOAD=str(shim), TF_SHM_PATH=str(off))))
        runs_on.append(_run(binary, dict(base, LD_PRELOAD=str(shim), TF_SHM_PATH=str(on), TF_TIER_DIR=str(work))))
    return {
        f"{figure} 1 MiB (stays plain)": (
            statistics.median(r[figure] for r in runs_off),
            statistics.median(r[figure] for r in runs_on),
        )
        for figure in ("cuMemAlloc+cuMemFree",)
    }


def main() -> None:
    gcc = shutil.which("gcc")
    if gcc is None:
        print(json.dumps({"bench": "tiering", "skipped": "gcc not found"}))
        return
    libs = library_paths()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        include = str(REPO / "ext" / "include")
        tierwork, calls = work / "tierwork", work / "shim_calls"
        for source, out in ((TIERWORK, tierwork), (SHIM_CALLS, calls)):
            subprocess.run([gcc, "-std=gnu11", "-O2", "-I", include, str(source), "-o", str(out), "-ldl"], check=True)
        base = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "LD_", "CUDA_"))}
        base.update(LD_LIBRARY_PATH=str(libs["simcuda"].parent), TF_SIM_WAVE_NS="0")
        tiered = _tiered(
            tierwork, dict(base, TF_SIM_STATE=str(work / "s1"), TF_SIM_PCIE_MBPS=str(PCIE_MBPS)), libs["shim"], work
        )
        disk = _disk(
            tierwork,
            dict(base, TF_SIM_STATE=str(work / "s5"), TF_SIM_PCIE_MBPS=str(DISK_PCIE_MBPS)),
            libs["shim"],
            work,
        )
        plain_pair, plain_launch = _untiered(tierwork, dict(base, TF_SIM_STATE=str(work / "s2")), libs["shim"], work)
        costs = _small_calls(calls, dict(base, TF_SIM_STATE=str(work / "s3")), libs["shim"], work)
        instructions: tuple[float, float] | None = None
        if shutil.which("valgrind") is not None:
            regions = []
            for name, tiered_region in (("i-off.shm", False), ("i-on.shm", True)):
                with Region.create(work / name, [DeviceSpec("0", 64 << 30)]) as r:
                    r.set_tier_enabled(tiered_region)
                env = dict(base, TF_SIM_STATE=str(work / "s4"), LD_PRELOAD=str(libs["shim"]))
                regions.append(dict(env, TF_SHM_PATH=str(work / name), TF_TIER_DIR=str(work)))
            off_i, on_i = (_launch_instructions(tierwork, env, work) for env in regions)
            instructions = (off_i, on_i)
    moved = BUFFERS * MIB_EACH << 20
    for figure, seconds in (("freeze to host", tiered["freeze_s"]), ("resume from host", tiered["resume_s"])):
        print(
            json.dumps(
                {
                    "bench": "tiering",
                    "figure": figure,
                    "driver": "simulated",
                    "bytes": moved,
                    "pcie_mbps_modelled": PCIE_MBPS,
                    "seconds": round(seconds, 4),
                    "plain_dtoh_seconds": round(tiered["plain_s"], 4),
                    "ratio_to_plain_memcpy": round(tiered["plain_s"] / seconds, 3),
                    "target_ratio": 0.8,
                    "rounds": ROUNDS,
                }
            )
        )
    for figure, seconds, plain, plain_name in (
        ("freeze to disk", disk["to_disk_s"], disk["plain_write_s"], "plain_write_fdatasync_seconds"),
        ("resume from disk", disk["from_disk_s"], disk["plain_read_s"], "plain_cold_read_seconds"),
    ):
        print(
            json.dumps(
                {
                    "bench": "tiering",
                    "figure": figure,
                    "driver": "simulated",
                    "bytes": moved,
                    "seconds": round(seconds, 4),
                    plain_name: round(plain, 4),
                    "ratio_to_plain_file_io": round(plain / seconds, 3),
                    "rounds": ROUNDS,
                }
            )
        )
    costs[f"cuMemAlloc+cuMemFree {ALLOC_MIB} MiB (movable)"] = (plain_pair, tiered["pair_ns"])
    costs["cuLaunchKernel with movable memory (the gate)"] = (plain_launch, tiered["launch_ns"])
    if instructions is not None:
        print(
            json.dumps(
                {
                    "bench": "tiering",
                    "figure": "cuLaunchKernel with movable memory (the gate): instructions",
                    "driver": "simulated",
                    "shim_instructions_per_call": round(instructions[0], 1),
                    "tiered_instructions_per_call": round(instructions[1], 1),
                    "added_instructions_per_call": round(instructions[1] - instructions[0], 1),
                }
            )
        )
    for figure, (off, on) in costs.items():
        print(
            json.dumps(
                {
                    "bench": "tiering",
                    "figure": f"{figure}, tiering on, nothing frozen",
                    "driver": "simulated",
                    "shim_ns_per_call": round(off, 1),
                    "tiered_ns_per_call": round(on, 1),
                    "ratio_tiered_over_shim": round(on / off, 3),
                    "target_ratio": 1.02,
                    "rounds": ROUNDS,
                }
            )
        )


if __name__ == "__main__":
    main()
