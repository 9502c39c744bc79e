"""The emulator's state: objects, one global resourceVersion counter, a bounded event history and
the watchers fed from it, plus the server-side behaviours that are not HTTP (garbage collection,
namespace termination, finalizers). Every method is synchronous, so each request is atomic.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import uuid
from collections import deque
from collections.abc import Iterator
from typing import Any

from tests.kubeapi import errors
from tests.kubeapi.admission import admit, check_name, clone, crd_status, envelope, now
from tests.kubeapi.patches import PatchError, json_patch, merge_patch, strategic_merge
from tests.kubeapi.resources import ResourceType, builtin_types, from_crd
from tests.kubeapi.schema import make_admitter
from tests.kubeapi.selectors import FieldTest, Requirement, fields_match, labels_match
from tests.kubeapi.watchers import Event, Watcher

Json = dict[str, Any]
ObjectKey = tuple[str, str]  # (namespace or "", name)

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


class Store:
    def __init__(self, history_limit: int = 1000) -> None:
        self.types: dict[tuple[str, str], ResourceType] = {}
        self.objects: dict[tuple[str, str], dict[ObjectKey, Json]] = {}
        self.uids: dict[str, tuple[tuple[str, str], ObjectKey]] = {}
        self.rv = 0
        self.history: deque[Event] = deque(maxlen=max(1, history_limit))
        self.compacted_rv = 0  # the newest event no longer in history
        self.watchers: set[Watcher] = set()
        self._gc_pending = False
        self._next_cluster_ip = 1
        for rtype in builtin_types():
            self._serve(rtype)
        namespaces = self.types[("", "namespaces")]
        for name in DEFAULT_NAMESPACES:
            self.create(namespaces, None, {"metadata": {"name": name}})

    # ---------------------------------------------------------------- kinds

    def _serve(self, rtype: ResourceType) -> None:
        self.types[rtype.key] = rtype
        self.objects.setdefault(rtype.key, {})

    def resolve(self, group: str, version: str, plural: str) -> ResourceType | None:
        rtype = self.types.get((group, plural))
        return rtype if rtype is not None and version in rtype.versions else None

    def served_groups(self) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for rtype in self.types.values():
            versions = groups.setdefault(rtype.group, [])
            versions += [v for v in rtype.versions if v not in versions]
        return groups

    def _register_crd(self, crd: Json) -> None:
        spec = crd.get("spec") or {}
        storage = next((v for v in spec.get("versions", []) if v.get("storage")), None)
        schema = ((storage or {}).get("schema") or {}).get("openAPIV3Schema") or {"type": "object"}
        rtype = from_crd(crd, make_admitter(schema))
        existing = self.types.get(rtype.key)
        if existing is not None and existing.builtin:
            raise errors.invalid(self.types[("apiextensions.k8s.io", "customresourcedefinitions")], rtype.crd_name, [])
        self._serve(rtype)

    # ---------------------------------------------------------------- reading

    def _bucket(self, rtype: ResourceType) -> dict[ObjectKey, Json]:
        return self.objects[rtype.key]

    def _key(self, rtype: ResourceType, namespace: str | None, name: str) -> ObjectKey:
        return (namespace or "" if rtype.namespaced else "", name)

    def get(self, rtype: ResourceType, namespace: str | None, name: str) -> Json:
        obj = self._bucket(rtype).get(self._key(rtype, namespace, name))
        if obj is None:
            raise errors.not_found(rtype, name)
        return obj

    def select(
        self, rtype: ResourceType, namespace: str | None, labels: list[Requirement], fields: list[FieldTest]
    ) -> Iterator[Json]:
        for key in sorted(self._bucket(rtype)):
            obj = self._bucket(rtype)[key]
            if namespace is not None and rtype.namespaced and key[0] != namespace:
                continue
            if labels_match(labels, obj) and fields_match(fields, obj):
                yield obj

    def list_objects(
        self,
        rtype: ResourceType,
        namespace: str | None,
        *,
        labels: list[Requirement],
        fields: list[FieldTest],
        limit: int = 0,
        continue_token: str | None = None,
    ) -> Json:
        collection_rv, after = self.rv, None
        if continue_token:
            try:
                state = json.loads(base64.urlsafe_b64decode(continue_token.encode()))
                collection_rv, after = int(state["rv"]), tuple(state["after"])
            except (ValueError, KeyError, TypeError):
                raise errors.bad_request("continue key is not valid: incorrect encoded start resourceVersion") from None
            if collection_rv < self.compacted_rv:
                raise errors.gone("The provided continue parameter is too old to display a consistent list result.")
        items = [o for o in self.select(rtype, namespace, labels, fields) if after is None or self._sort_key(o) > after]
        metadata: Json = {"resourceVersion": str(collection_rv)}
        if limit and len(items) > limit:
            last = self._sort_key(items[limit - 1])
            token = json.dumps({"rv": collection_rv, "after": list(last)}).encode()
            metadata["continue"] = base64.urlsafe_b64encode(token).decode()
            metadata["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        if rtype.builtin:  # typed lists carry kind/apiVersion on the list only
            items = [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for o in items]
        return {"kind": f"{rtype.kind}List", "apiVersion": rtype.api_version(), "metadata": metadata, "items": items}

    @staticmethod
    def _sort_key(obj: Json) -> tuple[str, str]:
        return (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])

    # ---------------------------------------------------------------- watching

    def watch(
        self,
        rtype: ResourceType,
        namespace: str | None,
        labels: list[Requirement],
        fields: list[FieldTest],
        resource_version: str | None,
    ) -> Watcher:
        """Subscribe; the queue starts with what the client has not seen. Too old -> 410."""
        watcher = Watcher(rtype, namespace, labels, fields)
        if resource_version in (None, "", "0"):
            for obj in self.select(rtype, namespace, labels, fields):
                watcher.queue.put_nowait(("ADDED", obj))
        else:
            try:
                since = int(resource_version)
            except ValueError:
                raise errors.bad_request(f'invalid resource version "{resource_version}"') from None
            if since < self.compacted_rv:
                raise errors.gone(f"too old resource version: {since} ({self.compacted_rv + 1})")
            for event in self.history:
                if event.rv > since and (translated := watcher.translate(event)):
                    watcher.queue.put_nowait(translated)
        self.watchers.add(watcher)
        return watcher

    def unwatch(self, watcher: Watcher) -> None:
        self.watchers.discard(watcher)

    def close_watchers(self) -> None:
        for watcher in list(self.watchers):
            watcher.queue.put_nowait(None)
        self.watchers.clear()

    # ---------------------------------------------------------------- writing

    def _commit(self, rtype: ResourceType, kind: str, obj: Json, old: Json | None = None) -> Json:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        key = self._sort_key(obj) if rtype.namespaced else ("", obj["metadata"]["name"])
        uid = obj["metadata"]["uid"]
        if kind == "DELETED":
            self._bucket(rtype).pop(key, None)
            self.uids.pop(uid, None)
        else:
            self._bucket(rtype)[key] = obj
            self.uids[uid] = (rtype.key, key)
        event = Event(self.rv, kind, rtype.key, obj, old)
        if len(self.history) == self.history.maxlen:
            self.compacted_rv = self.history[0].rv
        self.history.append(event)
        for watcher in list(self.watchers):
            if translated := watcher.translate(event):
                watcher.queue.put_nowait(translated)
        if kind == "DELETED" or "deletionTimestamp" in obj["metadata"]:
            self._schedule_gc()
        return obj

    def create(self, rtype: ResourceType, namespace: str | None, body: Any) -> Json:
        obj = envelope(rtype, body)
        meta = obj["metadata"]
        if rtype.namespaced:
            if meta.get("namespace") not in (None, "", namespace):
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = namespace
            self._check_namespace_open(rtype, namespace or "", meta.get("name") or meta.get("generateName", ""))
        else:
            meta.pop("namespace", None)
        if meta.get("resourceVersion"):
            raise errors.bad_request("resourceVersion should not be set on objects to be created")
        if not meta.get("name"):
            prefix = meta.get("generateName")
            if not prefix:
                cause = errors.cause(
                    "metadata.name", "FieldValueRequired", "Required value: name or generateName is required"
                )
                raise errors.invalid(rtype, "", [cause])
            meta["name"] = prefix + "".join(random.choices(_GENERATE_ALPHABET, k=5))
        check_name(rtype, meta["name"])
        if self._key(rtype, namespace, meta["name"]) in self._bucket(rtype):
            raise errors.already_exists(rtype, meta["name"])
        for server_owned in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink", "managedFields"):
            meta.pop(server_owned, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now()
        if rtype.tracks_generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        if rtype.status_on_create == "clear":
            obj.pop("status", None)
        elif isinstance(rtype.status_on_create, dict):
            obj["status"] = clone(rtype.status_on_create)
        obj = admit(rtype, obj, None, self._allocate_ip)
        if rtype.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
            self._register_crd(obj)
            obj["status"] = crd_status(obj)
        return self._commit(rtype, "ADDED", obj)

    def replace(
        self, rtype: ResourceType, namespace: str | None, name: str, body: Any, subresource: str = ""
    ) -> tuple[Json, bool]:
        """PUT. Returns (object, created): kinds that allow it create on a missing name."""
        current = self._bucket(rtype).get(self._key(rtype, namespace, name))
        obj = envelope(rtype, body)
        if obj["metadata"].get("name") not in (None, name):
            raise errors.bad_request(
                f"the name of the object ({obj['metadata'].get('name')}) does not match the name on the URL ({name})"
            )
        obj["metadata"]["name"] = name
        if current is None:
            if rtype.allow_create_on_update and not subresource:
                obj["metadata"].pop("resourceVersion", None)
                return self.create(rtype, namespace, obj), True
            raise errors.not_found(rtype, name)
        if not obj["metadata"].get("resourceVersion") and not rtype.builtin:
            cause = errors.cause(
                "metadata.resourceVersion", "FieldValueInvalid", "Invalid value: 0x0: must be specified for an update"
            )
            raise errors.invalid(rtype, name, [cause])
        return self._update(rtype, current, obj, subresource), False

    def patch(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        patch: tuple[str, Any],
        subresource: str = "",
    ) -> Json:
        """`patch` is (content type, decoded body)."""
        content_type, patch_body = patch
        current = self.get(rtype, namespace, name)
        accepted = [JSON_PATCH, MERGE_PATCH] + ([STRATEGIC_PATCH] if rtype.builtin else [])
        if content_type not in accepted:
            raise errors.unsupported_media(accepted)
        try:
            if content_type == JSON_PATCH:
                patched = json_patch(current, patch_body)
            elif not isinstance(patch_body, dict):
                raise PatchError(
                    f"json: cannot unmarshal {type(patch_body).__name__} "
                    "into Go value of type map[string]interface {}",
                    malformed=True,
                )
            elif content_type == MERGE_PATCH:
                patched = merge_patch(current, patch_body)
            else:
                patched = strategic_merge(current, patch_body)
        except PatchError as problem:
            if problem.malformed:
                raise errors.bad_request(str(problem)) from None
            raise errors.ApiError(
                422, "Invalid", f"the server rejected our request due to an error in our request: {problem}"
            ) from None
        if not isinstance(patched.get("metadata"), dict):
            raise errors.bad_request("a patch may not remove metadata")
        patched["metadata"]["name"] = name
        return self._update(rtype, current, patched, subresource)

    def _update(self, rtype: ResourceType, old: Json, new: Json, subresource: str) -> Json:
        name = old["metadata"]["name"]
        meta, old_meta = new["metadata"], old["metadata"]
        if meta.get("resourceVersion") and meta["resourceVersion"] != old_meta["resourceVersion"]:
            raise errors.conflict(rtype, name, errors.STALE)
        if meta.get("uid") and meta["uid"] != old_meta["uid"]:
            raise errors.conflict(
                rtype,
                name,
                f"Precondition failed: UID in precondition: {meta['uid']}, UID in object meta: {old_meta['uid']}",
            )
        if subresource == "status":
            result = clone(old)
            if "status" in new:
                result["status"] = new["status"]
            else:
                result.pop("status", None)
            result = admit(rtype, result, old, self._allocate_ip)
        else:
            result = new
            if rtype.status_subresource:
                if "status" in old:
                    result["status"] = clone(old["status"])
                else:
                    result.pop("status", None)
            for owned in (
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "namespace",
            ):
                if owned in old_meta:
                    meta[owned] = old_meta[owned]
                else:
                    meta.pop(owned, None)
            added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
            if "deletionTimestamp" in old_meta and added:
                cause = errors.cause(
                    "metadata.finalizers",
                    "FieldValueForbidden",
                    "Forbidden: no new finalizers can be added if the object is being deleted",
                )
                raise errors.invalid(rtype, name, [cause])
            result = admit(rtype, result, old, self._allocate_ip)
            if rtype.tracks_generation and self._spec(rtype, result) != self._spec(rtype, old):
                result["metadata"]["generation"] = old_meta.get("generation", 1) + 1
        result["apiVersion"], result["kind"] = old["apiVersion"], old["kind"]
        if self._same(result, old):
            return old  # no-op writes do not reach storage: no new resourceVersion, no event
        if rtype.key == ("apiextensions.k8s.io", "customresourcedefinitions") and not subresource:
            self._register_crd(result)
        return self._write(rtype, old, result)

    def _write(self, rtype: ResourceType, old: Json, new: Json) -> Json:
        """Store an update; the one that empties the finalizers of a deleting object deletes it."""
        finished = "deletionTimestamp" in new["metadata"] and not new["metadata"].get("finalizers")
        if finished and (rtype.key != ("", "namespaces") or not self._namespace_contents(new["metadata"]["name"])):
            return self._remove(rtype, new)
        return self._commit(rtype, "MODIFIED", new, old)

    def _remove(self, rtype: ResourceType, obj: Json) -> Json:
        if rtype.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
            served = self.types.get((obj["spec"]["group"], obj["spec"]["names"]["plural"]))
            if served is not None and not served.builtin:
                for item in list(self._bucket(served).values()):
                    self._commit(served, "DELETED", clone(item))
                del self.types[served.key]
                for watcher in [w for w in self.watchers if w.rtype is served]:
                    watcher.queue.put_nowait(None)
                    self.watchers.discard(watcher)
        return self._commit(rtype, "DELETED", clone(obj))

    @staticmethod
    def _spec(rtype: ResourceType, obj: Json) -> Any:
        if rtype.builtin:
            return obj.get("spec")
        return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}

    @staticmethod
    def _same(a: Json, b: Json) -> bool:
        def strip(obj: Json) -> Json:
            meta = {k: v for k, v in obj["metadata"].items() if k not in ("resourceVersion", "managedFields")}
            return {**obj, "metadata": meta}

        return strip(a) == strip(b)

    def delete(self, rtype: ResourceType, namespace: str | None, name: str, options: Json) -> Json:
        """DELETE: the object (or a Success Status) back; finalizers defer it with deletionTimestamp."""
        current = self.get(rtype, namespace, name)
        if rtype.key == ("", "namespaces") and name in DEFAULT_NAMESPACES[:3]:
            raise errors.forbidden(f'namespaces "{name}" is forbidden: this namespace may not be deleted')
        preconditions = options.get("preconditions") or {}
        if preconditions.get("uid") and preconditions["uid"] != current["metadata"]["uid"]:
            raise errors.conflict(
                rtype,
                name,
                f"Precondition failed: UID in precondition: {preconditions['uid']}, "
                f"UID in object meta: {current['metadata']['uid']}",
            )
        if (
            preconditions.get("resourceVersion")
            and preconditions["resourceVersion"] != current["metadata"]["resourceVersion"]
        ):
            raise errors.conflict(rtype, name, errors.STALE)
        policy = options.get("propagationPolicy")
        if policy is None and options.get("orphanDependents") is not None:
            policy = "Orphan" if options["orphanDependents"] else "Background"
        if policy not in (None, "Orphan", "Background", "Foreground"):
            raise errors.bad_request(
                f"Unsupported propagationPolicy {policy!r}: expected Orphan, Background or Foreground"
            )
        return self._delete(rtype, current, policy or "Background")

    def _delete(self, rtype: ResourceType, current: Json, policy: str) -> Json:
        obj = clone(current)
        meta = obj["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        extra = {"Orphan": "orphan", "Foreground": "foregroundDeletion"}.get(policy)
        if extra and extra not in finalizers and (self._dependents(meta["uid"]) or finalizers):
            finalizers.append(extra)
        namespace_busy = rtype.key == ("", "namespaces") and bool(self._namespace_contents(meta["name"]))
        if not finalizers and not namespace_busy:
            return self._remove(rtype, obj)
        if "deletionTimestamp" in meta and finalizers == (meta.get("finalizers") or []):
            return current  # already being deleted: nothing changes
        meta.setdefault("deletionTimestamp", now())
        meta.setdefault("deletionGracePeriodSeconds", 0)
        if finalizers:
            meta["finalizers"] = finalizers
        if rtype.key == ("", "namespaces"):
            obj["status"] = {**(obj.get("status") or {}), "phase": "Terminating"}
        return self._commit(rtype, "MODIFIED", obj, current)

    def delete_collection(
        self,
        rtype: ResourceType,
        namespace: str | None,
        labels: list[Requirement],
        fields: list[FieldTest],
        options: Json,
    ) -> Json:
        deleted = [
            self.delete(rtype, namespace, o["metadata"]["name"], options)
            for o in list(self.select(rtype, namespace, labels, fields))
        ]
        return {
            "kind": f"{rtype.kind}List",
            "apiVersion": rtype.api_version(),
            "metadata": {"resourceVersion": str(self.rv)},
            "items": deleted,
        }

    # ---------------------------------------------------------------- pods

    def bind(self, namespace: str, pod_name: str, binding: Any) -> Json:
        pods = self.types[("", "pods")]
        if not isinstance(binding, dict):
            raise errors.bad_request("a Binding object is required")
        pod = self.get(pods, namespace, pod_name)
        target = binding.get("target") or {}
        if not target.get("name"):
            raise errors.invalid(pods, pod_name, [errors.cause("target.name", "FieldValueRequired", "Required value")])
        uid = (binding.get("metadata") or {}).get("uid")
        details = {"name": pod_name, "kind": "pods/binding"}
        if uid and uid != pod["metadata"]["uid"]:
            raise errors.ApiError(
                409, "Conflict", f'Operation cannot be fulfilled on pods/binding "{pod_name}": UID mismatch', details
            )
        if pod["metadata"].get("deletionTimestamp"):
            message = (
                f'Operation cannot be fulfilled on pods/binding "{pod_name}": '
                f"pod {pod_name} is being deleted, cannot be assigned to a host"
            )
            raise errors.ApiError(409, "Conflict", message, details)
        assigned = (pod.get("spec") or {}).get("nodeName")
        if assigned:
            message = (
                f'Operation cannot be fulfilled on pods/binding "{pod_name}": '
                f'pod {pod_name} is already assigned to node "{assigned}"'
            )
            raise errors.ApiError(409, "Conflict", message, details)
        bound = clone(pod)
        bound.setdefault("spec", {})["nodeName"] = target["name"]
        annotations = (binding.get("metadata") or {}).get("annotations") or {}
        if annotations:
            bound["metadata"]["annotations"] = {**(bound["metadata"].get("annotations") or {}), **annotations}
        status = bound.setdefault("status", {})
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        status["conditions"] = [
            *conditions,
            {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": now()},
        ]
        self._commit(pods, "MODIFIED", bound, pod)
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}

    def evict(self, namespace: str, pod_name: str) -> Json:
        pods = self.types[("", "pods")]
        pod = self.get(pods, namespace, pod_name)
        self._check_disruption_budgets(namespace, pod)
        self._delete(pods, pod, "Background")
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}

    def _check_disruption_budgets(self, namespace: str, pod: Json) -> None:
        """429 when evicting `pod` would take a matching PodDisruptionBudget (integer minAvailable or
        maxUnavailable, matchLabels selector) below its floor, as the disruption controller's
        disruptionsAllowed would; computed live here instead of from the budget's status."""
        budgets = self.objects.get(("policy", "poddisruptionbudgets"), {})
        pods = [p for (ns, _), p in self.objects[("", "pods")].items() if ns == namespace]

        def healthy(p: Json) -> bool:
            conditions = (p.get("status") or {}).get("conditions") or ()
            ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
            return ready and "deletionTimestamp" not in p["metadata"]

        for (ns, _), budget in budgets.items():
            spec = budget.get("spec") or {}
            wanted = (spec.get("selector") or {}).get("matchLabels") or {}
            labels = pod["metadata"].get("labels") or {}
            if ns != namespace or any(labels.get(k) != v for k, v in wanted.items()):
                continue
            covered = [
                p for p in pods if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in wanted.items())
            ]
            up = sum(healthy(p) for p in covered)
            floor = spec["minAvailable"] if isinstance(spec.get("minAvailable"), int) else None
            if isinstance(spec.get("maxUnavailable"), int):
                floor = len(covered) - spec["maxUnavailable"]
            if floor is not None and healthy(pod) and up - 1 < floor:
                raise errors.ApiError(
                    429, "TooManyRequests", "Cannot evict pod as it would violate the pod's disruption budget."
                )

    def _check_namespace_open(self, rtype: ResourceType, namespace: str, name: str) -> None:
        ns = self.objects[("", "namespaces")].get(("", namespace))
        if ns is None:
            raise errors.not_found(self.types[("", "namespaces")], namespace)
        if "deletionTimestamp" in ns["metadata"]:
            raise errors.forbidden(
                f'{rtype.group_resource} "{name}" is forbidden: unable to create new content '
                f"in namespace {namespace} because it is being terminated"
            )

    def _allocate_ip(self) -> str:
        n = self._next_cluster_ip
        self._next_cluster_ip += 1
        return f"10.96.{n // 250}.{n % 250 + 1}"

    # ---------------------------------------------------------------- garbage collection

    def _schedule_gc(self) -> None:
        if self._gc_pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.collect_garbage()
            return
        self._gc_pending = True
        loop.call_soon(self.collect_garbage)

    def _dependents(self, uid: str) -> list[tuple[ResourceType, Json]]:
        found = []
        for rkey, bucket in self.objects.items():
            for obj in bucket.values():
                if any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or []):
                    found.append((self.types[rkey], obj))
        return found

    def _namespace_contents(self, namespace: str) -> list[tuple[ResourceType, Json]]:
        return [
            (self.types[rkey], obj)
            for rkey, bucket in self.objects.items()
            if self.types[rkey].namespaced
            for (ns, _), obj in bucket.items()
            if ns == namespace
        ]

    def collect_garbage(self) -> None:
        """What kube-controller-manager's garbage collector and namespace controller would do."""
        self._gc_pending = False
        for _ in range(1000):
            if not self._gc_step():
                return

    def _gc_step(self) -> bool:
        for rkey, bucket in list(self.objects.items()):
            rtype = self.types.get(rkey)
            if rtype is None:
                continue
            for obj in list(bucket.values()):
                if self._gc_object(rtype, obj):
                    return True
        return False

    def _gc_object(self, rtype: ResourceType, obj: Json) -> bool:
        meta = obj["metadata"]
        deleting = "deletionTimestamp" in meta
        finalizers = meta.get("finalizers") or []
        if deleting and "orphan" in finalizers:
            for dep_type, dep in self._dependents(meta["uid"]):
                released = clone(dep)
                released["metadata"]["ownerReferences"] = [
                    r for r in dep["metadata"]["ownerReferences"] if r.get("uid") != meta["uid"]
                ]
                self._write(dep_type, dep, released)
            return self._drop_finalizer(rtype, obj, "orphan")
        if deleting and "foregroundDeletion" in finalizers:
            pending = [(t, d) for t, d in self._dependents(meta["uid"]) if "deletionTimestamp" not in d["metadata"]]
            for dep_type, dep in pending:
                self._delete(dep_type, dep, "Foreground")
            if pending:
                return True
            if not self._dependents(meta["uid"]):
                return self._drop_finalizer(rtype, obj, "foregroundDeletion")
        if deleting and rtype.key == ("", "namespaces"):
            contents = self._namespace_contents(meta["name"])
            live = [(t, o) for t, o in contents if "deletionTimestamp" not in o["metadata"]]
            for item_type, item in live:
                self._delete(item_type, item, "Background")
            if not contents and not finalizers:
                self._remove(rtype, obj)
                return True
            return bool(live)
        refs = meta.get("ownerReferences") or []
        if refs and not deleting:
            dangling = [r for r in refs if r.get("uid") not in self.uids]
            if len(dangling) == len(refs):
                self._delete(rtype, obj, "Background")
                return True
            if dangling:
                kept = clone(obj)
                kept["metadata"]["ownerReferences"] = [r for r in refs if r not in dangling]
                self._write(rtype, obj, kept)
                return True
        return False

    def _drop_finalizer(self, rtype: ResourceType, obj: Json, finalizer: str) -> bool:
        updated = clone(obj)
        updated["metadata"]["finalizers"] = [f for f in obj["metadata"]["finalizers"] if f != finalizer]
        if not updated["metadata"]["finalizers"]:
            del updated["metadata"]["finalizers"]
        self._write(rtype, obj, updated)
        return True
