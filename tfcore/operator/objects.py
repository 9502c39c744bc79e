"""Small helpers over API objects as plain data: names, owner references, labels."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from tfcore.model.annotations import PREFIX
from tfcore.model.meta import GROUP_VERSION

FINALIZER: Final = PREFIX + "finalizer"
LABEL_CLUSTER: Final = PREFIX + "cluster"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
MANAGER: Final = "tensor-fusion-controller"
API_VERSION: Final = GROUP_VERSION

Obj = Mapping[str, Any]


def meta(obj: Obj) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def name_of(obj: Obj) -> str:
    return str(meta(obj).get("name") or "")


def labels_of(obj: Obj) -> dict[str, str]:
    return dict(meta(obj).get("labels") or {})


def deleting(obj: Obj) -> bool:
    return bool(meta(obj).get("deletionTimestamp"))


def controller_ref(owner: Obj) -> dict[str, Any]:
    """An owner reference making `owner` the controller of a dependent (garbage collection)."""
    return {
        "apiVersion": str(owner.get("apiVersion") or API_VERSION),
        "kind": str(owner.get("kind") or ""),
        "name": name_of(owner),
        "uid": str(meta(owner).get("uid") or ""),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def controller_of(obj: Obj) -> Mapping[str, Any] | None:
    return next((r for r in meta(obj).get("ownerReferences") or () if r.get("controller")), None)


def is_controlled_by(obj: Obj, owner: Obj) -> bool:
    ref = controller_of(obj)
    return ref is not None and ref.get("uid") == meta(owner).get("uid")


def with_owner(obj: Obj, ref: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The ownerReferences `obj` should have to carry `ref`; None when it has it already.

    An existing controller reference to another owner is replaced: one controller only.
    """
    current = [dict(r) for r in meta(obj).get("ownerReferences") or ()]
    if any(r.get("uid") == ref["uid"] for r in current):
        return None
    kept = [r for r in current if not (r.get("controller") and ref.get("controller"))]
    return [*kept, dict(ref)]


def has_finalizer(obj: Obj) -> bool:
    return FINALIZER in (meta(obj).get("finalizers") or ())
