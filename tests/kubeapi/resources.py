"""The kinds the emulator serves: built-in ones in a table, custom ones from CustomResourceDefinitions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Json = dict[str, Any]
# What a create does to `status`: drop it (most kinds with a status subresource), keep it, or
# replace it with a fixed initial value (pods start Pending, namespaces Active).
StatusOnCreate = Literal["clear", "keep"] | Json

_COMMON_FIELDS = frozenset({"metadata.name", "metadata.namespace"})
_POD_FIELDS = _COMMON_FIELDS | {
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
}
_EVENT_FIELDS = _COMMON_FIELDS | {
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
}


@dataclass
class ResourceType:
    group: str
    versions: list[str]
    plural: str
    singular: str
    kind: str
    namespaced: bool
    status_subresource: bool = False
    scale_subresource: bool = False
    builtin: bool = True
    tracks_generation: bool = False
    status_on_create: StatusOnCreate = "keep"
    return_deleted_object: bool = False
    allow_create_on_update: bool = False
    short_names: list[str] = field(default_factory=list)
    field_labels: frozenset[str] = _COMMON_FIELDS
    # Custom resources: prune + default + validate an object; raises ApiError (422).
    admit: Callable[[ResourceType, Json], Json] | None = None
    crd_name: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.group, self.plural)

    @property
    def group_resource(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def api_version(self, version: str | None = None) -> str:
        version = version or self.versions[0]
        return f"{self.group}/{version}" if self.group else version


def builtin_types() -> list[ResourceType]:
    def core(plural: str, kind: str, namespaced: bool, **kw: Any) -> ResourceType:
        return ResourceType("", ["v1"], plural, kind.lower(), kind, namespaced, **kw)

    def apps(plural: str, kind: str, short: list[str]) -> ResourceType:
        return ResourceType(
            "apps",
            ["v1"],
            plural,
            kind.lower(),
            kind,
            True,
            status_subresource=True,
            scale_subresource=True,
            tracks_generation=True,
            status_on_create="clear",
            short_names=short,
        )

    return [
        core(
            "namespaces",
            "Namespace",
            False,
            status_subresource=True,
            status_on_create={"phase": "Active"},
            return_deleted_object=True,
            short_names=["ns"],
        ),
        core("nodes", "Node", False, status_subresource=True, return_deleted_object=True, short_names=["no"]),
        core(
            "pods",
            "Pod",
            True,
            status_subresource=True,
            tracks_generation=True,
            status_on_create={"phase": "Pending"},
            return_deleted_object=True,
            short_names=["po"],
            field_labels=_POD_FIELDS,
        ),
        core("events", "Event", True, allow_create_on_update=True, short_names=["ev"], field_labels=_EVENT_FIELDS),
        core("configmaps", "ConfigMap", True, short_names=["cm"]),
        core("secrets", "Secret", True, field_labels=_COMMON_FIELDS | {"type"}),
        core(
            "services",
            "Service",
            True,
            status_subresource=True,
            status_on_create="clear",
            return_deleted_object=True,
            short_names=["svc"],
        ),
        core("serviceaccounts", "ServiceAccount", True, short_names=["sa"]),
        apps("deployments", "Deployment", ["deploy"]),
        apps("replicasets", "ReplicaSet", ["rs"]),
        apps("statefulsets", "StatefulSet", ["sts"]),
        ResourceType(
            "apps",
            ["v1"],
            "daemonsets",
            "daemonset",
            "DaemonSet",
            True,
            status_subresource=True,
            tracks_generation=True,
            status_on_create="clear",
            short_names=["ds"],
        ),  # no scale subresource
        ResourceType("apps", ["v1"], "controllerrevisions", "controllerrevision", "ControllerRevision", True),
        ResourceType(
            "policy",
            ["v1"],
            "poddisruptionbudgets",
            "poddisruptionbudget",
            "PodDisruptionBudget",
            True,
            status_subresource=True,
            tracks_generation=True,
            short_names=["pdb"],
        ),  # enforced by evictions (store.evict)
        ResourceType("coordination.k8s.io", ["v1"], "leases", "lease", "Lease", True, allow_create_on_update=True),
        ResourceType(
            "apiextensions.k8s.io",
            ["v1"],
            "customresourcedefinitions",
            "customresourcedefinition",
            "CustomResourceDefinition",
            False,
            status_subresource=True,
            tracks_generation=True,
            return_deleted_object=True,
            short_names=["crd", "crds"],
        ),
        ResourceType(
            "admissionregistration.k8s.io",
            ["v1"],
            "mutatingwebhookconfigurations",
            "mutatingwebhookconfiguration",
            "MutatingWebhookConfiguration",
            False,
            tracks_generation=True,
        ),
        ResourceType(
            "admissionregistration.k8s.io",
            ["v1"],
            "validatingwebhookconfigurations",
            "validatingwebhookconfiguration",
            "ValidatingWebhookConfiguration",
            False,
            tracks_generation=True,
        ),
    ]


def from_crd(crd: Json, admit: Callable[[ResourceType, Json], Json]) -> ResourceType:
    """The kind a CustomResourceDefinition serves (all served versions share one storage)."""
    spec = crd["spec"]
    names = spec["names"]
    served = [v for v in spec["versions"] if v.get("served", True)]
    storage = next((v for v in served if v.get("storage")), served[0])
    ordered = [storage["name"]] + [v["name"] for v in served if v is not storage]
    subresources = storage.get("subresources") or {}
    return ResourceType(
        group=spec["group"],
        versions=ordered,
        plural=names["plural"],
        singular=names.get("singular", names["kind"].lower()),
        kind=names["kind"],
        namespaced=spec["scope"] == "Namespaced",
        status_subresource="status" in subresources,
        scale_subresource=False,
        builtin=False,
        tracks_generation=True,
        status_on_create="clear" if "status" in subresources else "keep",
        return_deleted_object=True,
        short_names=list(names.get("shortNames", [])),
        admit=admit,
        crd_name=crd["metadata"]["name"],
    )
