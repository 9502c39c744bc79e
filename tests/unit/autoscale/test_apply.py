"""The apply plan never over-commits a GPU, whatever the sequence of resizes."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from tfcore.autoscale.apply import GPULedger, Grant, WorkerGrant, plan
from tfcore.model.annotations import TFLOPS_REQUEST, VRAM_LIMIT

MIB = 1024**2


def test_scale_up_is_capped_by_free_room_shared_among_growing_workers() -> None:
    ledger = {"g0": GPULedger(100_000, 16384 * MIB, 60_000, 8192 * MIB)}
    workers = [WorkerGrant(f"ns/p{i}", ("g0",), Grant(10_000, 1024 * MIB, 10_000, 1024 * MIB)) for i in range(2)]
    result = plan(ledger, workers, Grant(50_000, 2048 * MIB, 60_000, 4096 * MIB))
    assert [c.after.tflops_milli for c in result.changes] == [30_000, 30_000]  # 40 free / 2
    assert all(c.capped for c in result.changes)
    assert result.ledger["g0"].allocated_tflops_milli == 100_000
    assert result.ledger["g0"].fits()
    assert result.changes[0].patch()[TFLOPS_REQUEST] == "30"
    assert result.changes[0].rollback()[VRAM_LIMIT] == "1Gi"


def test_unknown_gpu_never_grows_but_may_shrink() -> None:
    worker = WorkerGrant("ns/p", ("gone",), Grant(10_000, 1024 * MIB, 10_000, 1024 * MIB))
    grown = plan({}, [worker], Grant(20_000, 1024 * MIB, 20_000, 1024 * MIB))
    assert grown.changes[0].after.tflops_milli == 10_000
    shrunk = plan({}, [worker], Grant(5_000, 1024 * MIB, 5_000, 1024 * MIB))
    assert shrunk.changes[0].after.tflops_milli == 5_000


GPUS = ["g0", "g1", "g2"]


Scenario = tuple[dict[str, GPULedger], list[list[WorkerGrant]], list[list[Grant]]]


@st.composite
def scenario(draw: st.DrawFn) -> Scenario:
    capacity = {g: (draw(st.integers(1_000, 200_000)), draw(st.integers(1, 80)) * 1024 * MIB) for g in GPUS}
    ledger = {g: GPULedger(t, v, 0, 0) for g, (t, v) in capacity.items()}
    workloads: list[list[WorkerGrant]] = []
    for w in range(draw(st.integers(1, 3))):
        workers = []
        for i in range(draw(st.integers(1, 4))):
            gpus = tuple(draw(st.lists(st.sampled_from(GPUS), min_size=1, max_size=2, unique=True)))
            grant = Grant(draw(st.integers(0, 5_000)), draw(st.integers(0, 2048)) * MIB, 0, 0)
            if all(
                ledger[g].allocated_tflops_milli + grant.tflops_milli <= ledger[g].tflops_milli
                and ledger[g].allocated_vram_bytes + grant.vram_bytes <= ledger[g].vram_bytes
                for g in gpus
            ):
                for g in gpus:
                    ledger[g] = replace(
                        ledger[g],
                        allocated_tflops_milli=ledger[g].allocated_tflops_milli + grant.tflops_milli,
                        allocated_vram_bytes=ledger[g].allocated_vram_bytes + grant.vram_bytes,
                    )
                workers.append(WorkerGrant(f"ns{w}/p{i}", gpus, grant))
        workloads.append(workers)
    wanted = draw(
        st.lists(
            st.lists(
                st.builds(
                    Grant,
                    st.integers(0, 300_000),
                    st.integers(0, 90 * 1024 * MIB),
                    st.integers(0, 300_000),
                    st.integers(0, 90 * 1024 * MIB),
                ),
                min_size=len(workloads),
                max_size=len(workloads),
            ),
            min_size=1,
            max_size=6,
        )
    )
    return ledger, workloads, wanted


@settings(max_examples=300, deadline=None)
@given(scenario())
def test_no_apply_sequence_over_commits_any_gpu(
    case: tuple[dict[str, GPULedger], list[list[WorkerGrant]], list[list[Grant]]],
) -> None:
    ledger, workloads, rounds = case
    for wanted_per_workload in rounds:
        for index, wanted in enumerate(wanted_per_workload):
            result = plan(ledger, workloads[index], wanted)
            # Apply the changes one by one, as the controller does: every prefix must fit.
            step = dict(ledger)
            applied = {w.key: w for w in workloads[index]}
            for change in result.changes:
                for gpu in change.gpus:
                    entry = step[gpu]
                    step[gpu] = replace(
                        entry,
                        allocated_tflops_milli=entry.allocated_tflops_milli
                        + change.after.tflops_milli
                        - change.before.tflops_milli,
                        allocated_vram_bytes=entry.allocated_vram_bytes
                        + change.after.vram_bytes
                        - change.before.vram_bytes,
                    )
                    assert step[gpu].fits(), (gpu, step[gpu])
                assert change.after.tflops_limit_milli >= change.after.tflops_milli
                assert change.after.vram_limit_bytes >= change.after.vram_bytes
                applied[change.key] = replace(applied[change.key], grant=change.after)
            assert step == result.ledger
            ledger = result.ledger
            workloads[index] = [applied[w.key] for w in workloads[index]]
