"""Where each kind lives in the API: group, version, plural and scope, and the paths built from them.

Custom kinds come from the one registry in tfcore.model.kinds; the few built-in kinds the
daemons touch are listed here. Nothing else in the code base should spell an API path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import quote

from tfcore.model.kinds import KINDS, KindInfo
from tfcore.model.meta import API_GROUP, API_VERSION


@dataclass(frozen=True, slots=True)
class ApiResource:
    """One REST resource, e.g. ApiResource("", "v1", "pods", "Pod", namespaced=True)."""

    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool

    @classmethod
    def of(cls, info: KindInfo) -> ApiResource:
        return cls(API_GROUP, API_VERSION, info.plural, info.kind, info.scope == "Namespaced")

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def prefix(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    def collection(self, namespace: str | None = None) -> str:
        """The list/create path; across all namespaces when `namespace` is None."""
        if namespace and self.namespaced:
            return f"{self.prefix}/namespaces/{quote(namespace, safe='')}/{self.plural}"
        return f"{self.prefix}/{self.plural}"

    def item(self, name: str, namespace: str | None = None, *, subresource: str | None = None) -> str:
        """The path of one object (or of its subresource, e.g. "status", "binding")."""
        if self.namespaced and not namespace:
            raise ValueError(f"{self.kind} {name!r}: a namespaced kind needs a namespace")
        path = f"{self.collection(namespace)}/{quote(name, safe='')}"
        return f"{path}/{subresource}" if subresource else path


NODES: Final = ApiResource("", "v1", "nodes", "Node", namespaced=False)
PODS: Final = ApiResource("", "v1", "pods", "Pod", namespaced=True)
EVENTS: Final = ApiResource("", "v1", "events", "Event", namespaced=True)
REPLICASETS: Final = ApiResource("apps", "v1", "replicasets", "ReplicaSet", namespaced=True)
DEPLOYMENTS: Final = ApiResource("apps", "v1", "deployments", "Deployment", namespaced=True)
STATEFULSETS: Final = ApiResource("apps", "v1", "statefulsets", "StatefulSet", namespaced=True)
LEASES: Final = ApiResource("coordination.k8s.io", "v1", "leases", "Lease", namespaced=True)

BUILTIN: Final = (NODES, PODS, EVENTS, REPLICASETS, DEPLOYMENTS, STATEFULSETS, LEASES)
BY_KIND: Final[dict[str, ApiResource]] = {r.kind: r for r in (*BUILTIN, *(ApiResource.of(i) for i in KINDS))}


def resource_for(kind: str) -> ApiResource:
    """The resource of a kind we know; KeyError names the kind otherwise."""
    try:
        return BY_KIND[kind]
    except KeyError:
        raise KeyError(f"no API resource registered for kind {kind!r}") from None
