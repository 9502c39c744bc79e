"""Turn a pod into a tensor-fusion workload: shim, region mount, env, scheduler, no nvidia.com/gpu.

Every step checks before it adds (by container, volume and env name), so running it on an
already mutated pod changes nothing: the webhook may be reinvoked and must stay idempotent.

The worker's region: the hypervisor keeps one directory per worker under its region
directory on the host, `<region dir>/<namespace>/<pod name>/`, holding `shm` (usage, written
by the tenant's shim) and `shm.limits` (limits, the hypervisor's, mode 0644). The pod mounts
only its own directory (subPathExpr from the downward API), so it cannot see other tenants,
and mounts it read-only with only `shm` writable over it: even root in the container cannot
rewrite its limits (the file's mode alone would not stop root). A file can only be mounted
once it exists, so the init container waits, bounded, for the hypervisor to create the region;
that wait also means no container of the pod ever starts without its limits in place.

The disk tier of VRAM tiering: with the node's tier directory known (`--tier-host-dir`), the
pod's own `<tier dir>/<namespace>/<pod name>/` (made by the hypervisor, owned by the pod's
user) is mounted read-write at TIER_MOUNT and named by TF_TIER_DIR, where the shim writes the
memory of a worker frozen to disk; the pod sees no other pod's files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from tfcore.model.errors import Problem
from tfcore.model.pods import NVIDIA_GPU, SCHEDULER_NAME, whole_gpus

# Re-exported until the scheduler daemon (issue 14 part B) imports it from tfcore.model.pods.
from tfcore.model.pods import pod_nvidia_gpus as pod_nvidia_gpus  # noqa: PLC0414

SHIM_VOLUME: Final = "tf-shim"
REGION_VOLUME: Final = "tf-region"
TIER_VOLUME: Final = "tf-tier"
TIER_MOUNT: Final = "/run/tensor-fusion/tier"
INIT_CONTAINER: Final = "tf-shim-install"
SHIM_DIR: Final = "/tensor-fusion/lib"
SHIM_FILE: Final = "libtfshim.so"
REGION_MOUNT: Final = "/run/tensor-fusion/worker"
SHM_FILE: Final = "shm"
DEFAULT_REGION_HOST_DIR: Final = "/run/tensor-fusion/workers"
DEFAULT_IMAGE: Final = "tensorfusion/tensor-fusion:latest"
REGION_SUBPATH: Final = "$(TF_POD_NAMESPACE)/$(TF_POD_NAME)"
DEFAULT_REGION_WAIT_SECONDS: Final = 120


@dataclass(frozen=True, slots=True)
class InjectionConfig:
    """Where the shim comes from and where the hypervisor keeps regions (the webhook's flags)."""

    image: str = DEFAULT_IMAGE
    shim_source: str = "/opt/tensor-fusion/" + SHIM_FILE  # the shim's path inside `image`
    region_host_dir: str = DEFAULT_REGION_HOST_DIR
    scheduler_name: str = SCHEDULER_NAME
    image_pull_policy: str = "IfNotPresent"
    # NVIDIA GPU Operator coexistence: native nvidia.com/gpu pods go to our scheduler too, which
    # keeps them off the nodes where TensorFusion workers hold GPUs (the device plugin cannot be
    # told which GPUs those are).
    route_native_gpu_pods: bool = False
    region_wait_seconds: int = DEFAULT_REGION_WAIT_SECONDS  # the init container's bound
    tier_host_dir: str = ""  # the hypervisors' --tier-dir on nodes; "" = no disk tier mounted


def shm_path() -> str:
    return f"{REGION_MOUNT}/{SHM_FILE}"


def strip_nvidia_gpu(spec: dict[str, Any]) -> int:
    """Remove nvidia.com/gpu from every container's requests and limits; the largest count seen."""
    most = 0
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or ():
            resources = container.get("resources")
            if not isinstance(resources, dict):
                continue
            for part in ("limits", "requests"):
                amounts = resources.get(part)
                if isinstance(amounts, dict) and NVIDIA_GPU in amounts:
                    most = max(most, whole_gpus(amounts.pop(NVIDIA_GPU)))
                    if not amounts:
                        del resources[part]
    return most


def region_volume(config: InjectionConfig) -> dict[str, Any]:
    """The hostPath volume of the regions directory, as injected."""
    return {"name": REGION_VOLUME, "hostPath": {"path": config.region_host_dir, "type": "DirectoryOrCreate"}}


def tier_volume(config: InjectionConfig) -> dict[str, Any] | None:
    """The hostPath volume of the nodes' tier directory, as injected (None without one)."""
    if not config.tier_host_dir:
        return None
    return {"name": TIER_VOLUME, "hostPath": {"path": config.tier_host_dir, "type": "DirectoryOrCreate"}}


def inject_shim(
    spec: dict[str, Any], container_name: str, config: InjectionConfig, env: dict[str, str]
) -> list[Problem]:
    """Add the shim's init container, volumes, mounts and env to `spec` in place."""
    problems: list[Problem] = []
    volumes = spec.setdefault("volumes", [])
    _put_named(volumes, {"name": SHIM_VOLUME, "emptyDir": {"sizeLimit": "64Mi"}})
    _put_named(volumes, region_volume(config))
    tier = tier_volume(config)
    if tier is not None:
        _put_named(volumes, tier)
    init_containers = spec.setdefault("initContainers", [])
    if not any(c.get("name") == INIT_CONTAINER for c in init_containers):
        init_containers.insert(0, _install_container(config))
    else:
        _put_named(init_containers, _install_container(config))
    container = next(c for c in spec["containers"] if c.get("name") == container_name)
    mounts = container.setdefault("volumeMounts", [])
    for mount in (
        {"name": SHIM_VOLUME, "mountPath": SHIM_DIR, "readOnly": True},
        *_region_mounts(),
        *(_tier_mounts() if tier is not None else ()),
    ):
        clash = next(
            (m for m in mounts if m.get("mountPath") == mount["mountPath"] and m.get("name") != mount["name"]), None
        )
        if clash is not None:
            problems.append(
                Problem(
                    f"spec.containers[{container_name}].volumeMounts",
                    f"{mount['mountPath']} is already used by volume {clash.get('name')!r}",
                    f"no mount at {mount['mountPath']} (reserved for tensor-fusion)",
                )
            )
        _put_mount(mounts, mount)
    variables = container.setdefault("env", [])
    downward = [
        *_POD_IDENTITY,
        {
            "name": "TF_GPU_IDS",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['tensor-fusion.ai/gpu-ids']"}},
        },
    ]
    own = {"TF_TIER_DIR": TIER_MOUNT} if tier is not None else {}
    for entry in downward + [{"name": k, "value": v} for k, v in {**env, **own}.items()]:
        _put_named(variables, entry)
    problems.extend(_preload(variables, container_name))
    return problems


def _preload(variables: list[dict[str, Any]], container_name: str) -> list[Problem]:
    """Put the shim first on LD_PRELOAD, keeping what the user preloads."""
    shim = f"{SHIM_DIR}/{SHIM_FILE}"
    current = next((v for v in variables if v.get("name") == "LD_PRELOAD"), None)
    if current is None:
        variables.append({"name": "LD_PRELOAD", "value": shim})
        return []
    if "valueFrom" in current:
        return [
            Problem(
                f"spec.containers[{container_name}].env.LD_PRELOAD",
                "is set from a reference, so the shim cannot be added to it",
                "a literal LD_PRELOAD value (the shim is prepended to it) or none",
            )
        ]
    entries = [e for e in str(current.get("value", "")).replace(" ", ":").split(":") if e and e != shim]
    current["value"] = ":".join([shim, *entries])
    return []


_POD_IDENTITY: Final = (
    {"name": "TF_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    {"name": "TF_POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
)


def _region_mounts() -> tuple[dict[str, Any], ...]:
    """The pod's region directory read-only, and over it its usage file read-write."""
    return (
        {"name": REGION_VOLUME, "mountPath": REGION_MOUNT, "subPathExpr": REGION_SUBPATH, "readOnly": True},
        {"name": REGION_VOLUME, "mountPath": shm_path(), "subPathExpr": f"{REGION_SUBPATH}/{SHM_FILE}"},
    )


def _tier_mounts() -> tuple[dict[str, Any], ...]:
    """The pod's own directory of the disk tier, read-write (frozen memory goes there)."""
    return ({"name": TIER_VOLUME, "mountPath": TIER_MOUNT, "subPathExpr": REGION_SUBPATH},)


def _install_container(config: InjectionConfig) -> dict[str, Any]:
    command = ["tensor-fusion", "shim", "install", "--source", config.shim_source, "--to", f"{SHIM_DIR}/{SHIM_FILE}"]
    command += ["--wait-region", shm_path(), "--timeout", str(config.region_wait_seconds)]
    return {
        "name": INIT_CONTAINER,
        "image": config.image,
        "imagePullPolicy": config.image_pull_policy,
        "command": command,
        "env": list(_POD_IDENTITY),
        "volumeMounts": [
            {"name": SHIM_VOLUME, "mountPath": SHIM_DIR},
            {"name": REGION_VOLUME, "mountPath": REGION_MOUNT, "subPathExpr": REGION_SUBPATH, "readOnly": True},
        ],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True},
    }


def _put_mount(mounts: list[dict[str, Any]], wanted: dict[str, Any]) -> None:
    """Replace the mount at wanted's path (one volume may be mounted twice) or append it."""
    for index, mount in enumerate(mounts):
        if mount.get("mountPath") == wanted["mountPath"]:
            if mount != wanted:
                mounts[index] = wanted
            return
    mounts.append(wanted)


def _put_named(items: list[dict[str, Any]], wanted: dict[str, Any]) -> None:
    """Replace the entry with wanted's name (volumes, env, mounts, containers) or append it."""
    for index, item in enumerate(items):
        if item.get("name") == wanted["name"]:
            if item != wanted:
                items[index] = wanted
            return
    items.append(wanted)
