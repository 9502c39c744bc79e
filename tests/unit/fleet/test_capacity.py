from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tfcore.fleet.capacity import Amount, Bounds, NoScaleUp, Observed, ScaleUp, plan_scale_up
from tfcore.fleet.catalogue import AWS, InstanceType, lookup
from tfcore.fleet.claims import claim_names, gpu_nodeclaim, karpenter_nodeclaim
from tfcore.fleet.requirements import offers
from tfcore.model.errors import ValidationError
from tfcore.model.pool import GroupKindName, NodeProvisioner, Requirement

GI = 2**30
T = 1000  # milli-TFLOPS per TFLOPS
SPEC_REQUIREMENTS = [
    Requirement(key="karpenter.sh/capacity-type", operator="In", values=["on-demand", "spot"]),
    Requirement(key="node.kubernetes.io/instance-type", operator="In", values=["g6.xlarge", "g6.12xlarge"]),
    Requirement(key="topology.kubernetes.io/region", operator="In", values=["us-east-1"]),
    Requirement(key="topology.kubernetes.io/zone", operator="In", values=["us-east-1b", "us-east-1c"]),
    Requirement(key="kubernetes.io/os", operator="In", values=["linux"]),
]


def bounds(min_t: int | None = None, warm_t: int | None = None, max_t: int | None = None) -> Bounds:
    return Bounds(
        Amount(None if min_t is None else min_t * T),
        Amount(None if warm_t is None else warm_t * T),
        Amount(None if max_t is None else max_t * T),
    )


def seen(total: int, available: int, pending: int = 0) -> Observed:
    return Observed(Amount(total * T, 0), Amount(available * T, 0), Amount(pending * T, 0))


def test_spec_requirements_read_as_karpenter_spells_them() -> None:
    found = offers(SPEC_REQUIREMENTS, AWS)
    assert [o.instance.name for o in found] == ["g6.xlarge", "g6.12xlarge"]
    assert {o.capacity_type for o in found} == {"spot"}  # spot allowed: asked for first
    assert found[0].zones == ("us-east-1b", "us-east-1c")
    on_demand = offers([Requirement(key="karpenter.sh/capacity-type", operator="In", values=["on-demand"])], AWS)
    assert {o.capacity_type for o in on_demand} == {"on-demand"}


def test_bad_capacity_type_names_the_field() -> None:
    with pytest.raises(ValidationError) as caught:
        offers([Requirement(key="karpenter.sh/capacity-type", operator="In", values=["Spot"])], AWS)
    assert caught.value.problems[0].field == "nodeProvisioner.gpuRequirements[0].values"


def test_scale_up_to_min_picks_the_cheapest_priced_type() -> None:
    decision = plan_scale_up(bounds(min_t=200), seen(0, 0), offers(SPEC_REQUIREMENTS, AWS))
    assert isinstance(decision, ScaleUp)
    assert decision.offer.instance.name == "g6.xlarge"  # 2 x 0.8048 beats 1 x 4.6016
    assert decision.count == 2


def test_pending_capacity_counts_and_max_caps() -> None:
    assert isinstance(
        plan_scale_up(bounds(min_t=200), seen(0, 0, pending=242), offers(SPEC_REQUIREMENTS, AWS)), NoScaleUp
    )
    capped = plan_scale_up(bounds(warm_t=1000, max_t=300), seen(121, 0, pending=0), offers(SPEC_REQUIREMENTS, AWS))
    assert isinstance(capped, ScaleUp)
    assert capped.count == 1  # 121 + 121 <= 300 < 121 + 242
    full = plan_scale_up(bounds(warm_t=1000, max_t=300), seen(121, 0, pending=121), offers(SPEC_REQUIREMENTS, AWS))
    assert isinstance(full, NoScaleUp)
    assert "maxResources" in full.reason


def test_an_unpriced_type_is_never_chosen() -> None:
    p5 = lookup("aws", "p5.48xlarge")
    assert p5 is not None
    assert p5.price is None
    only_p5 = [Requirement(key="node.kubernetes.io/instance-type", operator="In", values=["p5.48xlarge"])]
    decision = plan_scale_up(bounds(min_t=100), seen(0, 0), offers(only_p5, AWS))
    assert isinstance(decision, NoScaleUp)
    assert "priced" in decision.reason
    both = [Requirement(key="node.kubernetes.io/instance-type", operator="In", values=["p5.48xlarge", "p4d.24xlarge"])]
    chosen = plan_scale_up(bounds(min_t=5000), seen(0, 0), offers(both, AWS))
    assert isinstance(chosen, ScaleUp)
    assert chosen.offer.instance.name == "p4d.24xlarge"


@given(
    total=st.integers(0, 2000),
    free_share=st.floats(0, 1),
    pending=st.integers(0, 2000),
    low=st.one_of(st.none(), st.integers(0, 3000)),
    warm=st.one_of(st.none(), st.integers(0, 3000)),
    high=st.one_of(st.none(), st.integers(0, 5000)),
)
def test_never_beyond_max_counting_pending(
    *, total: int, free_share: float, pending: int, low: int | None, warm: int | None, high: int | None
) -> None:
    observed = seen(total, int(total * free_share), pending)
    limits = bounds(low, warm, high)
    decision = plan_scale_up(limits, observed, offers([], AWS))
    if isinstance(decision, ScaleUp):
        added = decision.count * decision.offer.instance.milli_tflops
        if high is not None:
            assert total * T + pending * T + added <= high * T
        assert decision.offer.instance.price is not None
    else:
        short_min = low is not None and total + pending < low
        short_warm = warm is not None and int(total * free_share) + pending < warm
        room = high is None or total + pending + 65 <= high  # the smallest type (T4) would fit
        assert not (short_min or short_warm) or not room


def test_claim_names_fill_gaps_and_skip_taken() -> None:
    assert claim_names("shared", ["shared-0", "shared-2"], 3) == ["shared-1", "shared-3", "shared-4"]


def test_karpenter_nodeclaim_pins_the_offer_without_blocking_consolidation() -> None:
    provisioner = NodeProvisioner(
        karpenter_node_class_ref=GroupKindName(
            group="karpenter.k8s.aws", kind="EC2NodeClass", name="gpu", version="v1"
        ),
        gpu_requirements=SPEC_REQUIREMENTS,
        gpu_node_labels={"tensor-fusion.ai/vendor": "nvidia"},
    )
    offer = offers(SPEC_REQUIREMENTS, AWS)[0]
    claim = karpenter_nodeclaim("shared-0", "shared", offer, provisioner, 1)
    assert claim["apiVersion"] == "karpenter.sh/v1"
    assert claim["spec"]["nodeClassRef"] == {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "gpu"}
    reqs = {r["key"]: r for r in claim["spec"]["requirements"]}
    assert reqs["karpenter.sh/capacity-type"]["values"] == ["spot"]
    assert reqs["node.kubernetes.io/instance-type"]["values"] == ["g6.xlarge"]
    assert reqs["topology.kubernetes.io/zone"]["values"] == ["us-east-1c"]
    assert reqs["kubernetes.io/os"]["values"] == ["linux"]
    assert "karpenter.sh/do-not-disrupt" not in claim["metadata"]["annotations"]
    assert "resources" not in claim["spec"]
    assert claim["metadata"]["labels"]["tensor-fusion.ai/gpupool"] == "shared"
    asked = karpenter_nodeclaim("x", "shared", offer, provisioner, 0, extra={"karpenter.gpuResource": "nvidia.com/gpu"})
    assert asked["spec"]["resources"] == {"requests": {"nvidia.com/gpu": "1"}}


def test_gpu_nodeclaim_records_what_it_offers() -> None:
    offer = offers(SPEC_REQUIREMENTS, AWS)[1]
    claim = gpu_nodeclaim("shared-0", "shared", offer, NodeProvisioner(node_class="tf-node-class"), 0)
    assert claim["spec"]["instanceType"] == "g6.12xlarge"
    assert claim["spec"]["capacityType"] == "Spot"
    assert claim["spec"]["tflopsOffered"] == "484"
    assert claim["spec"]["vramOffered"] == "96Gi"
    assert claim["spec"]["nodeClassRef"]["name"] == "tf-node-class"


def test_catalogue_rows_are_consistent() -> None:
    names = [t.name for t in AWS]
    assert len(names) == len(set(names))
    for row in AWS:
        assert isinstance(row, InstanceType)
        assert row.gpus >= 1
        assert row.price is None or row.price > 0


requirement = st.builds(
    Requirement,
    key=st.one_of(
        st.none(),
        st.sampled_from(
            ["karpenter.sh/capacity-type", "node.kubernetes.io/instance-type", "topology.kubernetes.io/zone", "x"]
        ),
    ),
    operator=st.one_of(st.none(), st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"])),
    values=st.one_of(
        st.none(), st.lists(st.sampled_from(["spot", "on-demand", "Spot", "g6.xlarge", "us-east-1b", ""]))
    ),
)


@given(st.lists(requirement, max_size=5))
def test_requirements_give_offers_or_name_the_bad_field(reqs: list[Requirement]) -> None:
    problems: list[str] = []
    found = []
    try:
        found = offers(reqs, AWS)
    except ValidationError as exc:
        problems = [p.field for p in exc.problems]
    assert all(field.startswith("nodeProvisioner.gpuRequirements[") for field in problems)
    for offer in found:
        assert offer.capacity_type in ("spot", "on-demand", "reserved")
