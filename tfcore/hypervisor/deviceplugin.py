"""Which of this node's GPUs the NVIDIA device plugin has handed to pods (pure, no I/O).

The kubelet's pod-resources API lists, per container, the device IDs a device plugin
allocated for each extended resource.  The NVIDIA device plugin names a GPU by its UUID
("GPU-<uuid>", deviceIDStrategy=uuid, the default) or by its NVML index ("0",
deviceIDStrategy=index); with time-slicing or MPS sharing each GPU is offered as replicas
"<id>::<n>", all of which hold the same physical GPU.

MIG is out of scope: MIG devices ("MIG-<uuid>", "<gpu>:<mig>" under the index strategy, or the
"nvidia.com/mig-*" resources) are reported as unknown, never silently dropped, and never mapped
to a parent GPU.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

import msgspec

from tfcore.model.errors import ValidationError

DEFAULT_RESOURCES: Final = frozenset({"nvidia.com/gpu"})
REPLICA_SEPARATOR: Final = "::"
DEVICE_ID_FORMS: Final = (
    'a GPU UUID "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" or an NVML index "0", '
    'optionally with a sharing replica suffix "::N"'
)
_UUID: Final = re.compile(r"GPU-[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
_INDEX: Final = re.compile(r"[0-9]{1,4}")
_MIG: Final = re.compile(r"MIG-[0-9A-Za-z/-]{1,128}|[0-9]{1,4}:[0-9]{1,4}")
# Extended resource names: <DNS subdomain>/<name> (Kubernetes qualified names).
_RESOURCE: Final = re.compile(
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
)


class DeviceAssignment(msgspec.Struct, frozen=True, kw_only=True):
    """Devices of one extended resource that the kubelet assigned to one container."""

    namespace: str
    pod: str
    container: str
    resource: str
    device_ids: tuple[str, ...]

    @property
    def holder(self) -> str:
        return f"{self.namespace}/{self.pod}"


@dataclass(frozen=True, slots=True)
class DeviceRef:
    """A parsed device ID: a GPU by UUID or NVML index, or a MIG device (not mapped)."""

    kind: Literal["uuid", "index", "mig"]
    value: str  # the UUID as written, the index's digits, or the MIG ID
    replica: int | None = None


@dataclass(frozen=True, slots=True)
class UnknownDevice:
    """A device ID under a watched resource that names none of this node's GPUs."""

    holder: str
    resource: str
    device_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Holdings:
    """The device plugin's holders per GPU UUID (sorted "namespace/pod"), and what did not map."""

    holders: Mapping[str, tuple[str, ...]]
    unknown: tuple[UnknownDevice, ...] = ()


def parse_device_id(device_id: str) -> DeviceRef:
    """One device ID as the NVIDIA device plugin writes it; ValidationError when it is none of its forms."""
    base, separator, replica_text = device_id.partition(REPLICA_SEPARATOR)
    replica = None
    if separator:
        if not _INDEX.fullmatch(replica_text):
            raise ValidationError.single(
                "deviceID", f"bad replica suffix in {device_id!r}", '"::" followed by a replica number'
            )
        replica = int(replica_text)
    if _UUID.fullmatch(base):
        return DeviceRef("uuid", base, replica)
    if _INDEX.fullmatch(base):
        return DeviceRef("index", str(int(base)), replica)
    if _MIG.fullmatch(base):
        return DeviceRef("mig", base, replica)
    raise ValidationError.single("deviceID", f"not a GPU device ID: {device_id!r}", DEVICE_ID_FORMS)


def check_resource_name(name: str) -> str:
    """An extended resource name such as nvidia.com/gpu; ValidationError otherwise."""
    if not _RESOURCE.fullmatch(name) or len(name) > 253:
        raise ValidationError.single(
            "--device-plugin-resource", f"bad resource name {name!r}", "an extended resource such as nvidia.com/gpu"
        )
    return name


def map_assignments(
    assignments: Iterable[DeviceAssignment],
    gpus: Mapping[str, int],
    *,
    resources: frozenset[str] = DEFAULT_RESOURCES,
) -> Holdings:
    """uuid -> the pods holding it through `resources`; `gpus` is this node's GPUs, uuid -> NVML index.

    Assignments of other resources are ignored; IDs that name no GPU of this node are reported."""
    by_uuid = {uuid.lower(): uuid for uuid in gpus}
    by_index = {str(index): uuid for uuid, index in gpus.items()}
    holders: dict[str, set[str]] = {}
    unknown: list[UnknownDevice] = []
    for assignment in assignments:
        if assignment.resource not in resources:
            continue
        for device_id in assignment.device_ids:
            try:
                ref = parse_device_id(device_id)
            except ValidationError as exc:
                reason = exc.problems[0].message
                unknown.append(UnknownDevice(assignment.holder, assignment.resource, device_id, reason))
                continue
            if ref.kind == "mig":
                reason = "a MIG device (MIG is out of scope: its parent GPU is not mapped)"
                unknown.append(UnknownDevice(assignment.holder, assignment.resource, device_id, reason))
                continue
            uuid = by_uuid.get(ref.value.lower()) if ref.kind == "uuid" else by_index.get(ref.value)
            if uuid is None:
                what = "UUID" if ref.kind == "uuid" else "index"
                reason = f"no GPU of this node has {what} {ref.value}"
                unknown.append(UnknownDevice(assignment.holder, assignment.resource, device_id, reason))
                continue
            holders.setdefault(uuid, set()).add(assignment.holder)
    return Holdings(
        {uuid: tuple(sorted(pods)) for uuid, pods in sorted(holders.items())},
        tuple(sorted(set(unknown), key=lambda u: (u.holder, u.device_id))),
    )
