"""TensorFusionWorkload: created for a group of worker pods, its spec and status kept current."""

from __future__ import annotations

from typing import Any, Final

from daemons.controller.context import Context, now
from tfcore.k8s import NotFound, split_key
from tfcore.operator import workload
from tfcore.operator.objects import Obj, controller_of, meta

NAME: Final = "workload"
OWNER_KINDS: Final = ("ReplicaSet", "Deployment", "StatefulSet")


async def reconcile(ctx: Context, name: str) -> None:
    namespace, workload_name = split_key(name)
    wanted = (namespace or "", workload_name)
    pods = [p for p in ctx.store.objects("Pod") if workload.workload_key(p) == wanted]
    current = ctx.store.get("TensorFusionWorkload", name)
    if current is None:
        if not pods:
            return
        owner = await _top_owner(ctx, pods[0])
        created = await ctx.write.create("TensorFusionWorkload", workload.desired_workload(wanted, pods, owner))
        if created is None:
            return  # it exists: its event brings us back with the stored object
        await ctx.recorder.emit(created, "Normal", "WorkloadCreated", f"{len(pods)} worker pod(s)")
        current = created
    elif pods:
        owner = await _top_owner(ctx, pods[0])
        spec = workload.desired_spec(pods, workload.owner_replicas(owner))
        if spec and spec != {k: v for k, v in (current.get("spec") or {}).items() if k in spec}:
            await ctx.write.patch("TensorFusionWorkload", current, {"spec": spec})
            current = ctx.store.get("TensorFusionWorkload", name) or current
    await ctx.write.status("TensorFusionWorkload", current, workload.workload_status(current, pods, now=now()))


async def _top_owner(ctx: Context, pod: Obj) -> dict[str, Any] | None:
    """The pod's owner, following a ReplicaSet up to its Deployment; None for a bare pod."""
    namespace = str(meta(pod).get("namespace") or "default")
    ref = controller_of(pod)
    owner: dict[str, Any] | None = None
    for _ in range(2):
        if ref is None or ref.get("kind") not in OWNER_KINDS:
            break
        try:
            owner = await ctx.read(str(ref["kind"]), str(ref["name"]), namespace)
        except NotFound:
            break
        ref = controller_of(owner)
    if owner is None and ref is not None:  # a Job or another kind: own by reference as it is
        owner = {
            "apiVersion": ref.get("apiVersion"),
            "kind": ref.get("kind"),
            "metadata": {"name": ref.get("name"), "uid": ref.get("uid")},
        }
    return owner
