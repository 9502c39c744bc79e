"""An in-memory cluster: `--cluster-state FILE` (offline what-if and capacity planning), and tests.

The file is a `kubectl get ... -o yaml` List or multi-document YAML of Nodes, Pods, GPUPools,
GPUNodes, GPUs, GPUResourceQuotas and TensorFusionClusters (other kinds are skipped and named
in `skipped`). Bind writes the annotations and the node name onto the pod here and feeds the change back to the mirror,
the same path a watch event from the API server takes.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from daemons.scheduler.mirror import INVENTORY_KINDS, KINDS, ClusterMirror
from daemons.scheduler.service import BindError
from tfcore.model.errors import Problem, ValidationError

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_cluster_state(text: str, *, where: str = "cluster state") -> tuple[list[dict[str, Any]], list[str]]:
    """(objects of the kinds we use, descriptions of the documents skipped); ValidationError if malformed."""
    try:
        documents = [d for d in yaml.load_all(text, Loader=_Loader) if d is not None]
    except yaml.YAMLError as exc:
        raise ValidationError.single(where, f"not valid YAML: {exc}", "YAML documents or a List") from None
    flat: list[Any] = []
    for doc in documents:
        kind = doc.get("kind") if isinstance(doc, dict) else None
        if isinstance(kind, str) and kind.endswith("List") and isinstance(doc.get("items"), list):
            item_kind = kind[: -len("List")] or None  # typed lists (PodList) omit each item's kind
            for item in doc["items"]:
                if isinstance(item, dict) and item_kind and "kind" not in item:
                    item["kind"] = item_kind
                flat.append(item)
        else:
            flat.append(doc)
    objects: list[dict[str, Any]] = []
    skipped: list[str] = []
    problems: list[Problem] = []
    for index, obj in enumerate(flat):
        here = f"{where}[{index}]"
        if not isinstance(obj, dict):
            problems.append(Problem(here, "not an object", "a Kubernetes object with kind and metadata.name"))
            continue
        kind = obj.get("kind")
        meta = obj.get("metadata")
        if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
            problems.append(Problem(f"{here}.metadata.name", "missing", "the object's name"))
            continue
        if kind not in KINDS:
            skipped.append(f"{kind} {meta['name']}")
            continue
        if kind == "Pod" and not meta.get("uid"):
            # Pods of a snapshot made by hand may lack a uid; their namespace/name is unique.
            meta["uid"] = f"{meta.get('namespace') or 'default'}/{meta['name']}"
        objects.append(obj)
    if problems:
        raise ValidationError(problems)
    return objects, skipped


def _namespaced(pod: Mapping[str, Any]) -> tuple[str, str]:
    meta = pod.get("metadata") or {}
    return str(meta.get("namespace") or "default"), str(meta.get("name"))


class MemoryCluster:
    """Objects by kind and name (pods by uid), feeding a ClusterMirror; a ClusterWriter for bind."""

    def __init__(self, objects: Iterable[Mapping[str, Any]] = ()) -> None:
        self.objects: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in KINDS}
        self.mirror: ClusterMirror | None = None
        self.bindings: list[tuple[str, str, str]] = []  # (namespace/name, uid, node), in order
        self._pod_keys: dict[tuple[str, str], str] = {}  # (namespace, name) -> key in objects["Pod"]
        for obj in objects:
            self._store(copy.deepcopy(dict(obj)))

    @staticmethod
    def _key(obj: Mapping[str, Any]) -> str:
        meta = obj.get("metadata") or {}
        if obj.get("kind") == "Pod":
            return str(meta.get("uid") or meta.get("name"))
        if obj.get("kind") == "GPUResourceQuota":  # namespaced: one name may be used in several namespaces
            return f"{meta.get('namespace') or 'default'}/{meta.get('name')}"
        return str(meta.get("name"))

    def _store(self, obj: dict[str, Any]) -> None:
        key = self._key(obj)
        self.objects[str(obj["kind"])][key] = obj
        if obj["kind"] == "Pod":
            self._pod_keys[_namespaced(obj)] = key

    def attach(self, mirror: ClusterMirror) -> None:
        """Deliver everything, inventory first, as a first list does."""
        self.mirror = mirror
        for kind in (*INVENTORY_KINDS, "Pod"):
            mirror.sync(kind, list(self.objects[kind].values()))

    def apply(self, obj: Mapping[str, Any]) -> None:
        """Create or replace an object (a watch ADDED/MODIFIED)."""
        stored = copy.deepcopy(dict(obj))
        self._store(stored)
        if self.mirror is not None:
            self.mirror.upsert(str(stored["kind"]), stored)

    def remove(self, kind: str, key: str) -> None:
        obj = self.objects[kind].pop(key, None)
        if obj is not None and kind == "Pod" and self._pod_keys.get(_namespaced(obj)) == key:
            del self._pod_keys[_namespaced(obj)]
        if obj is not None and self.mirror is not None:
            self.mirror.delete(kind, obj)

    def pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        key = self._pod_keys.get((namespace, name))
        return self.objects["Pod"].get(key) if key is not None else None

    # ClusterWriter
    async def annotate_pod(self, namespace: str, name: str, annotations: Mapping[str, str | None]) -> None:
        pod = self.pod(namespace, name)
        if pod is None:
            raise BindError(f"pod {namespace}/{name} not found")
        current = pod.setdefault("metadata", {}).setdefault("annotations", {})
        for key, value in annotations.items():
            if value is None:
                current.pop(key, None)
            else:
                current[key] = value
        if self.mirror is not None:
            self.mirror.upsert("Pod", pod)

    async def bind_pod(self, namespace: str, name: str, uid: str, node: str) -> None:
        pod = self.pod(namespace, name)
        if pod is None or (uid and (pod.get("metadata") or {}).get("uid") != uid):
            raise BindError(f"pod {namespace}/{name} (uid {uid}) not found")
        spec = pod.setdefault("spec", {})
        if spec.get("nodeName"):
            raise BindError(f"pod {namespace}/{name} is already bound to {spec['nodeName']}")
        spec["nodeName"] = node
        self.bindings.append((f"{namespace}/{name}", uid, node))
        if self.mirror is not None:
            self.mirror.upsert("Pod", pod)
