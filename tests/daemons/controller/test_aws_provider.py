"""The AWS provider against a real moto server over HTTP: what reaches EC2, and idempotency."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from daemons.controller.aws import AwsProvider, session_for
from tfcore.fleet.provider import launch_request
from tfcore.model.node import CloudSelectorTerm, GPUNodeClassSpec, OSImageSelectorTerm
from tfcore.model.pool import ComputingVendorConfig, ComputingVendorParams

pytest.importorskip("moto.server")
REGION = "us-east-1"


@pytest.fixture
def vendor(monkeypatch: pytest.MonkeyPatch) -> ComputingVendorConfig:
    # The default credential chain reads these, as it would read IRSA's web-identity variables.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return ComputingVendorConfig(
        type="aws",
        auth_type="serviceAccountRole",
        params=ComputingVendorParams(default_region=REGION, extra_params={"keyPairName": "ec2-ssh-key-pair"}),
    )


@pytest.fixture
def provider(moto_endpoint: str, vendor: ComputingVendorConfig) -> AwsProvider:
    return AwsProvider(session_for(vendor), REGION, endpoint_url=moto_endpoint)


def network(ec2: Any) -> tuple[str, str, str]:
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone="us-east-1b")["Subnet"]["SubnetId"]
    ec2.create_tags(Resources=[subnet], Tags=[{"Key": "karpenter.sh/discovery", "Value": "demo"}])
    ec2.create_security_group(GroupName=f"gpu-nodes-{vpc}", Description="gpu", VpcId=vpc)["GroupId"]
    ec2.create_key_pair(KeyName="ec2-ssh-key-pair")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    return subnet, f"gpu-nodes-{vpc}", image


def claim(name: str, uid: str, capacity: str = "Spot") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "uid": uid, "labels": {"tensor-fusion.ai/gpupool": "shared"}},
        "spec": {"instanceType": "g6.xlarge", "capacityType": capacity, "zone": "us-east-1b"},
    }


def test_launch_carries_network_key_pair_and_spot_and_is_idempotent(
    provider: AwsProvider, vendor: ComputingVendorConfig
) -> None:
    subnet, group_name, image = network(provider.ec2)
    node_class = GPUNodeClassSpec(
        os_image_selector_terms=[OSImageSelectorTerm(id=image)],
        subnet_selector_terms=[CloudSelectorTerm(tags={"karpenter.sh/discovery": "demo"})],
        security_group_selector_terms=[CloudSelectorTerm(name=group_name)],
        tags={"team": "ml"},
    )
    request = launch_request(claim("shared-0", "uid-0"), node_class, vendor)
    first = provider.launch(request)
    again = provider.launch(request)  # a controller restarted before it wrote the instance id
    assert again.id == first.id
    raw = provider.ec2.describe_instances(InstanceIds=[first.id])["Reservations"][0]["Instances"][0]
    assert raw["SubnetId"] == subnet
    assert raw["KeyName"] == "ec2-ssh-key-pair"
    assert [g["GroupName"] for g in raw["SecurityGroups"]] == [group_name]
    assert raw["InstanceType"] == "g6.xlarge"
    assert raw.get("InstanceLifecycle") == "spot"
    tags = {t["Key"]: t["Value"] for t in raw["Tags"]}
    assert tags == {"team": "ml", "tensor-fusion.ai/node-claim": "shared-0", "tensor-fusion.ai/gpupool": "shared"}
    found = provider.find("shared-0")
    assert found is not None
    assert found.id == first.id
    provider.terminate(first.id)
    assert provider.find("shared-0") is None
    described = provider.describe(first.id)
    assert described is not None
    assert described.state in ("shutting-down", "terminated")


def test_on_demand_and_unknown_subnet(provider: AwsProvider, vendor: ComputingVendorConfig) -> None:
    _, _, image = network(provider.ec2)
    plain = GPUNodeClassSpec(os_image_selector_terms=[OSImageSelectorTerm(id=image)])
    instance = provider.launch(launch_request(claim("shared-1", "uid-1", "OnDemand"), plain, vendor))
    assert not instance.spot
    assert instance.zone == "us-east-1b"
    lost = GPUNodeClassSpec(
        os_image_selector_terms=[OSImageSelectorTerm(id=image)],
        subnet_selector_terms=[CloudSelectorTerm(tags={"nobody": "here"})],
    )
    with pytest.raises(LookupError, match="subnetSelectorTerms"):
        provider.launch(launch_request(claim("shared-2", "uid-2"), lost, vendor))


def test_launch_request_names_what_is_missing(vendor: ComputingVendorConfig) -> None:
    with pytest.raises(ValueError, match="osImageSelectorTerms"):
        launch_request(claim("a", "u"), GPUNodeClassSpec(), vendor)
    with pytest.raises(ValueError, match="defaultRegion"):
        launch_request(claim("a", "u"), GPUNodeClassSpec(), ComputingVendorConfig(type="aws"))


def test_access_key_files(tmp_path: Path, moto_endpoint: str) -> None:
    (tmp_path / "id").write_text("AKIDEXAMPLE\n")
    (tmp_path / "secret").write_text("secret\n")
    vendor = ComputingVendorConfig(
        type="aws",
        auth_type="accessKey",
        params=ComputingVendorParams(
            default_region=REGION, access_key_path=str(tmp_path / "id"), secret_key_path=str(tmp_path / "secret")
        ),
    )
    credentials = session_for(vendor).get_credentials()
    assert credentials is not None
    assert credentials.access_key == "AKIDEXAMPLE"
    with pytest.raises(ValueError, match="accessKeyPath"):
        session_for(ComputingVendorConfig(type="aws", auth_type="accessKey"))
