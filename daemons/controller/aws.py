"""AWS EC2 for Provisioned pools (computingVendor.type: aws), on boto3.

Credentials come from boto3's default chain, so `authType: serviceAccountRole` works through IRSA
(the pod's AWS_ROLE_ARN and web-identity token) or an instance profile; `accessKey` reads the key
pair from params.accessKeyPath / secretKeyPath. When params.iamRole names a role other than the
one the chain already has, it is assumed through STS. AWS_ENDPOINT_URL (or `endpoint_url`) points
the client elsewhere, e.g. at a moto server in tests.

Launches are idempotent per claim: `find` looks for an instance tagged with the claim first, and
RunInstances carries the claim's uid as ClientToken.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from tfcore.fleet.provider import CLAIM_TAG, Instance, LaunchRequest
from tfcore.model.node import CloudSelectorTerm
from tfcore.model.pool import ComputingVendorConfig

_RETRIES = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=10, read_timeout=30)
_LIVE_STATES = ["pending", "running", "stopping", "stopped"]


def session_for(vendor: ComputingVendorConfig) -> boto3.session.Session:
    """A boto3 session as computingVendor says: default chain, key files, or an assumed role."""
    params = vendor.params
    region = params.default_region if params else None
    if vendor.auth_type == "accessKey":
        if not params or not params.access_key_path or not params.secret_key_path:
            raise ValueError("computingVendor.params.accessKeyPath/secretKeyPath: required for authType accessKey")
        return boto3.session.Session(
            aws_access_key_id=Path(params.access_key_path).read_text(encoding="utf-8").strip(),
            aws_secret_access_key=Path(params.secret_key_path).read_text(encoding="utf-8").strip(),
            region_name=region,
        )
    session = boto3.session.Session(region_name=region)
    role = params.iam_role if params else None
    if role and role != os.environ.get("AWS_ROLE_ARN"):
        answer = session.client("sts", config=_RETRIES).assume_role(RoleArn=role, RoleSessionName="tensor-fusion")
        creds = answer["Credentials"]
        return boto3.session.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
            region_name=region,
        )
    return session


class AwsProvider:
    """EC2 through one region's client (blocking: the controller calls it in a thread)."""

    def __init__(self, session: boto3.session.Session, region: str, *, endpoint_url: str | None = None) -> None:
        self.ec2: Any = session.client("ec2", region_name=region, endpoint_url=endpoint_url, config=_RETRIES)

    def launch(self, request: LaunchRequest) -> Instance:
        found = self.find(request.claim)
        if found is not None:
            return found
        args: dict[str, Any] = {
            "ImageId": request.image_id or self._image(request.image_name or ""),
            "InstanceType": request.instance_type,
            "MinCount": 1,
            "MaxCount": 1,
            "ClientToken": request.token[:64],
            "TagSpecifications": [
                {"ResourceType": kind, "Tags": [{"Key": k, "Value": v} for k, v in sorted(request.tags.items())]}
                for kind in ("instance", "volume")
            ],
        }
        subnets = self._ids("subnet", request.subnets, request.zone)
        groups = self._ids("security-group", request.security_groups, None)
        if subnets:
            args["SubnetId"] = subnets[0]
        elif request.zone:
            args["Placement"] = {"AvailabilityZone": request.zone}
        if groups:
            args["SecurityGroupIds"] = groups
        if request.key_pair:
            args["KeyName"] = request.key_pair
        if request.instance_profile:
            key = "Arn" if request.instance_profile.startswith("arn:") else "Name"
            args["IamInstanceProfile"] = {key: request.instance_profile}
        if request.user_data:
            args["UserData"] = request.user_data
        if request.spot:
            args["InstanceMarketOptions"] = {
                "MarketType": "spot",
                "SpotOptions": {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"},
            }
        if request.metadata_options:
            args["MetadataOptions"] = dict(request.metadata_options)
        if request.disks:
            args["BlockDeviceMappings"] = [
                {
                    "DeviceName": d.device,
                    "Ebs": {
                        k: v
                        for k, v in {
                            "VolumeSize": d.size_gib,
                            "VolumeType": d.volume_type,
                            "Encrypted": d.encrypted,
                            "DeleteOnTermination": d.delete_on_termination,
                        }.items()
                        if v is not None
                    },
                }
                for d in request.disks
            ]
        answer = self.ec2.run_instances(**args)
        return _instance(answer["Instances"][0])

    def find(self, claim: str) -> Instance | None:
        answer = self.ec2.describe_instances(
            Filters=[
                {"Name": f"tag:{CLAIM_TAG}", "Values": [claim]},
                {"Name": "instance-state-name", "Values": _LIVE_STATES},
            ]
        )
        found = [i for r in answer.get("Reservations", []) for i in r.get("Instances", [])]
        return _instance(found[0]) if found else None

    def describe(self, instance_id: str) -> Instance | None:
        answer = self.ec2.describe_instances(Filters=[{"Name": "instance-id", "Values": [instance_id]}])
        found = [i for r in answer.get("Reservations", []) for i in r.get("Instances", [])]
        return _instance(found[0]) if found else None

    def terminate(self, instance_id: str) -> None:
        self.ec2.terminate_instances(InstanceIds=[instance_id])

    def _image(self, name: str) -> str:
        images = self.ec2.describe_images(Filters=[{"Name": "name", "Values": [name]}]).get("Images", [])
        if not images:
            raise LookupError(f"GPUNodeClass osImageSelectorTerms: no image named {name!r}")
        return str(max(images, key=lambda i: i.get("CreationDate", ""))["ImageId"])

    def _ids(self, kind: str, terms: tuple[CloudSelectorTerm, ...], zone: str | None) -> list[str]:
        """Ids of the subnets or security groups the selector terms pick (tags and names looked up)."""
        ids = [t.id for t in terms if t.id]
        for term in terms:
            if term.id:
                continue
            filters = [{"Name": f"tag:{k}", "Values": [v]} for k, v in sorted((term.tags or {}).items())]
            if term.name:
                filters.append(
                    {"Name": "group-name" if kind == "security-group" else "tag:Name", "Values": [term.name]}
                )
            if kind == "subnet":
                items = self.ec2.describe_subnets(Filters=filters).get("Subnets", [])
                ids += [s["SubnetId"] for s in items if zone is None or s.get("AvailabilityZone") == zone]
            else:
                items = self.ec2.describe_security_groups(Filters=filters).get("SecurityGroups", [])
                ids += [g["GroupId"] for g in items]
        if terms and not ids:
            raise LookupError(f"GPUNodeClass {kind}SelectorTerms: nothing matches" + (f" in {zone}" if zone else ""))
        return sorted(dict.fromkeys(ids))


def _instance(raw: dict[str, Any]) -> Instance:
    return Instance(
        id=str(raw["InstanceId"]),
        state=raw.get("State", {}).get("Name", "pending"),
        instance_type=str(raw.get("InstanceType", "")),
        zone=raw.get("Placement", {}).get("AvailabilityZone"),
        private_ip=raw.get("PrivateIpAddress"),  # may be absent (the reference dereferenced it blindly)
        private_dns=raw.get("PrivateDnsName") or None,
        spot=raw.get("InstanceLifecycle") == "spot",
    )
