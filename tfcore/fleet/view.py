"""From Kubernetes objects (a cluster snapshot or the controller's lists) to per-pool fleet plans.

One module reads the objects for both the controller and the offline what-if CLI, so what
`tensor-fusion rollout plan` / `capacity plan` print is what the controller would do next.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import yaml

from tfcore.fleet import capacity, compaction, requirements, rollout
from tfcore.fleet.catalogue import CATALOGUES
from tfcore.fleet.claims import TFLOPS_OFFERED, VRAM_OFFERED
from tfcore.model.annotations import GPU_POOL
from tfcore.model.codec import decode
from tfcore.model.errors import Problem, ValidationError
from tfcore.model.pool import ComputingVendorConfig, GPUPool, TensorFusionCluster
from tfcore.model.quantity import Quantity
from tfcore.sched.units import capacity_bytes, capacity_milli_tflops

Obj = Mapping[str, Any]
HYPERVISOR_COMPONENT: Final = "hypervisor"
COMPONENT_LABEL: Final = "app.kubernetes.io/component"
REVISION_LABEL: Final = "controller-revision-hash"
CLAIM_TIMEOUT: Final = timedelta(minutes=15)
MANAGED_MODES: Final = ("Provisioned", "Karpenter")


@dataclass
class Snapshot:
    """Objects by kind, as listed from the API server or read from a file."""

    by_kind: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def of(cls, objects: Iterable[dict[str, Any]]) -> Snapshot:
        snap = cls()
        for obj in objects:
            snap.by_kind.setdefault(str(obj.get("kind")), []).append(obj)
        return snap

    def all(self, kind: str) -> list[dict[str, Any]]:
        return self.by_kind.get(kind, [])

    def pools(self) -> list[tuple[dict[str, Any], GPUPool | ValidationError]]:
        """Each GPUPool object with its decoded model, or why it does not decode (one bad pool
        must not stop the others)."""
        found: list[tuple[dict[str, Any], GPUPool | ValidationError]] = []
        for obj in sorted(self.all("GPUPool"), key=_name):
            try:
                found.append((obj, decode(dict(obj), GPUPool, where=f"GPUPool/{_name(obj)}")))
            except ValidationError as exc:
                found.append((obj, exc))
        return found

    def vendor(self) -> ComputingVendorConfig | None:
        for obj in self.all("TensorFusionCluster"):
            cluster = decode(dict(obj), TensorFusionCluster, where=f"TensorFusionCluster/{_name(obj)}")
            if cluster.spec and cluster.spec.computing_vendor and cluster.spec.computing_vendor.enable is not False:
                return cluster.spec.computing_vendor
        return None


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _labels(obj: Obj) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def _annotations(obj: Obj) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("annotations") or {}


def _created(obj: Obj) -> datetime | None:
    text = (obj.get("metadata") or {}).get("creationTimestamp")
    return rollout.parse_time(str(text), "metadata.creationTimestamp") if text else None


def pool_nodes(snap: Snapshot, pool: str) -> list[dict[str, Any]]:
    return sorted((g for g in snap.all("GPUNode") if _labels(g).get(GPU_POOL) == pool), key=_name)


# ---- rollout ---------------------------------------------------------------------------------


def hypervisor_daemonset(snap: Snapshot) -> dict[str, Any] | None:
    found = [d for d in snap.all("DaemonSet") if _labels(d).get(COMPONENT_LABEL) == HYPERVISOR_COMPONENT]
    return min(found, key=_name) if found else None


def target_revision(snap: Snapshot, daemonset: Obj) -> str | None:
    """The DaemonSet's newest ControllerRevision hash (what OnDelete recreates pods with)."""
    uid = (daemonset.get("metadata") or {}).get("uid")
    owned = [
        r
        for r in snap.all("ControllerRevision")
        if any(
            o.get("uid") == uid or o.get("name") == _name(daemonset) for o in r["metadata"].get("ownerReferences") or ()
        )
    ]
    if not owned:
        return None
    newest = max(owned, key=lambda r: int(r.get("revision") or 0))
    return _labels(newest).get(REVISION_LABEL) or _name(newest).rsplit("-", 1)[-1]


def _pod_revision(pod: Obj) -> str | None:
    return _labels(pod).get(REVISION_LABEL)


def _ready(obj: Obj) -> bool:
    """A Pod's or Node's Ready condition is True."""
    conditions = (obj.get("status") or {}).get("conditions") or ()
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _pod_ready(pod: Obj) -> bool:
    return not (pod.get("metadata") or {}).get("deletionTimestamp") and _ready(pod)


def hypervisor_pods(snap: Snapshot, daemonset: Obj) -> dict[str, dict[str, Any]]:
    """node name -> the DaemonSet's pod there (the newest when two overlap)."""
    selector = ((daemonset.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    namespace = (daemonset.get("metadata") or {}).get("namespace")
    found: dict[str, dict[str, Any]] = {}
    for pod in snap.all("Pod"):
        meta = pod.get("metadata") or {}
        node = (pod.get("spec") or {}).get("nodeName")
        if not node or meta.get("namespace") != namespace:
            continue
        if selector and any(_labels(pod).get(k) != v for k, v in selector.items()):
            continue
        if node not in found or str(meta.get("creationTimestamp", "")) > str(
            found[node]["metadata"].get("creationTimestamp", "")
        ):
            found[node] = pod
    return found


@dataclass(frozen=True, slots=True)
class RolloutPlan:
    pool: str
    decision: rollout.Decision
    target: str | None
    pods: Mapping[str, dict[str, Any]]  # node -> old hypervisor pod to delete now

    def summary(self) -> dict[str, Any]:
        return {
            "pool": self.pool,
            "update": {"action": self.decision.action, "nodes": list(self.decision.nodes), "revision": self.target},
            "reason": self.decision.reason,
        }


def plan_rollouts(snap: Snapshot, now: datetime) -> list[RolloutPlan]:
    daemonset = hypervisor_daemonset(snap)
    target = target_revision(snap, daemonset) if daemonset else None
    pods = hypervisor_pods(snap, daemonset) if daemonset else {}
    plans: list[RolloutPlan] = []
    for pool_obj, pool in snap.pools():
        name = _name(pool_obj)
        if isinstance(pool, ValidationError):
            plans.append(RolloutPlan(name, rollout.Decision("wait", f"invalid pool: {pool}"), None, {}))
            continue
        config = pool.spec.node_manager_config if pool.spec else None
        policy = rollout.Policy.from_model(config.node_pool_rolling_update_policy if config else None)
        if daemonset is None or target is None:
            no = rollout.Decision("wait", "no hypervisor DaemonSet revision found")
            plans.append(RolloutPlan(name, no, None, {}))
            continue
        members = [
            rollout.Member(
                _name(g),
                _pod_revision(pods[_name(g)]) if _name(g) in pods else None,
                _name(g) in pods and _pod_ready(pods[_name(g)]),
            )
            for g in pool_nodes(snap, name)
        ]
        plans.append(
            _plan_pool(
                pool_obj, HYPERVISOR_COMPONENT, members, target, policy, pods=pods, version_of=_pod_revision, now=now
            )
        )
    return plans


def _plan_pool(
    pool_obj: Obj,
    component: rollout.Component,
    members: list[rollout.Member],
    target: str,
    policy: rollout.Policy,
    *,
    pods: Mapping[str, dict[str, Any]],
    version_of: Callable[[Obj], str | None],
    now: datetime,
) -> RolloutPlan:
    """One pool's step for `component`, its progress read from the pool's annotation; the pods to
    act on now are every in-flight member still on the old version: this batch's, and a batch
    whose deletions a killed controller never sent."""
    name = _name(pool_obj)
    key = rollout.STATE_ANNOTATION.format(component=component)
    text = _annotations(pool_obj).get(key)
    state = rollout.RolloutState.from_json(text, where=f"GPUPool/{name} annotation {key}") if text else None
    decision = rollout.plan(members, target, policy, state, now)
    in_flight = decision.state.in_flight if decision.state else {}
    chosen = {
        k: pods[k]
        for k in sorted(in_flight)
        if k in pods and version_of(pods[k]) != target and not pods[k]["metadata"].get("deletionTimestamp")
    }
    return RolloutPlan(name, decision, target, chosen)


# ---- client shim rollout --------------------------------------------------------------------

SHIM_INIT_CONTAINER: Final = "tf-shim-install"  # tfcore.admission.inject.INIT_CONTAINER
WEBHOOK_COMPONENT: Final = "webhook"


def client_target(snap: Snapshot) -> str | None:
    """The shim image the webhook injects now: its Deployment's `--image` argument."""
    for deployment in sorted(snap.all("Deployment"), key=_name):
        if _labels(deployment).get(COMPONENT_LABEL) != WEBHOOK_COMPONENT:
            continue
        template = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
        for container in template.get("containers") or ():
            words = [*(container.get("command") or ()), *(container.get("args") or ())]
            for index, word in enumerate(words):
                if word == "--image" and index + 1 < len(words):
                    return str(words[index + 1])
                if str(word).startswith("--image="):
                    return str(word).split("=", 1)[1]
    return None


def _shim_image(pod: Obj) -> str | None:
    for container in (pod.get("spec") or {}).get("initContainers") or ():
        if container.get("name") == SHIM_INIT_CONTAINER:
            return str(container.get("image"))
    return None


def plan_client_rollouts(snap: Snapshot, now: datetime) -> list[RolloutPlan]:
    """TF pods whose injected shim is not the webhook's current image, evicted in batches.

    Members are pods (namespace/name); an evicted pod's replacement counts as down until Ready.
    """
    target = client_target(snap)
    node_pool = {_name(g): _labels(g).get(GPU_POOL) for g in snap.all("GPUNode")}
    plans: list[RolloutPlan] = []
    for pool_obj, pool in snap.pools():
        name = _name(pool_obj)
        if isinstance(pool, ValidationError):
            plans.append(RolloutPlan(name, rollout.Decision("wait", f"invalid pool: {pool}"), None, {}))
            continue
        config = pool.spec.node_manager_config if pool.spec else None
        policy = rollout.Policy.from_model(config.node_pool_rolling_update_policy if config else None, "client")
        if target is None:
            plans.append(RolloutPlan(name, rollout.Decision("wait", "no webhook --image found"), None, {}))
            continue
        pods = {
            f"{p['metadata'].get('namespace')}/{_name(p)}": p
            for p in snap.all("Pod")
            if _shim_image(p) is not None and node_pool.get(str((p.get("spec") or {}).get("nodeName"))) == name
        }
        members = [rollout.Member(key, _shim_image(pod), _pod_ready(pod)) for key, pod in sorted(pods.items())]
        plans.append(
            _plan_pool(pool_obj, "client", members, target, policy, pods=pods, version_of=_shim_image, now=now)
        )
    return plans


def rollout_summaries(snap: Snapshot, now: datetime) -> list[dict[str, Any]]:
    """One object per pool: the hypervisor step as `update`, the client-shim step as `client`."""
    clients = {p.pool: p for p in plan_client_rollouts(snap, now)}
    lines: list[dict[str, Any]] = []
    for plan in plan_rollouts(snap, now):
        line = plan.summary()
        client = clients.get(plan.pool)
        if client is not None:
            decision = client.decision
            line["client"] = {"action": decision.action, "pods": list(decision.nodes), "image": client.target}
            line["reason"] = f"{line['reason']}; client: {decision.reason}"
        lines.append(line)
    return lines


# ---- capacity --------------------------------------------------------------------------------


def _quantity(value: object, milli: bool) -> int:
    if value is None or value == "":
        return 0
    q = Quantity(str(value))
    return capacity_milli_tflops(q) if milli else capacity_bytes(q)


def _amount(status: Obj, tflops: str, vram: str) -> capacity.Amount:
    return capacity.Amount(_quantity(status.get(tflops), True), _quantity(status.get(vram), False))


@dataclass(frozen=True, slots=True)
class Claim:
    kind: str  # NodeClaim or GPUNodeClaim
    name: str
    offered: capacity.Amount
    joined: bool
    created: datetime | None
    obj: dict[str, Any]


def node_instance(node: Obj) -> str:
    """The cloud instance id a Node's providerID ends in ("" when it has none)."""
    return str((node.get("spec") or {}).get("providerID") or "").rsplit("/", 1)[-1]


def _joined_nodes(snap: Snapshot) -> tuple[set[str], set[str]]:
    """Names of Ready nodes, and the instance ids in their providerIDs."""
    names: set[str] = set()
    instances: set[str] = set()
    for node in snap.all("Node"):
        if _ready(node):
            names.add(_name(node))
            if (node.get("spec") or {}).get("providerID"):
                instances.add(node_instance(node))
    return names, instances


def pool_claims(snap: Snapshot, pool: str) -> list[Claim]:
    names, instances = _joined_nodes(snap)
    claims: list[Claim] = []
    for obj in snap.all("NodeClaim"):
        if _labels(obj).get(GPU_POOL) != pool:
            continue
        node = (obj.get("status") or {}).get("nodeName")
        offered = capacity.Amount(
            _quantity(_annotations(obj).get(TFLOPS_OFFERED), True),
            _quantity(_annotations(obj).get(VRAM_OFFERED), False),
        )
        claims.append(Claim("NodeClaim", _name(obj), offered, bool(node and node in names), _created(obj), obj))
    for obj in snap.all("GPUNodeClaim"):
        if _labels(obj).get(GPU_POOL) != pool:
            continue
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        joined = (
            bool(status.get("instanceID") and status["instanceID"] in instances) or status.get("phase") == "Running"
        )
        offered = _amount(spec, "tflopsOffered", "vramOffered")
        claims.append(Claim("GPUNodeClaim", _name(obj), offered, joined, _created(obj), obj))
    return sorted(claims, key=lambda c: c.name)


@dataclass(frozen=True, slots=True)
class CapacityPlan:
    pool: str
    mode: str
    scale: capacity.ScaleUp | capacity.NoScaleUp | None
    expired: tuple[Claim, ...]
    verdict: compaction.Verdict | None
    claims: tuple[Claim, ...]
    reason: str

    def summary(self) -> dict[str, Any]:
        provision = None
        if isinstance(self.scale, capacity.ScaleUp):
            offer = self.scale.offer
            provision = {
                "count": self.scale.count,
                "instanceType": offer.instance.name,
                "capacityType": offer.capacity_type,
                "hourlyCost": round(self.scale.hourly_cost, 4),
            }
        return {
            "pool": self.pool,
            "provision": provision,
            "compact": [r.node for r in self.verdict.removals] if self.verdict else [],
            "expire": [c.name for c in self.expired],
            "reason": self.reason,
        }


def _gpu_pod(pod: Obj) -> bool:
    meta = pod.get("metadata") or {}
    if (meta.get("annotations") or {}).get("tensor-fusion.ai/gpu-ids"):
        return True
    for container in (pod.get("spec") or {}).get("containers") or ():
        limits = {
            **((container.get("resources") or {}).get("requests") or {}),
            **((container.get("resources") or {}).get("limits") or {}),
        }
        if any(k.endswith("/gpu") and str(v) not in ("0", "") for k, v in limits.items()):
            return True
    return False


def _requests(pod: Obj) -> tuple[int, int]:
    cpu = memory = 0
    for container in (pod.get("spec") or {}).get("containers") or ():
        requests = (container.get("resources") or {}).get("requests") or {}
        if requests.get("cpu"):
            cpu += int(Quantity(str(requests["cpu"])).value * 1000)
        if requests.get("memory"):
            memory += int(Quantity(str(requests["memory"])).value)
    return cpu, memory


def _affinity_terms(pod: Obj) -> list[list[dict[str, Any]]]:
    affinity = ((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}
    required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or {}
    return [list(t.get("matchExpressions") or ()) for t in required.get("nodeSelectorTerms") or ()]


def claimed_nodes(snap: Snapshot, claims: Sequence[Claim]) -> set[str]:
    """Nodes a claim of ours brought (status.nodeName, or the instance in the node's providerID)."""
    names = {
        str((c.obj.get("status") or {}).get("nodeName")) for c in claims if (c.obj.get("status") or {}).get("nodeName")
    }
    instances = {
        str((c.obj.get("status") or {}).get("instanceID"))
        for c in claims
        if (c.obj.get("status") or {}).get("instanceID")
    }
    for node in snap.all("Node"):
        if node_instance(node) in instances:
            names.add(_name(node))
    return names


def node_views(snap: Snapshot, pool: str, removable: set[str] | None = None) -> list[compaction.NodeView]:
    """Every node (landing spots included); candidates are the pool's nodes in `removable` (all when None)."""
    members = {_name(g): g for g in pool_nodes(snap, pool)}
    views: list[compaction.NodeView] = []
    for node in snap.all("Node"):
        name = _name(node)
        status, spec = node.get("status") or {}, node.get("spec") or {}
        allocatable = status.get("allocatable") or {}
        gpunode = members.get(name)
        gstatus = (gpunode or {}).get("status") or {}
        marked = (
            _annotations(node).get(compaction.DO_NOT_DISRUPT) == "true"
            or _labels(node).get(compaction.DO_NOT_DISRUPT) == "true"
        )
        views.append(
            compaction.NodeView(
                name=name,
                created=_created(node) or datetime.min.replace(tzinfo=UTC),
                ready=_ready(node),
                schedulable=not spec.get("unschedulable"),
                labels=_labels(node),
                taints=spec.get("taints") or (),
                cpu_milli=int(Quantity(str(allocatable.get("cpu", "0"))).value * 1000),
                memory=int(Quantity(str(allocatable.get("memory", "0"))).value),
                pods=int(Quantity(str(allocatable.get("pods", "110"))).value),
                do_not_disrupt=marked or _annotations(gpunode or {}).get(compaction.DO_NOT_DISRUPT) == "true",
                pool_member=gpunode is not None and (removable is None or name in removable),
                capacity=_amount(gstatus, "totalTFlops", "totalVRAM"),
                available=_amount(gstatus, "availableTFlops", "availableVRAM"),
            )
        )
    return views


def pod_views(snap: Snapshot) -> list[compaction.PodView]:
    views: list[compaction.PodView] = []
    for pod in snap.all("Pod"):
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        if not spec.get("nodeName") or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        cpu, memory = _requests(pod)
        owners = meta.get("ownerReferences") or ()
        views.append(
            compaction.PodView(
                key=f"{meta.get('namespace', 'default')}/{meta.get('name')}",
                node=str(spec["nodeName"]),
                daemonset=any(o.get("kind") == "DaemonSet" for o in owners),
                do_not_disrupt=(meta.get("annotations") or {}).get(compaction.DO_NOT_DISRUPT) == "true"
                or (meta.get("annotations") or {}).get(compaction.KARPENTER_DO_NOT_DISRUPT) == "true",
                uses_gpu=_gpu_pod(pod),
                cpu_milli=cpu,
                memory=memory,
                node_selector=spec.get("nodeSelector") or {},
                affinity_terms=_affinity_terms(pod),
                tolerations=spec.get("tolerations") or (),
            )
        )
    return views


def plan_capacity(
    snap: Snapshot, now: datetime, *, compact_due: Callable[[Obj, GPUPool], bool] | None = None
) -> list[CapacityPlan]:
    """Per managed pool: scale-up, expired claims and (when `compact_due` says so, default always)
    the compaction verdict, the costliest part, which the controller runs once per period."""
    vendor = snap.vendor()
    plans: list[CapacityPlan] = []
    for pool_obj, pool in snap.pools():
        name = _name(pool_obj)
        if isinstance(pool, ValidationError):
            plans.append(CapacityPlan(name, "Invalid", None, (), None, (), f"invalid pool: {pool}"))
            continue
        config = pool.spec.node_manager_config if pool.spec else None
        mode = (config.provisioning_mode if config else None) or "AutoSelect"
        if mode not in MANAGED_MODES:
            plans.append(
                CapacityPlan(name, mode, None, (), None, (), f"provisioningMode {mode}: nodes are not managed")
            )
            continue
        provisioner = config.node_provisioner if config else None
        bounds = capacity.Bounds.from_model(pool.spec.capacity_config if pool.spec else None)
        claims = pool_claims(snap, name)
        pending_claims = [c for c in claims if not c.joined]
        expired = tuple(c for c in pending_claims if c.created is not None and now - c.created >= CLAIM_TIMEOUT)
        pending = capacity.Amount(0, 0)
        for claim in pending_claims:
            if claim not in expired:
                pending = pending + claim.offered
        total = available = capacity.Amount(0, 0)
        for g in pool_nodes(snap, name):
            status = g.get("status") or {}
            total = total + _amount(status, "totalTFlops", "totalVRAM")
            available = available + _amount(status, "availableTFlops", "availableVRAM")
        seen = capacity.Observed(total, available, pending)
        vendor_name = "aws" if mode == "Karpenter" else (vendor.type if vendor and vendor.type else "")
        catalogue = CATALOGUES.get(vendor_name or "", ())
        region = vendor.params.default_region if vendor and vendor.params else None
        found = requirements.offers(
            (provisioner.gpu_requirements if provisioner else None) or [], catalogue, default_region=region
        )
        scale: capacity.ScaleUp | capacity.NoScaleUp = capacity.plan_scale_up(bounds, seen, found)
        if not catalogue and capacity.shortfall(bounds, seen)[1]:
            scale = capacity.NoScaleUp(f"no instance catalogue for computingVendor.type {vendor_name or '(unset)'}")
        verdict = None
        due = compact_due is None or compact_due(pool_obj, pool)
        if due and not pending_claims:  # removing while adding would fight
            verdict = compaction.plan_compaction(
                nodes=node_views(snap, name, claimed_nodes(snap, claims)),
                pods=pod_views(snap),
                bounds=bounds,
                total=total,
                available=available,
                now=now,
            )
        reasons = [scale.reason]
        if expired:
            reasons.append(f"claims not Ready within {CLAIM_TIMEOUT}: {', '.join(c.name for c in expired)}")
        if verdict and verdict.removals:
            reasons.append("empty nodes to remove: " + ", ".join(r.node for r in verdict.removals))
        plans.append(CapacityPlan(name, mode, scale, expired, verdict, tuple(claims), "; ".join(reasons)))
    return plans


def expired_claims(plans: Sequence[CapacityPlan]) -> list[Claim]:
    return [c for p in plans for c in p.expired]


def load_snapshot(text: str, *, where: str = "cluster state") -> Snapshot:
    """Multi-document YAML or `kubectl get -o yaml` Lists (typed lists name the items' kind)."""
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise ValidationError.single(where, f"not valid YAML: {exc}", "YAML documents or a List") from None
    objects: list[dict[str, Any]] = []
    problems: list[Problem] = []
    flat: list[Any] = []
    for doc in documents:
        kind = doc.get("kind") if isinstance(doc, dict) else None
        if isinstance(kind, str) and kind.endswith("List") and isinstance(doc.get("items"), list):
            for item in doc["items"]:
                if isinstance(item, dict) and kind != "List":
                    item.setdefault("kind", kind[: -len("List")])
                flat.append(item)
        else:
            flat.append(doc)
    for index, obj in enumerate(flat):
        here = f"{where}[{index}]"
        if not isinstance(obj, dict) or not isinstance(obj.get("kind"), str):
            problems.append(Problem(f"{here}.kind", "missing", "a Kubernetes object with kind and metadata.name"))
        elif not isinstance(obj.get("metadata"), dict) or not isinstance(obj["metadata"].get("name"), str):
            problems.append(Problem(f"{here}.metadata.name", "missing", "the object's name"))
        else:
            objects.append(obj)
    if problems:
        raise ValidationError(problems)
    return Snapshot.of(objects)
