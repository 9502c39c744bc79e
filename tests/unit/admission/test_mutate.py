"""Pod admission decisions: validation, defaults, injection, idempotency, nvidia.com/gpu."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.unit.admission.pods import CLUSTER, PROFILE, cluster, owner_ref, review, tf_pod
from tests.unit.model.test_annotations import BAD
from tfcore.admission import ClusterDefaults, InjectionConfig, Verdict, admit_review
from tfcore.admission import canary as canary_keys
from tfcore.admission.defaults import cluster_defaults
from tfcore.admission.inject import INIT_CONTAINER, REGION_VOLUME, SHIM_VOLUME, TIER_MOUNT, TIER_VOLUME
from tfcore.admission.patch import apply_patch
from tfcore.model import annotations as ann

CONFIG = InjectionConfig(image="registry.local/tensor-fusion:1.0", shim_source="/opt/tf/libtfshim.so")


def decide(pod: dict[str, Any], defaults: ClusterDefaults | None = None, uid: str = "req-1") -> Verdict:
    return admit_review(review(pod, uid), defaults or cluster(), CONFIG)


def mutated(pod: dict[str, Any], defaults: ClusterDefaults | None = None) -> dict[str, Any]:
    verdict = decide(pod, defaults)
    assert verdict.allowed, verdict.message
    assert verdict.patch
    result: dict[str, Any] = apply_patch(pod, verdict.patch)
    return result


def container(pod: dict[str, Any], name: str = "main") -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in pod["spec"]["containers"] if c["name"] == name)
    return found


def env(pod: dict[str, Any], name: str = "main") -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(pod, name).get("env", [])}


# ---- pods that are not ours -------------------------------------------------------------------


@pytest.mark.parametrize(
    "labels",
    [{}, {ann.LABEL_ENABLED: "false"}, {ann.LABEL_ENABLED: "True"}, {"app": "web"}],
)
def test_pods_not_labelled_enabled_true_are_never_patched(labels: dict[str, str]) -> None:
    pod = tf_pod({ann.TFLOPS_LIMIT: "garbage"})
    pod["metadata"]["labels"] = labels
    verdict = decide(pod)
    assert verdict == Verdict.allow()


def test_updates_and_deletes_are_allowed_untouched() -> None:
    pod = tf_pod()
    for operation in ("UPDATE", "DELETE", "CONNECT"):
        found = admit_review(
            review(pod).__class__(uid="u", operation=operation, namespace="default", pod=pod), cluster(), CONFIG
        )
        assert found == Verdict.allow()


# ---- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(("annotations", "key", "message"), BAD)
def test_every_invalid_annotation_is_denied_naming_it(annotations: dict[str, str], key: str, message: str) -> None:
    pod = tf_pod(annotations, containers=["main", "sidecar"])
    verdict = decide(pod)
    assert not verdict.allowed
    assert verdict.code == 403
    assert key in verdict.message
    assert message in verdict.message
    assert verdict.patch is None


def test_a_bad_enabled_replicas_on_a_replicaset_pod_is_denied() -> None:
    pod = tf_pod({ann.TFLOPS_LIMIT: "10", ann.VRAM_LIMIT: "4Gi", ann.ENABLED_REPLICAS: "three"})
    pod["metadata"]["ownerReferences"] = [owner_ref("ReplicaSet", "web-1", "rs-1")]
    verdict = decide(pod)
    assert not verdict.allowed
    assert ann.ENABLED_REPLICAS in verdict.message


RESOLUTION_BAD: list[tuple[dict[str, str], str, str]] = [
    ({ann.TFLOPS_LIMIT: "10", ann.VRAM_LIMIT: "1Gi", ann.GPU_POOL: "nope"}, ann.GPU_POOL, "no GPUPool named 'nope'"),
    ({ann.TFLOPS_LIMIT: "10"}, ann.VRAM_LIMIT, "no VRAM amount"),
    ({ann.VRAM_LIMIT: "1Gi"}, ann.TFLOPS_LIMIT, "no compute amount"),
    ({ann.WORKLOAD_PROFILE: "missing"}, ann.WORKLOAD_PROFILE, "no WorkloadProfile 'missing'"),
    (
        {ann.TFLOPS_LIMIT: "10", ann.VRAM_LIMIT: "1Gi", ann.GPU_POOL: "premium", ann.QOS: "low"},
        ann.QOS,
        "does not offer qos 'low'",
    ),
    (
        {ann.WORKLOAD_PROFILE: "inference", ann.TFLOPS_LIMIT: "10", ann.VRAM_LIMIT: "1Gi", ann.GPU_POOL: "gone"},
        ann.GPU_POOL,
        "no GPUPool named 'gone'",
    ),
]


@pytest.mark.parametrize(("annotations", "key", "message"), RESOLUTION_BAD)
def test_unresolvable_requests_are_denied_naming_the_annotation(
    annotations: dict[str, str], key: str, message: str
) -> None:
    verdict = decide(tf_pod(annotations))
    assert not verdict.allowed
    assert key in verdict.message
    assert message in verdict.message


def test_no_default_pool_is_denied() -> None:
    verdict = decide(tf_pod(), ClusterDefaults())
    assert not verdict.allowed
    assert ann.GPU_POOL in verdict.message
    assert "no default GPUPool" in verdict.message


def test_ld_preload_from_a_reference_is_denied() -> None:
    pod = tf_pod()
    container(pod)["env"] = [{"name": "LD_PRELOAD", "valueFrom": {"configMapKeyRef": {"name": "x", "key": "y"}}}]
    verdict = decide(pod)
    assert not verdict.allowed
    assert "LD_PRELOAD" in verdict.message


@pytest.mark.parametrize(
    "path", ["/run/tensor-fusion/workers/default/other-pod", "/run/tensor-fusion", "/run/tensor-fusion/", "/run", "/"]
)
def test_a_hostpath_onto_the_hypervisor_state_directory_is_denied(path: str) -> None:
    pod = tf_pod()
    pod["spec"]["volumes"] = [{"name": "data", "emptyDir": {}}, {"name": "sneak", "hostPath": {"path": path}}]
    verdict = decide(pod)
    assert not verdict.allowed
    assert "spec.volumes[1].hostPath.path" in verdict.message
    assert "state directory '/run/tensor-fusion'" in verdict.message


def test_other_hostpaths_are_allowed() -> None:
    pod = tf_pod()
    pod["spec"]["volumes"] = [
        {"name": "data", "hostPath": {"path": "/data/models"}},
        {"name": "r", "hostPath": {"path": "/run/tensor-fusion-other"}},
    ]
    assert decide(pod).allowed


# ---- injection ----------------------------------------------------------------------------------


def test_a_tf_pod_gets_the_shim_region_env_scheduler_and_loses_nvidia_gpu() -> None:
    pod = tf_pod(owner=owner_ref("ReplicaSet", "web-7d4b9", "rs-1"), labels={"pod-template-hash": "7d4b9"})
    out = mutated(pod)
    spec = out["spec"]
    assert spec["schedulerName"] == "tensor-fusion-scheduler"
    init = spec["initContainers"][0]
    assert init["name"] == INIT_CONTAINER
    assert init["image"] == CONFIG.image
    assert init["command"] == [
        *("tensor-fusion", "shim", "install", "--source", "/opt/tf/libtfshim.so"),
        *("--to", "/tensor-fusion/lib/libtfshim.so", "--wait-region", "/run/tensor-fusion/worker/shm"),
        *("--timeout", "120"),
    ]
    assert {m["mountPath"]: m.get("readOnly", False) for m in init["volumeMounts"]} == {
        "/tensor-fusion/lib": False,
        "/run/tensor-fusion/worker": True,  # it only waits for the region
    }
    assert [e["name"] for e in init["env"]] == ["TF_POD_NAME", "TF_POD_NAMESPACE"]  # for its subPathExpr
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes[SHIM_VOLUME] == {"name": SHIM_VOLUME, "emptyDir": {"sizeLimit": "64Mi"}}
    assert volumes[REGION_VOLUME]["hostPath"] == {"path": "/run/tensor-fusion/workers", "type": "DirectoryOrCreate"}
    mounts = {m["mountPath"]: m for m in container(out)["volumeMounts"]}
    assert mounts["/tensor-fusion/lib"] == {"name": SHIM_VOLUME, "mountPath": "/tensor-fusion/lib", "readOnly": True}
    # The region directory read-only (limits), only the usage file over it read-write.
    region_dir, usage = mounts["/run/tensor-fusion/worker"], mounts["/run/tensor-fusion/worker/shm"]
    assert (region_dir["name"], region_dir["readOnly"]) == (REGION_VOLUME, True)
    assert region_dir["subPathExpr"] == "$(TF_POD_NAMESPACE)/$(TF_POD_NAME)"
    assert (usage["name"], usage.get("readOnly", False)) == (REGION_VOLUME, False)
    assert usage["subPathExpr"] == "$(TF_POD_NAMESPACE)/$(TF_POD_NAME)/shm"
    variables = env(out)
    assert variables["LD_PRELOAD"] == "/tensor-fusion/lib/libtfshim.so"
    assert variables["TF_SHM_PATH"] == "/run/tensor-fusion/worker/shm"
    assert variables["TF_POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert variables["TF_WORKLOAD"] == "web"
    assert variables["TF_GPU_POOL"] == "prod-shared"  # the GPUPool the controller creates
    resources = container(out)["resources"]
    assert resources == {"limits": {"cpu": "1"}}
    labels = out["metadata"]["labels"]
    assert labels[ann.LABEL_WORKLOAD] == "web"
    annotations = out["metadata"]["annotations"]
    assert annotations[ann.TFLOPS_REQUEST] == "10"
    assert annotations[ann.VRAM_REQUEST] == "4Gi"
    assert annotations[ann.GPU_POOL] == "prod-shared"
    assert annotations[ann.QOS] == "medium"
    assert annotations[canary_keys.MODE_ANNOTATION] == "tensor-fusion"
    # Nothing the user wrote elsewhere is touched.
    assert container(out)["image"] == "python:3.11"
    assert ann.ENABLED_REPLICAS not in annotations
    assert canary_keys.DELETION_COST not in annotations


def test_mutation_is_idempotent() -> None:
    pod = tf_pod({ann.WORKLOAD_PROFILE: "inference"}, containers=["main", "sidecar"])
    pod["metadata"]["annotations"][ann.INJECT_CONTAINER] = "main"
    container(pod)["env"] = [{"name": "LD_PRELOAD", "value": "/usr/lib/libjemalloc.so"}]
    once = mutated(pod)
    twice = decide(once, uid="req-2")
    assert twice.allowed
    assert twice.patch is None
    assert env(once)["LD_PRELOAD"] == "/tensor-fusion/lib/libtfshim.so:/usr/lib/libjemalloc.so"


def test_only_the_inject_container_gets_the_shim_but_all_lose_nvidia_gpu() -> None:
    pod = tf_pod(
        {ann.TFLOPS_LIMIT: "10", ann.VRAM_LIMIT: "1Gi", ann.INJECT_CONTAINER: "sidecar"}, containers=["a", "sidecar"]
    )
    out = mutated(pod)
    assert "LD_PRELOAD" in env(out, "sidecar")
    assert "env" not in container(out, "a")
    assert all("nvidia.com/gpu" not in str(c["resources"]) for c in out["spec"]["containers"])


def test_profile_then_pool_defaults_fill_what_annotations_leave() -> None:
    out = mutated(tf_pod({ann.WORKLOAD_PROFILE: "inference", ann.QOS: "high"}))
    annotations = out["metadata"]["annotations"]
    assert annotations[ann.GPU_POOL] == "prod-premium"  # from the profile, as the GPUPool name
    assert annotations[ann.QOS] == "high"  # the annotation beats the profile's critical
    assert annotations[ann.TFLOPS_REQUEST] == "20"
    assert annotations[ann.TFLOPS_LIMIT] == "40"
    assert annotations[ann.VRAM_LIMIT] == "8Gi"
    assert annotations[ann.GPU_COUNT] == "2"
    assert annotations[ann.IS_LOCAL_GPU] == "true"  # the pool's defaultUsingLocalGPU


def test_annotations_beat_the_profile_amounts() -> None:
    out = mutated(tf_pod({ann.WORKLOAD_PROFILE: "inference", ann.TFLOPS_LIMIT: "5", ann.VRAM_LIMIT: "2Gi"}))
    annotations = out["metadata"]["annotations"]
    assert (annotations[ann.TFLOPS_REQUEST], annotations[ann.TFLOPS_LIMIT]) == ("5", "5")
    assert annotations[ann.VRAM_LIMIT] == "2Gi"


def test_nvidia_gpu_count_becomes_gpu_count_when_unset() -> None:
    out = mutated(tf_pod(gpus=4))
    assert out["metadata"]["annotations"][ann.GPU_COUNT] == "4"


def test_dedicated_gpu_needs_no_amounts() -> None:
    out = mutated(tf_pod({ann.DEDICATED_GPU: "true"}))
    assert out["metadata"]["annotations"][ann.DEDICATED_GPU] == "true"


def test_system_annotations_set_by_the_user_are_removed_with_a_warning() -> None:
    pod = tf_pod({ann.TFLOPS_LIMIT: "10", ann.VRAM_LIMIT: "1Gi", ann.GPU_IDS: "gpu-a"})
    verdict = decide(pod)
    assert verdict.allowed
    out = apply_patch(pod, verdict.patch or [])
    assert ann.GPU_IDS not in out["metadata"]["annotations"]
    assert any(ann.GPU_IDS in w for w in verdict.warnings)


def test_unknown_keys_warn_without_denying() -> None:
    verdict = decide(tf_pod({ann.TFLOPS_LIMIT: "10", ann.VRAM_LIMIT: "1Gi", "tensor-fusion.ai/vram-limt": "1"}))
    assert verdict.allowed
    assert any("did you mean tensor-fusion.ai/vram-limit" in w for w in verdict.warnings)


def test_the_input_pod_is_not_modified() -> None:
    pod = tf_pod()
    before = copy.deepcopy(pod)
    decide(pod)
    assert pod == before


# ---- canary at the single-pod level ------------------------------------------------------------------


def test_rollback_with_enabled_replicas_zero_keeps_the_pod_native() -> None:
    pod = tf_pod({ann.TFLOPS_LIMIT: "10", ann.VRAM_LIMIT: "1Gi", ann.ENABLED_REPLICAS: "0"})
    pod["metadata"]["ownerReferences"] = [owner_ref("ReplicaSet", "web-1", "rs-1")]
    out = mutated(pod)
    assert container(out)["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "schedulerName" not in out["spec"]
    assert "initContainers" not in out["spec"]
    assert out["metadata"]["annotations"][canary_keys.MODE_ANNOTATION] == "native"
    assert decide(out, uid="again").patch is None


@pytest.mark.parametrize(
    ("ordinal", "mode"), [(0, "tensor-fusion"), (2, "tensor-fusion"), (3, "native"), (9, "native")]
)
def test_statefulset_pods_are_decided_by_ordinal(ordinal: int, mode: str) -> None:
    pod = tf_pod(
        {ann.TFLOPS_LIMIT: "10", ann.VRAM_LIMIT: "1Gi", ann.ENABLED_REPLICAS: "3"},
        name=f"db-{ordinal}",
        owner=owner_ref("StatefulSet", "db", "sts-1"),
    )
    out = mutated(pod)
    assert out["metadata"]["annotations"][canary_keys.MODE_ANNOTATION] == mode
    assert ("nvidia.com/gpu" in str(container(out)["resources"])) == (mode == "native")


def test_a_bare_pod_with_enabled_replicas_is_tf_unless_zero() -> None:
    assert mutated(tf_pod({ann.TFLOPS_LIMIT: "1", ann.VRAM_LIMIT: "1Gi", ann.ENABLED_REPLICAS: "1"}))["spec"][
        "schedulerName"
    ] == ("tensor-fusion-scheduler")


@pytest.mark.parametrize("written", ["shared", "prod-shared"])
def test_a_pool_named_by_its_cluster_entry_resolves_to_the_gpupool_name(written: str) -> None:
    """Users may write the cluster's entry name; the scheduler only knows the GPUPool the
    controller creates for it (`<cluster>-<entry>`), so that is what the pod carries."""
    pod = tf_pod(annotations={ann.GPU_POOL: written, ann.TFLOPS_LIMIT: "10", ann.VRAM_LIMIT: "4Gi"})
    annotations = out_annotations(mutated(pod, cluster()))
    assert annotations[ann.GPU_POOL] == "prod-shared"


def out_annotations(pod: dict[str, Any]) -> dict[str, str]:
    return dict(pod["metadata"]["annotations"])


# ---- NVIDIA GPU Operator coexistence ----------------------------------------------------------

ROUTING = InjectionConfig(
    image="registry.local/tensor-fusion:1.0", shim_source="/opt/tf/libtfshim.so", route_native_gpu_pods=True
)


def native_gpu_pod(gpus: str | None = "1", *, scheduler: str | None = None) -> dict[str, Any]:
    resources = {"limits": {"nvidia.com/gpu": gpus}} if gpus is not None else {}
    pod: dict[str, Any] = {
        "metadata": {"name": "native", "namespace": "default", "labels": {"app": "train"}},
        "spec": {"containers": [{"name": "main", "image": "cuda", "resources": resources}]},
    }
    if scheduler is not None:
        pod["spec"]["schedulerName"] = scheduler
    return pod


@pytest.mark.parametrize("scheduler", [None, "", "default-scheduler"])
def test_native_gpu_pods_go_to_our_scheduler_under_progressive_migration(scheduler: str | None) -> None:
    pod = native_gpu_pod(scheduler=scheduler)
    verdict = admit_review(review(pod), cluster(), ROUTING)
    assert verdict.allowed
    assert verdict.patch
    out = apply_patch(pod, verdict.patch)
    assert out["spec"]["schedulerName"] == "tensor-fusion-scheduler"
    assert out["spec"]["containers"] == pod["spec"]["containers"]  # keeps nvidia.com/gpu
    assert admit_review(review(pod), cluster(), CONFIG) == Verdict.allow()  # switched off: untouched


def test_pods_without_nvidia_gpu_are_never_routed() -> None:
    for pod in (native_gpu_pod(None), native_gpu_pod("0")):
        assert admit_review(review(pod), cluster(), ROUTING) == Verdict.allow()


def test_a_native_gpu_pod_naming_another_scheduler_keeps_it_with_a_warning() -> None:
    verdict = admit_review(review(native_gpu_pod(scheduler="volcano")), cluster(), ROUTING)
    assert verdict.allowed
    assert not verdict.patch
    assert any("volcano" in w and "NVIDIA coexistence" in w for w in verdict.warnings)


def test_native_canary_replicas_are_routed_too() -> None:
    pod = tf_pod({ann.ENABLED_REPLICAS: "0"})
    container(pod)["resources"] = {"limits": {"nvidia.com/gpu": "1"}}
    out = apply_patch(pod, admit_review(review(pod), cluster(), ROUTING).patch or [])
    assert out["spec"]["schedulerName"] == "tensor-fusion-scheduler"
    assert container(out)["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert out["metadata"]["annotations"][canary_keys.MODE_ANNOTATION] == "native"


def test_an_init_container_asking_more_gpus_counts() -> None:
    pod = native_gpu_pod(None)
    pod["spec"]["initContainers"] = [{"name": "warm", "resources": {"requests": {"nvidia.com/gpu": "2"}}}]
    assert admit_review(review(pod), cluster(), ROUTING).patch


def test_a_new_worker_of_an_autoscaled_workload_starts_at_the_applied_recommendation() -> None:
    workload = {
        "metadata": {"name": "llm", "namespace": "default"},
        "status": {
            "appliedRecommendation": {
                "requests": {"tflops": "3500m", "vram": "1800Mi"},
                "limits": {"tflops": "40", "vram": "2Gi"},
            }
        },
    }
    defaults, skipped = cluster_defaults([CLUSTER], [], [PROFILE], [workload])
    assert skipped == []
    pod = tf_pod({ann.TFLOPS_REQUEST: "20", ann.VRAM_LIMIT: "4Gi"}, labels={ann.LABEL_WORKLOAD: "llm"})
    annotations = mutated(pod, defaults)["metadata"]["annotations"]
    assert (annotations[ann.TFLOPS_REQUEST], annotations[ann.TFLOPS_LIMIT]) == ("3500m", "40")
    assert (annotations[ann.VRAM_REQUEST], annotations[ann.VRAM_LIMIT]) == ("1800Mi", "2Gi")
    other = tf_pod({ann.TFLOPS_REQUEST: "20", ann.VRAM_LIMIT: "4Gi"}, labels={ann.LABEL_WORKLOAD: "web"})
    assert mutated(other, defaults)["metadata"]["annotations"][ann.TFLOPS_REQUEST] == "20"
    bad = {**workload, "status": {"appliedRecommendation": {"requests": {"tflops": "x"}}}}
    assert cluster_defaults([CLUSTER], [], [PROFILE], [bad])[1]  # reported, not applied


# ---- the disk tier of VRAM tiering ------------------------------------------------------------

TIERED = InjectionConfig(
    image=CONFIG.image, shim_source=CONFIG.shim_source, tier_host_dir="/var/lib/tensor-fusion/tier"
)


def test_with_a_tier_directory_a_tf_pod_gets_its_own_part_of_it_and_tf_tier_dir() -> None:
    pod = tf_pod()
    verdict = admit_review(review(pod, "req-t"), cluster(), TIERED)
    assert verdict.allowed, verdict.message
    assert verdict.patch
    out = apply_patch(pod, verdict.patch)
    volumes = {v["name"]: v for v in out["spec"]["volumes"]}
    assert volumes[TIER_VOLUME]["hostPath"] == {"path": "/var/lib/tensor-fusion/tier", "type": "DirectoryOrCreate"}
    mounts = {m["mountPath"]: m for m in container(out)["volumeMounts"]}
    assert mounts[TIER_MOUNT] == {
        "name": TIER_VOLUME,
        "mountPath": TIER_MOUNT,
        "subPathExpr": "$(TF_POD_NAMESPACE)/$(TF_POD_NAME)",  # its own directory only, read-write
    }
    assert env(out)["TF_TIER_DIR"] == TIER_MOUNT
    again = admit_review(review(out, "req-t2"), cluster(), TIERED)
    assert again.allowed
    assert again.patch is None  # idempotent, the tier volume is its own and not a sneaking hostPath


def test_without_a_tier_directory_nothing_of_it_is_injected() -> None:
    out = mutated(tf_pod())
    assert TIER_VOLUME not in {v["name"] for v in out["spec"]["volumes"]}
    assert "TF_TIER_DIR" not in env(out)


@pytest.mark.parametrize("path", ["/var/lib/tensor-fusion/tier/default/other", "/var/lib/tensor-fusion", "/var"])
def test_a_hostpath_onto_the_tier_directory_is_denied(path: str) -> None:
    pod = tf_pod()
    pod["spec"]["volumes"] = [{"name": "sneak", "hostPath": {"path": path}}]
    verdict = admit_review(review(pod, "req-s"), cluster(), TIERED)
    assert not verdict.allowed
    assert "spec.volumes[0].hostPath.path" in verdict.message
    assert "VRAM tier directory '/var/lib/tensor-fusion/tier'" in verdict.message
