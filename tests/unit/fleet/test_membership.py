from __future__ import annotations

from tests.unit.fleet import cluster
from tfcore.model.codec import decode
from tfcore.model.pool import GPUPool
from tfcore.operator.fleet import pool_for_node


def test_a_claimed_node_joins_the_pool_its_label_names_without_a_selector() -> None:
    provisioned = cluster.pool("managed")
    del provisioned["spec"]["nodeManagerConfig"]["nodeSelector"]
    selecting = cluster.pool("shared")
    pools = [decode(provisioned, GPUPool), decode(selecting, GPUPool)]
    labelled = cluster.node("ip-10-0-1-5", **{"tensor-fusion.ai/gpupool": "managed"})
    assert pool_for_node(pools, labelled) == "managed"
    assert pool_for_node(pools, cluster.node("gpu-0")) == "shared"  # the selector, as before
    unknown = cluster.node("x", **{"tensor-fusion.ai/gpupool": "gone"})
    assert pool_for_node(pools, unknown) == "shared"
