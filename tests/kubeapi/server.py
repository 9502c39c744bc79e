"""The HTTP face of the emulator: Kubernetes REST paths, discovery, watch streams (aiohttp.web)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from typing import Any

from aiohttp import web

from tests.kubeapi import errors
from tests.kubeapi.admission import clone
from tests.kubeapi.patches import PatchError, json_patch, merge_patch
from tests.kubeapi.resources import ResourceType
from tests.kubeapi.selectors import FieldTest, Requirement, parse_field_selector, parse_label_selector
from tests.kubeapi.store import APPLY_PATCH, MERGE_PATCH, Store

Json = dict[str, Any]

VERSION_INFO: Json = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.0-tensor-fusion-emulator",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.24.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}
_TRUE = {"1", "t", "T", "true", "TRUE", "True"}
_FALSE = {"0", "f", "F", "false", "FALSE", "False"}
_NOT_FOUND = errors.ApiError(404, "NotFound", "the server could not find the requested resource")


def parse_bool(value: str | None, name: str) -> bool:
    """Go's strconv.ParseBool, which is what the server uses: `watch=True` works."""
    if value is None or value == "":
        return False
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise errors.bad_request(f'invalid boolean value "{value}" for {name}')


def _reply(body: Json, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(body).encode(), status=status, content_type="application/json")


class KubeApp:
    """Routes every request through one dispatcher, mirroring the server's URL grammar."""

    def __init__(self, store: Store, bookmark_interval: float = 60.0) -> None:
        self.store = store
        self.bookmark_interval = bookmark_interval
        self.app = web.Application(client_max_size=16 * 1024 * 1024)
        self.app.router.add_route("*", "/{tail:.*}", self.handle)
        self.app.on_shutdown.append(self._on_shutdown)

    async def _on_shutdown(self, _app: web.Application) -> None:
        self.store.close_watchers()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._dispatch(request)
        except errors.ApiError as failure:
            return _reply(failure.status(), failure.code)
        except Exception as bug:  # an emulator bug: answer like the server's InternalError, loudly
            logging.getLogger(__name__).exception("emulator failure on %s %s", request.method, request.path)
            message = f"Internal error occurred: {type(bug).__name__}: {bug}"
            return _reply(errors.ApiError(500, "InternalError", message).status(), 500)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        if request.method == "GET":
            if parts == ["version"]:
                return _reply(VERSION_INFO)
            if parts in (["healthz"], ["readyz"], ["livez"]):
                return web.Response(text="ok")
            if parts == ["api"]:
                address = request.host
                cidrs = [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}]
                return _reply({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": cidrs})
            if parts == ["api", "v1"]:
                return _reply(self._resource_list("", "v1"))
            if parts == ["apis"]:
                groups = [self._group(g, v) for g, v in sorted(self.store.served_groups().items()) if g]
                return _reply({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
            if len(parts) == 2 and parts[0] == "apis":
                versions = self.store.served_groups().get(parts[1])
                if not versions or not parts[1]:
                    raise _NOT_FOUND
                return _reply({"kind": "APIGroup", "apiVersion": "v1", **self._group(parts[1], versions)})
            if len(parts) == 3 and parts[0] == "apis":
                if parts[2] not in self.store.served_groups().get(parts[1], []):
                    raise _NOT_FOUND
                return _reply(self._resource_list(parts[1], parts[2]))
        if len(parts) >= 3 and parts[:2] == ["api", "v1"]:
            return await self._resource(request, "", "v1", parts[2:])
        if len(parts) >= 4 and parts[0] == "apis":
            return await self._resource(request, parts[1], parts[2], parts[3:])
        raise _NOT_FOUND

    # ---------------------------------------------------------------- discovery

    @staticmethod
    def _group(name: str, versions: list[str]) -> Json:
        listed = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
        return {"name": name, "versions": listed, "preferredVersion": listed[0]}

    def _resource_list(self, group: str, version: str) -> Json:
        resources: list[Json] = []
        for rtype in sorted(self.store.types.values(), key=lambda r: r.plural):
            if rtype.group != group or version not in rtype.versions:
                continue
            verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
            entry = {
                "name": rtype.plural,
                "singularName": rtype.singular,
                "namespaced": rtype.namespaced,
                "kind": rtype.kind,
                "verbs": verbs,
            }
            if rtype.short_names:
                entry["shortNames"] = rtype.short_names
            resources.append(entry)
            subs = [("status", rtype.kind)] if rtype.status_subresource else []
            subs += [("scale", "Scale")] if rtype.scale_subresource else []
            for sub, kind in subs:
                resources.append(
                    {
                        "name": f"{rtype.plural}/{sub}",
                        "singularName": "",
                        "namespaced": rtype.namespaced,
                        "kind": kind,
                        "verbs": ["get", "patch", "update"],
                    }
                )
            if rtype.key == ("", "pods"):
                for sub, kind in (("binding", "Binding"), ("eviction", "Eviction")):
                    resources.append(
                        {
                            "name": f"pods/{sub}",
                            "singularName": "",
                            "namespaced": True,
                            "kind": kind,
                            "verbs": ["create"],
                        }
                    )
        if group == "":
            resources.append(
                {
                    "name": "bindings",
                    "singularName": "binding",
                    "namespaced": True,
                    "kind": "Binding",
                    "verbs": ["create"],
                }
            )
        group_version = f"{group}/{version}" if group else version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}

    # ---------------------------------------------------------------- resources

    async def _resource(self, request: web.Request, group: str, version: str, rest: list[str]) -> web.StreamResponse:
        namespace: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
            namespace, rest = rest[1], rest[2:]
        if len(rest) > 3:
            raise _NOT_FOUND
        plural, name, sub = rest[0], (rest[1] if len(rest) > 1 else None), (rest[2] if len(rest) > 2 else "")
        if group == "" and plural == "bindings" and namespace is not None and name is None:
            if request.method != "POST":
                raise errors.method_not_allowed("bindings only support create")
            binding = await self._body(request)
            pod_name = (binding.get("metadata") or {}).get("name", "") if isinstance(binding, dict) else ""
            return _reply(self.store.bind(namespace, pod_name, binding), 201)
        rtype = self.store.resolve(group, version, plural)
        if rtype is None or (namespace is not None and not rtype.namespaced):
            raise _NOT_FOUND
        if name is not None and rtype.namespaced and namespace is None:
            raise _NOT_FOUND
        if request.query.get("dryRun"):
            raise errors.bad_request("dryRun is not supported by the Kubernetes API emulator")
        if name is None:
            return await self._collection(request, rtype, namespace)
        if sub:
            return await self._subresource(request, rtype, namespace, name, sub)
        return await self._item(request, rtype, namespace, name)

    def _selectors(self, request: web.Request, rtype: ResourceType) -> tuple[list[Requirement], list[FieldTest]]:
        try:
            labels = parse_label_selector(request.query.get("labelSelector"))
            fields = parse_field_selector(request.query.get("fieldSelector"), rtype.field_labels, rtype.kind)
        except ValueError as problem:
            raise errors.bad_request(str(problem)) from None
        return labels, fields

    async def _collection(self, request: web.Request, rtype: ResourceType, namespace: str | None) -> web.StreamResponse:
        if request.method == "GET":
            labels, fields = self._selectors(request, rtype)
            if parse_bool(request.query.get("watch"), "watch"):
                return await self._watch(request, rtype, namespace, labels, fields)
            limit = self._int(request, "limit") or 0
            listing = self.store.list_objects(
                rtype,
                namespace,
                labels=labels,
                fields=fields,
                limit=limit,
                continue_token=request.query.get("continue"),
            )
            return _reply(listing)
        if request.method == "POST":
            return _reply(self.store.create(rtype, namespace, await self._body(request)), 201)
        if request.method == "DELETE":
            labels, fields = self._selectors(request, rtype)
            options = await self._delete_options(request)
            return _reply(self.store.delete_collection(rtype, namespace, labels, fields, options))
        raise errors.method_not_allowed(f"{request.method} is not supported on a collection")

    async def _item(
        self, request: web.Request, rtype: ResourceType, namespace: str | None, name: str
    ) -> web.StreamResponse:
        if request.method == "GET":
            return _reply(self.store.get(rtype, namespace, name))
        if request.method == "PUT":
            obj, created = self.store.replace(rtype, namespace, name, await self._body(request))
            return _reply(obj, 201 if created else 200)
        if request.method == "PATCH":
            return _reply(self.store.patch(rtype, namespace, name, await self._patch_body(request)))
        if request.method == "DELETE":
            obj = self.store.delete(rtype, namespace, name, await self._delete_options(request))
            if rtype.return_deleted_object or obj["metadata"].get("deletionTimestamp"):
                return _reply(obj)
            details = {"name": name, "kind": rtype.plural, "uid": obj["metadata"]["uid"]}
            if rtype.group:
                details["group"] = rtype.group
            return _reply(
                {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}
            )
        raise errors.method_not_allowed(f"{request.method} is not supported on an object")

    async def _subresource(
        self, request: web.Request, rtype: ResourceType, namespace: str | None, name: str, sub: str
    ) -> web.StreamResponse:
        if sub == "status" and rtype.status_subresource:
            if request.method == "GET":
                return _reply(self.store.get(rtype, namespace, name))
            if request.method == "PUT":
                return _reply(self.store.replace(rtype, namespace, name, await self._body(request), "status")[0])
            if request.method == "PATCH":
                return _reply(self.store.patch(rtype, namespace, name, await self._patch_body(request), "status"))
        elif sub in ("binding", "eviction") and rtype.key == ("", "pods") and request.method == "POST":
            body = await self._body(request)
            assert namespace is not None
            if sub == "binding":
                return _reply(self.store.bind(namespace, name, body), 201)
            return _reply(self.store.evict(namespace, name), 201)
        elif sub == "scale" and rtype.scale_subresource:
            return await self._scale(request, rtype, namespace, name)
        else:
            raise _NOT_FOUND
        raise errors.method_not_allowed(f"{request.method} is not supported on {rtype.plural}/{sub}")

    async def _scale(
        self, request: web.Request, rtype: ResourceType, namespace: str | None, name: str
    ) -> web.StreamResponse:
        obj = self.store.get(rtype, namespace, name)
        scale = self._as_scale(rtype, obj)
        if request.method == "GET":
            return _reply(scale)
        if request.method == "PUT":
            wanted = await self._body(request)
        elif request.method == "PATCH":
            content_type, patch = await self._patch_body(request)
            try:
                if content_type == "application/json-patch+json":
                    wanted = json_patch(scale, patch)
                elif content_type in (MERGE_PATCH, "application/strategic-merge-patch+json") and isinstance(
                    patch, dict
                ):
                    wanted = merge_patch(scale, patch)
                else:
                    raise errors.unsupported_media(["application/json-patch+json", MERGE_PATCH])
            except PatchError as problem:
                raise errors.bad_request(str(problem)) from None
        else:
            raise errors.method_not_allowed(f"{request.method} is not supported on {rtype.plural}/scale")
        replicas = ((wanted or {}).get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            cause = errors.cause(
                "spec.replicas", "FieldValueInvalid", "Invalid value: must be greater than or equal to 0"
            )
            raise errors.invalid(rtype, name, [cause])
        update: Json = {"spec": {"replicas": replicas}}
        if precondition := (wanted.get("metadata") or {}).get("resourceVersion"):
            update["metadata"] = {"resourceVersion": precondition}
        updated = self.store.patch(rtype, namespace, name, (MERGE_PATCH, update))
        return _reply(self._as_scale(rtype, updated))

    @staticmethod
    def _as_scale(rtype: ResourceType, obj: Json) -> Json:
        meta = {
            k: obj["metadata"][k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in obj["metadata"]
        }
        match = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        status = {
            "replicas": (obj.get("status") or {}).get("replicas", 0),
            "selector": ",".join(f"{k}={v}" for k, v in sorted(match.items())),
        }
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": meta,
            "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 1)},
            "status": status,
        }

    # ---------------------------------------------------------------- request bodies

    @staticmethod
    def _int(request: web.Request, name: str) -> int | None:
        raw = request.query.get(name)
        if raw in (None, ""):
            return None
        try:
            return int(raw)
        except ValueError:
            raise errors.bad_request(f'invalid value "{raw}" for {name}: expected an integer') from None

    @staticmethod
    async def _body(request: web.Request) -> Any:
        raw = await request.read()
        if not raw:
            raise errors.bad_request("the request body is empty")
        try:
            return json.loads(raw)
        except ValueError as problem:
            raise errors.bad_request(f"the request body is not valid JSON: {problem}") from None

    async def _patch_body(self, request: web.Request) -> tuple[str, Any]:
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type == APPLY_PATCH:
            raise errors.unsupported_media(
                ["application/json-patch+json", MERGE_PATCH, "application/strategic-merge-patch+json"]
            )
        return content_type, await self._body(request)

    async def _delete_options(self, request: web.Request) -> Json:
        raw = await request.read()
        options: Json = {}
        if raw:
            try:
                parsed = json.loads(raw)
            except ValueError:
                raise errors.bad_request("the DeleteOptions body is not valid JSON") from None
            options = parsed if isinstance(parsed, dict) else {}
        for name in ("propagationPolicy", "orphanDependents", "gracePeriodSeconds"):
            if name in request.query and name not in options:
                value: Any = request.query[name]
                options[name] = parse_bool(value, name) if name == "orphanDependents" else value
        return options

    # ---------------------------------------------------------------- watch

    async def _watch(
        self,
        request: web.Request,
        rtype: ResourceType,
        namespace: str | None,
        labels: list[Requirement],
        fields: list[FieldTest],
    ) -> web.StreamResponse:
        timeout = self._int(request, "timeoutSeconds")
        bookmarks = parse_bool(request.query.get("allowWatchBookmarks"), "allowWatchBookmarks")
        initial_events = parse_bool(request.query.get("sendInitialEvents"), "sendInitialEvents")
        since = None if initial_events else request.query.get("resourceVersion")
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        try:
            watcher = self.store.watch(rtype, namespace, labels, fields, since)
        except errors.ApiError as failure:
            if failure.code != 410:
                raise
            await response.prepare(request)  # the server answers 200, then an ERROR event
            await response.write(json.dumps({"type": "ERROR", "object": failure.status()}).encode() + b"\n")
            await response.write_eof()
            return response
        initial = watcher.queue.qsize() if initial_events else -1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout else math.inf
        try:
            await response.prepare(request)
            while True:
                if initial == 0 and bookmarks:
                    await self._bookmark(response, rtype, {"k8s.io/initial-events-end": "true"})
                initial -= 1
                remaining = deadline - loop.time()
                if remaining <= 0:
                    if bookmarks:
                        await self._bookmark(response, rtype)
                    break
                wait = min(remaining, self.bookmark_interval if bookmarks else math.inf)
                try:
                    item = await asyncio.wait_for(watcher.queue.get(), None if math.isinf(wait) else wait)
                except TimeoutError:
                    if bookmarks and loop.time() < deadline:
                        await self._bookmark(response, rtype)
                    continue
                if item is None:
                    break
                kind, obj = item
                await response.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")
            with contextlib.suppress(ConnectionError):
                await response.write_eof()
        except ConnectionError:
            pass  # the client went away
        finally:
            self.store.unwatch(watcher)
        return response

    async def _bookmark(
        self, response: web.StreamResponse, rtype: ResourceType, annotations: dict[str, str] | None = None
    ) -> None:
        metadata: Json = {"resourceVersion": str(self.store.rv)}
        if annotations:
            metadata["annotations"] = annotations
        obj = {"kind": rtype.kind, "apiVersion": rtype.api_version(), "metadata": metadata}
        await response.write(json.dumps({"type": "BOOKMARK", "object": clone(obj)}).encode() + b"\n")
