"""Random request/release sequences never over-allocate a GPU, and release restores it exactly."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tests.unit.sched.fleet import GiB, T, framework, pod
from tfcore.sched import Allocator, GPUSpec, NodeSpec, PoolInfo
from tfcore.sched.plugins import GPUResourcesFitArgs


class AllocatorMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        # Oversubscribed pool: 300% TFLOPS, VRAM expanded by host RAM and disk.
        pool = PoolInfo("shared", tflops_oversell_ratio=300, vram_expand_to_host_mem=25, vram_expand_to_host_disk=5)
        nodes = [NodeSpec(f"n{i}", "shared", ram_bytes=64 * GiB, disk_bytes=100 * GiB) for i in range(3)]
        gpus = [
            GPUSpec(f"g{i}{j}", f"n{i}", (50 + 10 * j) * T, (16 + 8 * j) * GiB, index=j)
            for i in range(3)
            for j in range(3)
        ]
        self.allocator = Allocator.build([pool], nodes, gpus, default_pool="shared")
        self.framework = framework(self.allocator, GPUResourcesFitArgs(max_worker_per_node=6))
        self.initial = self.allocator.state_fingerprint()
        self.history: list[str] = []
        self.count = 0

    @rule(
        tflops=st.integers(0, 200),
        vram=st.integers(0, 40),
        count=st.integers(1, 3),
        dedicated=st.booleans(),
        percent=st.sampled_from([0, 0, 0, 100_000, 700_000]),
        dry_run=st.booleans(),
    )
    def request(self, *, tflops: int, vram: int, count: int, dedicated: bool, percent: int, dry_run: bool) -> None:
        self.count += 1
        key = f"p{self.count}"
        before = self.allocator.state_fingerprint()
        fields: dict[str, object] = {"gpu_count": count, "dedicated": dedicated and not percent}
        if percent:
            tflops = 0
            fields |= {"percent_ppm": percent, "percent_limit_ppm": percent}
        result = self.framework.schedule(pod(key, tflops=tflops, vram_gib=vram, **fields), dry_run=dry_run)
        if dry_run or not result.ok:
            assert self.allocator.state_fingerprint() == before
            assert key not in self.allocator.allocations
        else:
            assert result.allocation is not None
            assert len(result.gpus) == count
            self.history.append(key)

    @precondition(lambda self: bool(self.history))
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        key = self.history.pop(data.draw(st.integers(0, len(self.history) - 1)))
        before = self.allocator.state_fingerprint()
        allocation = self.allocator.release(key)
        assert allocation is not None
        after = self.allocator.state_fingerprint()
        expected = dict(before)
        for share in allocation.shares:  # exactly the shares come back, nothing else moves
            used_t, used_v, lim_t, lim_v, _, workers = before[share.gpu]
            expected[share.gpu] = (
                used_t - share.tflops,
                used_v - share.vram,
                lim_t - share.tflops_limit,
                lim_v - share.vram_limit,
                False,
                tuple(w for w in workers if w != key),
            )
        assert after == expected
        assert self.allocator.release(key) is None
        assert self.allocator.state_fingerprint() == after

    @rule()
    def release_all(self) -> None:
        for key in reversed(self.history):
            self.allocator.release(key)
        self.history.clear()
        assert self.allocator.state_fingerprint() == self.initial
        assert self.allocator.namespace_usage == {}

    @invariant()
    def never_over_allocated(self) -> None:
        for gpu in self.allocator.gpus.values():
            assert 0 <= gpu.used_tflops <= gpu.virtual_tflops, gpu.name
            assert 0 <= gpu.used_vram <= gpu.virtual_vram, gpu.name
            assert gpu.used_tflops == sum(w[0] for w in gpu.workers.values())
            assert gpu.used_vram == sum(w[1] for w in gpu.workers.values())
            assert not gpu.dedicated or len(gpu.workers) == 1
        for node in self.allocator.nodes.values():
            assert len(node.workers) <= 6

    @invariant()
    def index_matches_a_fresh_computation(self) -> None:
        from tfcore.sched.plugins.gpu_resources_fit import GPUResourcesFit, node_score

        plugin = self.framework.plugins["GPUResourcesFit"]
        assert isinstance(plugin, GPUResourcesFit)
        for node in self.allocator.nodes.values():
            assert plugin.index.scores[node.name] == node_score(node, plugin.args, used=True)


AllocatorMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=25)
TestAllocatorMachine = AllocatorMachine.TestCase
