"""The cluster defaults admission needs, kept current by informers on the tensor-fusion kinds."""

from __future__ import annotations

import logging
from typing import Final

from tfcore.admission import CanaryLedger, ClusterDefaults
from tfcore.admission.defaults import cluster_defaults
from tfcore.k8s import Event, Informer, Informers, KubeClient, Resource, Store
from tfcore.model.annotations import LABEL_ENABLED

log = logging.getLogger(__name__)

# TensorFusionWorkloads: new workers start at the autoscaler's applied recommendation.
KINDS: Final = ("TensorFusionCluster", "GPUPool", "WorkloadProfile", "TensorFusionWorkload")


class ClusterState:
    """ClusterDefaults over the store's clusters, pools and profiles, rebuilt on first use after a change."""

    def __init__(self, store: Store | None = None) -> None:
        self.store = store if store is not None else Store(KINDS)
        self._defaults: ClusterDefaults | None = None
        self._built_at = -1  # store.changes when _defaults was built

    def __call__(self) -> ClusterDefaults:
        if self._defaults is None or self._built_at != self.store.changes:
            self._built_at = self.store.changes
            clusters, pools, profiles, workloads = (list(self.store.objects(kind)) for kind in KINDS)
            self._defaults, skipped = cluster_defaults(clusters, pools, profiles, workloads)
            for line in skipped:
                log.warning("ignoring an invalid object: %s", line)
        return self._defaults


def informers(api: KubeClient, state: ClusterState) -> Informers:
    return Informers(api, state.store, [Resource.of(kind) for kind in KINDS])


def pod_informer(api: KubeClient, ledger: CanaryLedger) -> Informer:
    """Watches opted-in pods so canary reservations end as soon as their pods exist."""

    def on_event(event: Event) -> None:
        for pod in event.objects if event.type == "SYNC" else (event.obj,):
            ledger.observe(pod)

    return Informer(api, Resource.of("Pod", label_selector=f"{LABEL_ENABLED}=true"), on_event)
