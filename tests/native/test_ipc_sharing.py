"""Memory one process of a worker exports and another of the same worker imports is ONE
physical allocation on the driver: the worker is charged for it once, for as long as any holder
holds it, exactly after a SIGKILL of any holder; an import by another worker stays charged to
the importer.  Legacy IPC (cuIpcGetMemHandle/cuIpcOpenMemHandle) and stream-ordered pool
pointers (cuMemPoolExportPointer/cuMemPoolImportPointer), each holder a process of its own."""

from __future__ import annotations

import itertools
import random
import signal
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemons.region import describe
from tfcore.ipc import Region, layout

from .conftest import make_region, sim_env

MIB = 1 << 20
LIMIT = 256 * MIB
SIZE = 100 * MIB
KINDS = ("ipc", "pool")


@pytest.fixture(scope="module")
def tool(cc: Callable[..., Path]) -> Path:
    return cc("ipcshare", "ipcshare.c", flags=("-ldl",))


class Holder:
    """A process of a worker holding (or about to hold) shared memory, driven a step at a time."""

    def __init__(self, tool: Path, libs: dict[str, Path], region: Path) -> None:
        env = sim_env(libs, shim=True, TF_SHM_PATH=str(region))
        self.process = subprocess.Popen([str(tool)], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.pid = int(self._read("ready"))

    def _read(self, name: str) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        key, _, value = line.partition("=")
        assert key == name, f"expected {name}=..., got {line!r}"
        return value

    def ask(self, command: str, answer: str) -> str:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self._read(answer)

    def allocate_and_export(self, kind: str, mib: int) -> str:
        """Allocates mib MiB and exports it; returns what an importer needs."""
        if kind == "ipc":
            assert self.ask(f"alloc {mib}", "alloc_rc") == "0"
            return self.ask("export", "handle")
        assert self.ask(f"poolalloc {mib}", "poolalloc_rc") == "0"
        return self.ask("poolexport", "pool")

    def import_(self, kind: str, exported: str) -> str:
        """Imports what allocate_and_export returned; the driver's answer."""
        if kind == "ipc":
            return self.ask(f"open {exported}", "open_rc")
        return self.ask(f"poolimport {exported}", "import_rc")

    def let_go_of_import(self, kind: str) -> None:
        assert self.ask("close" if kind == "ipc" else "free", "close_rc" if kind == "ipc" else "free_rc") == "0"

    def free(self) -> None:
        assert self.ask("free", "free_rc") == "0"

    def free_bytes(self) -> int:
        """What cuMemGetInfo says is free to this worker."""
        info = dict(field.split(":") for field in self.ask("info", "info").split(","))
        assert info["rc"] == "0"
        return int(info["free"])

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def close(self) -> None:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)
        self.process.stdout.close()


@pytest.fixture
def holders(tool: Path, libs: dict[str, Path]) -> Iterator[Callable[[Path], Holder]]:
    with ExitStack() as stack:

        def start(region: Path) -> Holder:
            holder = Holder(tool, libs, region)
            stack.callback(holder.close)
            return holder

        yield start


def used(region: Path) -> int:
    """The worker's usage as the hypervisor reads it (admission, metrics, reconcile)."""
    with Region.open(region) as r:
        return r.devices()[0].vram_used_bytes


def sweep(region: Path) -> None:
    with Region.open(region, readonly=False) as r:
        r.sweep()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("first", ["exporter", "importer"])
def test_an_import_inside_the_exporters_worker_is_charged_once(
    holders: Callable[[Path], Holder], tmp_path: Path, kind: str, first: str
) -> None:
    region = make_region(tmp_path / "w.shm", ("0", LIMIT))
    exporter, importer = holders(region), holders(region)
    assert importer.import_(kind, exporter.allocate_and_export(kind, 100)) == "0"
    assert used(region) == SIZE
    assert exporter.free_bytes() == importer.free_bytes() == LIMIT - SIZE
    with Region.open(region) as r:
        [shared] = r.shared()
        shown = describe(r)["shared"]  # `tensor-fusion region show`
    assert (shared.bytes, len(shared.holders)) == (SIZE, 2)
    assert shown == [{"entry": shared.entry, "device": 0, "bytes": SIZE, "holder_slots": list(shared.holders)}]
    # Whoever lets go first, the other keeps the memory alive: still charged, once.
    (exporter.free if first == "exporter" else lambda: importer.let_go_of_import(kind))()
    assert used(region) == SIZE
    (importer.let_go_of_import(kind) if first == "exporter" else exporter.free())
    assert used(region) == 0
    with Region.open(region) as r:
        assert r.shared() == []


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("victim", ["exporter", "importer"])
def test_books_are_exact_after_a_holder_is_killed(
    holders: Callable[[Path], Holder], tmp_path: Path, kind: str, victim: str
) -> None:
    region = make_region(tmp_path / "w.shm", ("0", LIMIT))
    exporter, importer = holders(region), holders(region)
    assert importer.import_(kind, exporter.allocate_and_export(kind, 100)) == "0"
    killed, survivor = (exporter, importer) if victim == "exporter" else (importer, exporter)
    killed.kill()
    sweep(region)
    assert used(region) == SIZE  # the survivor still holds it
    if survivor is importer:
        importer.let_go_of_import(kind)
    else:
        exporter.free()
    assert used(region) == 0
    # Both killed while holding: the sweep returns everything.
    again_exporter, again_importer = holders(region), holders(region)
    assert again_importer.import_(kind, again_exporter.allocate_and_export(kind, 100)) == "0"
    assert used(region) == SIZE
    again_exporter.kill()
    again_importer.kill()
    sweep(region)
    assert used(region) == 0


@pytest.mark.parametrize("kind", KINDS)
def test_a_worker_at_its_limit_can_import_its_own_memory(
    holders: Callable[[Path], Holder], tmp_path: Path, kind: str
) -> None:
    region = make_region(tmp_path / "w.shm", ("0", LIMIT))
    exporter, importer = holders(region), holders(region)
    exported = exporter.allocate_and_export(kind, 200)
    assert exporter.ask("try 56", "try_rc") == "0"
    assert exporter.ask("alloc 56", "alloc_rc") == "0"  # the worker is at its limit
    assert importer.import_(kind, exported) == "0"  # already paid for
    assert used(region) == LIMIT
    assert importer.ask("try 1", "try_rc") == "2"  # and nothing more fits


@pytest.mark.parametrize("kind", KINDS)
def test_an_import_from_another_worker_is_charged_to_the_importer(
    holders: Callable[[Path], Holder], tmp_path: Path, kind: str
) -> None:
    exporting = make_region(tmp_path / "a.shm", ("0", LIMIT))
    importing = make_region(tmp_path / "b.shm", ("0", LIMIT))
    exporter, importer = holders(exporting), holders(importing)
    assert importer.import_(kind, exporter.allocate_and_export(kind, 100)) == "0"
    assert (used(exporting), used(importing)) == (SIZE, SIZE)
    exporter.free()
    assert (used(exporting), used(importing)) == (0, SIZE)  # the import keeps it alive
    assert importer.free_bytes() == LIMIT - SIZE
    importer.let_go_of_import(kind)
    assert used(importing) == 0


def test_the_shared_table_stays_exact_under_random_kills(cc: Callable[..., Path], tmp_path: Path) -> None:
    """Processes publish, join and leave entries as fast as they can (each checks at every step
    that nothing it holds was taken away while it lives) and are SIGKILLed at random
    instructions, the sweep running between kills; once all are dead and swept, nothing is
    left counted and every entry is free."""
    racer = cc("shared_race", "shared_race.c")
    region = make_region(tmp_path / "w.shm", ("0", 0))
    rng = random.Random(12)
    seeds = itertools.count()

    def start() -> subprocess.Popen[str]:
        process = subprocess.Popen([str(racer), str(region), str(next(seeds))], stdout=subprocess.PIPE, text=True)
        assert process.stdout is not None
        assert process.stdout.readline().startswith("ready="), "the racer could not claim a slot"
        return process

    def stop(process: subprocess.Popen[str]) -> None:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert process.stdout is not None
        out = process.stdout.read()
        process.stdout.close()
        assert process.returncode == -signal.SIGKILL, out

    racers = [start() for _ in range(4)]
    for _ in range(40):
        time.sleep(rng.uniform(0.002, 0.02))
        stop(racers.pop(rng.randrange(len(racers))))
        sweep(region)
        racers.append(start())
    for process in racers:
        stop(process)
    sweep(region)
    assert used(region) == 0
    with Region.open(region) as r:
        assert r.shared() == []
    table = region.read_bytes()[layout.SHARED_OFFSET :]
    keys = [struct.unpack_from("<Q", table, i * layout.SHARED.size)[0] for i in range(layout.MAX_SHARED)]
    assert keys == [0] * layout.MAX_SHARED  # claims cut short and frees cut short: all settled


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=4 * layout.SHARED.size * 8), st.integers(0, 2**32 - 1), st.integers(0, layout.MAX_SHARED - 8))
def test_a_scribbled_shared_table_is_read_and_swept_safely(table: bytes, water: int, first: int) -> None:
    """The tenant can write its state file: whatever it puts in the shared table, readers and
    the sweep stay inside the file and report only well-formed figures."""
    with tempfile.TemporaryDirectory() as d:
        path = make_region(Path(d) / "w.shm", ("0", LIMIT))
        with open(path, "r+b") as f:
            f.seek(layout.HEADER.offsets()["shared_high_water"][0])
            f.write(struct.pack("<I", water))
            f.seek(layout.SHARED_OFFSET + first * layout.SHARED.size)
            f.write(table)
            f.seek(layout.PROCS_OFFSET)  # a dead process in slot 0: the sweep drops its holds
            f.write(struct.pack("<i", 4_000_000))
        with Region.open(path, readonly=False) as r:
            [device] = r.devices()
            assert device.vram_used_bytes >= 0
            for shared in r.shared():
                assert 0 <= shared.entry < layout.MAX_SHARED
                assert shared.holders
                assert set(shared.holders) <= set(range(layout.MAX_PROCS))
            r.sweep()
            assert r.devices()[0].vram_used_bytes >= 0


@pytest.mark.parametrize(("kind", "mib"), [("ipc", 1), ("pool", 100)])  # under 2 MiB: plain, so IPC can export it
def test_sharing_in_a_worker_with_movable_memory(
    holders: Callable[[Path], Holder], tmp_path: Path, kind: str, mib: int
) -> None:
    """With VRAM tiering on, frees go through the tiering path (and its cache of freed
    allocations): a shared allocation is still let go through the shared table."""
    region = make_region(tmp_path / "w.shm", ("0", LIMIT))
    with Region.open(region, readonly=False) as r:
        r.set_tier_enabled(True)
    exporter, importer = holders(region), holders(region)
    for holder in (exporter, importer):
        assert holder.ask("try 4", "try_rc") == "0"  # movable memory, now in the cache
    cached = used(region)
    assert cached > 0
    assert importer.import_(kind, exporter.allocate_and_export(kind, mib)) == "0"
    assert used(region) == cached + mib * MIB
    exporter.free()
    assert used(region) == cached + mib * MIB  # the importer still holds it
    importer.let_go_of_import(kind)
    assert used(region) == cached
    with Region.open(region) as r:
        assert r.shared() == []
