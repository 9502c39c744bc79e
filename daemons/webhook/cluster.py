"""The cluster defaults admission needs, kept current by informers on the tensor-fusion kinds."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Final

from tfcore.admission import CanaryLedger, ClusterDefaults
from tfcore.admission.defaults import cluster_defaults
from tfcore.k8s import Event, Informer, KubeClient, Resource
from tfcore.model.annotations import LABEL_ENABLED

log = logging.getLogger(__name__)

GROUP_PATH: Final = "/apis/tensor-fusion.ai/v1"
KINDS: Final = (
    ("tensorfusionclusters", "TensorFusionCluster"),
    ("gpupools", "GPUPool"),
    ("workloadprofiles", "WorkloadProfile"),
    ("tensorfusionworkloads", "TensorFusionWorkload"),  # new workers start at the autoscaler's choice
)


class ClusterState:
    """Objects by kind and key; ClusterDefaults rebuilt on first use after a change."""

    def __init__(self) -> None:
        self._objects: dict[str, dict[str, dict[str, Any]]] = {kind: {} for _, kind in KINDS}
        self._defaults: ClusterDefaults | None = None

    def on_event(self, event: Event) -> None:
        objects = self._objects[event.kind]
        if event.type == "SYNC":
            objects.clear()
            for obj in event.objects:
                objects[_key(obj)] = obj
        elif event.type == "DELETED":
            objects.pop(_key(event.obj), None)
        else:
            objects[_key(event.obj)] = event.obj
        self._defaults = None

    def __call__(self) -> ClusterDefaults:
        if self._defaults is None:
            clusters, pools, profiles, workloads = (list(self._objects[kind].values()) for _, kind in KINDS)
            self._defaults, skipped = cluster_defaults(clusters, pools, profiles, workloads)
            for line in skipped:
                log.warning("ignoring an invalid object: %s", line)
        return self._defaults


def informers(api: KubeClient, state: ClusterState) -> Sequence[Informer]:
    return [Informer(api, Resource(f"{GROUP_PATH}/{plural}", kind), state.on_event) for plural, kind in KINDS]


def pod_informer(api: KubeClient, ledger: CanaryLedger) -> Informer:
    """Watches opted-in pods so canary reservations end as soon as their pods exist."""

    def on_event(event: Event) -> None:
        for pod in event.objects if event.type == "SYNC" else (event.obj,):
            ledger.observe(pod)

    return Informer(api, Resource("/api/v1/pods", "Pod", label_selector=f"{LABEL_ENABLED}=true"), on_event)


def _key(obj: dict[str, Any]) -> str:
    metadata = obj.get("metadata") or {}
    return f"{metadata.get('namespace') or ''}/{metadata.get('name') or ''}"
