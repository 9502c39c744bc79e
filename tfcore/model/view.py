"""A typed, read-only view over Kubernetes objects kept as plain JSON dicts (kopf's "bodies").

The dict stays the single representation (it is what the API sends, what the store holds and
what the pure operator logic reads); `Obj` and `Meta` only name the fields, so callers stop
re-typing `obj.get("metadata") or {}` and stop disagreeing on how a key is spelled.

Pure (in tfcore.model) so the pure packages can read objects this way too; tfcore.k8s
re-exports it next to the store that holds the objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class OwnerRef:
    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool

    @classmethod
    def of(cls, ref: Mapping[str, Any]) -> OwnerRef:
        return cls(
            str(ref.get("apiVersion") or ""),
            str(ref.get("kind") or ""),
            str(ref.get("name") or ""),
            str(ref.get("uid") or ""),
            bool(ref.get("controller")),
        )


@dataclass(frozen=True, slots=True)
class Meta:
    """`metadata` of one object; absent fields read as empty."""

    raw: Mapping[str, Any]

    @property
    def name(self) -> str:
        return str(self.raw.get("name") or "")

    @property
    def namespace(self) -> str | None:
        return str(self.raw.get("namespace") or "") or None

    @property
    def uid(self) -> str:
        return str(self.raw.get("uid") or "")

    @property
    def labels(self) -> Mapping[str, str]:
        return self.raw.get("labels") or {}

    @property
    def annotations(self) -> Mapping[str, str]:
        return self.raw.get("annotations") or {}

    @property
    def finalizers(self) -> tuple[str, ...]:
        return tuple(self.raw.get("finalizers") or ())

    @property
    def resource_version(self) -> str | None:
        return str(self.raw.get("resourceVersion") or "") or None

    @property
    def version(self) -> int:
        """The resourceVersion as an integer for ordering (0 when absent or not a number).

        resourceVersions are opaque to clients, but the API server's and the test emulator's
        are increasing integers; the store uses this only to drop a stale copy.
        """
        try:
            return int(self.raw.get("resourceVersion") or 0)
        except ValueError:
            return 0

    @property
    def deleting(self) -> bool:
        return bool(self.raw.get("deletionTimestamp"))

    @property
    def owners(self) -> tuple[OwnerRef, ...]:
        return tuple(OwnerRef.of(r) for r in self.raw.get("ownerReferences") or ())

    @property
    def controller(self) -> OwnerRef | None:
        """The owner reference with controller=true, if any (at most one by API rules)."""
        return next((r for r in self.owners if r.controller), None)


@dataclass(frozen=True, slots=True)
class Obj:
    """One object: `kind`, `meta`, `spec`, `status` and its store key, over the raw dict."""

    raw: Mapping[str, Any]

    @property
    def kind(self) -> str:
        return str(self.raw.get("kind") or "")

    @property
    def api_version(self) -> str:
        return str(self.raw.get("apiVersion") or "")

    @property
    def meta(self) -> Meta:
        return Meta(self.raw.get("metadata") or {})

    @property
    def spec(self) -> Mapping[str, Any]:
        return self.raw.get("spec") or {}

    @property
    def status(self) -> Mapping[str, Any]:
        return self.raw.get("status") or {}

    @property
    def key(self) -> str:
        return key_of(self.raw)


def key_of(obj: Mapping[str, Any]) -> str:
    """The store key: "namespace/name" for namespaced objects, "name" for cluster-scoped ones
    (the form client-go's MetaNamespaceKeyFunc uses)."""
    metadata = obj.get("metadata") or {}
    name = str(metadata.get("name") or "")
    namespace = metadata.get("namespace")
    return f"{namespace}/{name}" if namespace else name


def split_key(key: str) -> tuple[str | None, str]:
    """(namespace, name) of a store key; the namespace is None for cluster-scoped keys."""
    namespace, sep, name = key.partition("/")
    return (namespace, name) if sep else (None, key)
