"""Stand-ins for kube-controller-manager's Deployment, ReplicaSet and StatefulSet pod handling.

The Kubernetes API emulator runs no controllers and calls no webhooks, so these create pods
the way the controllers do (from the template, with a controller ownerReference, many at
once) and pass each through the webhook as the API server would before storing it. Scale
down picks victims in kube-controller-manager's order (ActivePodsWithRanks): unscheduled
before scheduled, Pending < Unknown < Running, not ready before ready, lower
`controller.kubernetes.io/pod-deletion-cost` first, then newer before older. (Its
same-node "doubled up" rank, ready time and restart count are left out: the emulator runs
no kubelet, so they are equal here.) StatefulSets remove the highest ordinal first.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import itertools
import json
from collections.abc import Callable
from typing import Any

from daemons.webhook.server import Webhook
from tfcore.admission import PodReview
from tfcore.admission.patch import apply_patch
from tfcore.k8s import KubeClient, request_json

_uids = itertools.count()
_PHASES = {"Pending": 0, "Unknown": 1, "Running": 2}


class Rejected(Exception):
    pass


class Cluster:
    def __init__(
        self, api: KubeClient, webhook: Webhook, namespace: str = "default", settled: Callable[[], bool] = lambda: True
    ) -> None:
        self.api = api
        self.settled = settled
        self.webhook = webhook
        self.namespace = namespace
        self.base = f"/apis/apps/v1/namespaces/{namespace}"

    # ---- pods through admission ----

    async def admit_and_create(self, pod: dict[str, Any]) -> dict[str, Any]:
        review = PodReview(uid=f"req-{next(_uids)}", operation="CREATE", namespace=self.namespace, pod=pod)
        verdict = await self.webhook.review(review)
        if not verdict.allowed:
            raise Rejected(verdict.message)
        if verdict.patch:
            pod = apply_patch(pod, verdict.patch)
        created: dict[str, Any] = await request_json(
            self.api, "POST", f"/api/v1/namespaces/{self.namespace}/pods", body=pod
        )
        return created

    async def wait_settled(self, timeout: float = 5.0) -> None:
        """Until the webhook's pod watch has seen every pod it admitted (as informers catch up)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not self.settled():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("the webhook's pod watch never caught up")
            await asyncio.sleep(0.01)

    async def pods(self, owner_uid: str | None = None) -> list[dict[str, Any]]:
        reply = await request_json(self.api, "GET", f"/api/v1/namespaces/{self.namespace}/pods")
        items: list[dict[str, Any]] = reply["items"]
        if owner_uid is None:
            return items
        return [p for p in items if any(r["uid"] == owner_uid for r in p["metadata"].get("ownerReferences", []))]

    async def delete_pod(self, name: str) -> None:
        await request_json(self.api, "DELETE", f"/api/v1/namespaces/{self.namespace}/pods/{name}")

    # ---- Deployment -> ReplicaSet -> pods ----

    async def create_deployment(self, name: str, replicas: int, template: dict[str, Any]) -> dict[str, Any]:
        body = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, "template": template},
        }
        deployment: dict[str, Any] = await request_json(self.api, "POST", f"{self.base}/deployments", body=body)
        await self.rollout(deployment, template, replicas)
        return deployment

    async def rollout(self, deployment: dict[str, Any], template: dict[str, Any], replicas: int) -> dict[str, Any]:
        """A new template: its ReplicaSet scales to `replicas`, the others to 0 (Recreate-like)."""
        template_hash = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
        name = f"{deployment['metadata']['name']}-{template_hash}"
        template = copy.deepcopy(template)
        template["metadata"].setdefault("labels", {})["pod-template-hash"] = template_hash
        selector = {
            "matchLabels": {**deployment["spec"]["selector"]["matchLabels"], "pod-template-hash": template_hash}
        }
        body = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "labels": dict(template["metadata"]["labels"]),
                "ownerReferences": [_ref(deployment)],
            },
            "spec": {"replicas": replicas, "selector": selector, "template": template},
        }
        replica_set: dict[str, Any] = await request_json(self.api, "POST", f"{self.base}/replicasets", body=body)
        for old in await self.replica_sets(deployment):
            if old["metadata"]["uid"] != replica_set["metadata"]["uid"]:
                await self.scale(old, 0)
        await self.sync_replica_set(replica_set)
        return replica_set

    async def replica_sets(self, deployment: dict[str, Any]) -> list[dict[str, Any]]:
        reply = await request_json(self.api, "GET", f"{self.base}/replicasets")
        uid = deployment["metadata"]["uid"]
        owned = [rs for rs in reply["items"] if any(r["uid"] == uid for r in rs["metadata"].get("ownerReferences", []))]
        for replica_set in owned:  # typed lists leave out each item's kind
            replica_set.update(apiVersion="apps/v1", kind="ReplicaSet")
        return owned

    async def scale(self, replica_set: dict[str, Any], replicas: int) -> dict[str, Any]:
        name = replica_set["metadata"]["name"]
        updated: dict[str, Any] = await request_json(
            self.api,
            "PATCH",
            f"{self.base}/replicasets/{name}",
            body={"spec": {"replicas": replicas}},
            content_type="application/merge-patch+json",
        )
        await self.sync_replica_set(updated)
        return updated

    async def sync_replica_set(self, replica_set: dict[str, Any]) -> None:
        uid = replica_set["metadata"]["uid"]
        live = [p for p in await self.pods(uid) if not p["metadata"].get("deletionTimestamp")]
        want = replica_set["spec"]["replicas"]
        if len(live) < want:
            template = replica_set["spec"]["template"]
            pods = [_pod_from(template, replica_set, generate=True) for _ in range(want - len(live))]
            await asyncio.gather(*(self.admit_and_create(p) for p in pods))
            await self.wait_settled()
        for victim in sorted(live, key=deletion_rank)[: max(0, len(live) - want)]:
            await self.delete_pod(victim["metadata"]["name"])

    # ---- StatefulSet ----

    async def create_statefulset(self, name: str, replicas: int, template: dict[str, Any]) -> dict[str, Any]:
        body = {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "serviceName": name,
                "selector": {"matchLabels": {"app": name}},
                "template": template,
            },
        }
        statefulset: dict[str, Any] = await request_json(self.api, "POST", f"{self.base}/statefulsets", body=body)
        await self.sync_statefulset(statefulset, replicas)
        return statefulset

    async def sync_statefulset(self, statefulset: dict[str, Any], replicas: int) -> None:
        """OrderedReady would go one at a time; Parallel management creates them together."""
        name, uid = statefulset["metadata"]["name"], statefulset["metadata"]["uid"]
        existing = {p["metadata"]["name"]: p for p in await self.pods(uid)}
        wanted = [f"{name}-{k}" for k in range(replicas)]
        missing = []
        for ordinal, pod_name in enumerate(wanted):
            if pod_name not in existing:
                pod = _pod_from(statefulset["spec"]["template"], statefulset, generate=False)
                pod["metadata"]["name"] = pod_name
                pod["metadata"]["labels"]["apps.kubernetes.io/pod-index"] = str(ordinal)
                missing.append(pod)
        await asyncio.gather(*(self.admit_and_create(p) for p in missing))
        await self.wait_settled()
        extra = sorted((n for n in existing if n not in wanted), key=lambda n: -int(n.rsplit("-", 1)[1]))
        for pod_name in extra:
            await self.delete_pod(pod_name)


def deletion_rank(pod: dict[str, Any]) -> tuple[Any, ...]:
    """Sort key: the first pods are the ReplicaSet controller's victims."""
    status, metadata = pod.get("status") or {}, pod["metadata"]
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    try:
        cost = int((metadata.get("annotations") or {}).get("controller.kubernetes.io/pod-deletion-cost", "0"))
    except ValueError:
        cost = 0
    created = metadata.get("creationTimestamp") or ""
    return (
        bool((pod.get("spec") or {}).get("nodeName")),
        _PHASES.get(status.get("phase", "Pending"), 0),
        ready,
        cost,
        tuple(-ord(c) for c in created),  # newer first
        metadata["name"],
    )


def _ref(owner: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _pod_from(template: dict[str, Any], owner: dict[str, Any], *, generate: bool) -> dict[str, Any]:
    metadata = copy.deepcopy(template.get("metadata") or {})
    metadata["namespace"] = owner["metadata"].get("namespace", "default")
    metadata["ownerReferences"] = [_ref(owner)]
    metadata.setdefault("labels", {})
    if generate:
        metadata["generateName"] = owner["metadata"]["name"] + "-"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": copy.deepcopy(template["spec"])}
