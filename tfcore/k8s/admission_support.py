"""What pod admission reads from the API server: an owner's current pods.

A ReplicaSet's selector is immutable (apps/v1), so it is fetched once per owner UID and
cached; each canary decision then costs one label-selected pod list (a consistent read).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Final

from tfcore.k8s.client import KubeClient, request_json
from tfcore.k8s.errors import KubeError
from tfcore.k8s.resources import PODS, REPLICASETS, STATEFULSETS

OWNERS: Final = {r.kind: r for r in (REPLICASETS, STATEFULSETS)}


class OwnerPods:
    """Lists the pods controlled by an owner, matching its selector and its UID."""

    def __init__(self, api: KubeClient, *, cache_size: int = 4096, timeout: float = 5.0) -> None:
        self.api = api
        self.timeout = timeout
        self._selectors: OrderedDict[str, str] = OrderedDict()
        self._cache_size = cache_size

    async def list(self, namespace: str, kind: str, name: str, uid: str) -> list[dict[str, Any]]:
        selector = await self._selector(namespace, kind, name, uid)
        reply = await request_json(
            self.api,
            "GET",
            PODS.collection(namespace),
            query={"labelSelector": selector},
            timeout=self.timeout,
        )
        pods = [p for p in (reply or {}).get("items") or [] if isinstance(p, dict)]
        return [p for p in pods if _controller_uid(p) == uid]

    async def _selector(self, namespace: str, kind: str, name: str, uid: str) -> str:
        cached = self._selectors.get(uid)
        if cached is not None:
            self._selectors.move_to_end(uid)
            return cached
        resource = OWNERS.get(kind)
        if resource is None:
            raise KubeError(f"cannot list the pods of a {kind}")
        owner = await request_json(self.api, "GET", resource.item(name, namespace), timeout=self.timeout)
        if (owner.get("metadata") or {}).get("uid") != uid:
            raise KubeError(f"{kind} {namespace}/{name} is not the owner {uid} any more")
        selector = label_selector((owner.get("spec") or {}).get("selector") or {})
        self._selectors[uid] = selector
        if len(self._selectors) > self._cache_size:
            self._selectors.popitem(last=False)
        return selector


def label_selector(selector: Mapping[str, Any]) -> str:
    """A metav1.LabelSelector as the query-string form (matchLabels and matchExpressions)."""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or ():
        key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values") or []
        if operator == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif operator == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif operator == "Exists":
            parts.append(str(key))
        elif operator == "DoesNotExist":
            parts.append(f"!{key}")
        else:
            raise KubeError(f"unsupported label selector operator {operator!r}")
    return ",".join(parts)


def _controller_uid(pod: Mapping[str, Any]) -> str | None:
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or ():
        if isinstance(ref, Mapping) and ref.get("controller") is True:
            uid = ref.get("uid")
            return uid if isinstance(uid, str) else None
    return None
