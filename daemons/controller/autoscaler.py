"""Vertical autoscaling (`-enable-auto-scale`): the controller's I/O around tfcore.autoscale.

`Autoscaler.reconcile(workload, pods, gpus)` is the one entry point: it reads the workload's
usage from the metrics store (history once, then what is new), asks the sources, and when a
change is due, resizes the worker pods in place: the plan is checked against the GPUs' free
room first (never over-committing one), then each pod's limit annotations are patched (the
hypervisor applies them to the live region), and patches already made are undone if one
fails. It records the outcome in the workload's status (recommendation, applied resources,
a ResourceUpdate condition) and in Events. `run` drives it on the leader.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Protocol

import aiohttp

from tfcore.autoscale import config as configs
from tfcore.autoscale.apply import GPULedger, Grant, WorkerGrant, plan
from tfcore.autoscale.evaluate import Situation, evaluate
from tfcore.autoscale.external import parse_reply, request_body
from tfcore.autoscale.history import WorkloadHistory
from tfcore.autoscale.merge import SourceResult
from tfcore.autoscale.resources import Resources
from tfcore.autoscale.samples import feed, usage_query
from tfcore.autoscale.settings import Settings, resolve
from tfcore.k8s import NotFound, request_json
from tfcore.metrics.store import Dialect, QueryResult
from tfcore.model.annotations import (
    DEDICATED_GPU,
    GPU_IDS,
    TFLOPS_LIMIT,
    TFLOPS_REQUEST,
    VRAM_LIMIT,
    VRAM_REQUEST,
    WORKLOAD_PROFILE,
)
from tfcore.model.autoscaling import AutoScalingConfig, ExternalScaler, VerticalScalingRule
from tfcore.model.codec import decode, to_builtins
from tfcore.model.errors import ValidationError
from tfcore.model.meta import GPUResourceRequirements, QoSLevel, parse_duration
from tfcore.model.quantity import parse_quantity
from tfcore.operator.conditions import condition
from tfcore.operator.fleet import changed
from tfcore.operator.workload import workload_key
from tfcore.sched.units import capacity_bytes, capacity_milli_tflops, request_bytes, request_milli_tflops

if TYPE_CHECKING:
    from daemons.controller.controller import Controller

log = logging.getLogger(__name__)

CONDITION: Final = "ResourceUpdate"
TICK_S: Final = 1.0  # how often workloads are looked at (cheap); each is evaluated every `interval`
EXTERNAL_TIMEOUT_S: Final = 10.0
MAX_RESTORES: Final = 3
TEMPLATES: Final = "/apis/tensor-fusion.ai/v1/schedulingconfigtemplates"
Obj = Mapping[str, Any]


class Ports(Protocol):
    """What the autoscaler needs from the world (the controller provides it)."""

    @property
    def dialect(self) -> Dialect: ...

    async def query(self, sql: str) -> QueryResult: ...

    async def patch_pod(self, pod: Obj, annotations: dict[str, str]) -> None: ...

    async def patch_status(self, workload: Obj, status: dict[str, Any]) -> None: ...

    async def event(self, obj: Obj, type_: str, reason: str, message: str) -> None: ...

    async def external(self, scaler: ExternalScaler, namespace: str, body: dict[str, Any]) -> bytes:
        """POST to the external recommender; raises on any failure (HTTP, timeout, secret)."""
        ...

    async def profile_config(self, namespace: str, name: str) -> AutoScalingConfig | None: ...

    async def pool_rules(self, pool: str) -> list[VerticalScalingRule]:
        """verticalScalingRules of the pool's SchedulingConfigTemplate (none: empty)."""
        ...


@dataclass(slots=True)
class _Tracked:
    history: WorkloadHistory
    shape: tuple[float, float]  # (history, half-life) seconds the history was built with
    loaded_until: datetime
    next_due: datetime
    external: SourceResult | None = None
    next_external: datetime | None = None
    reported: set[str] = field(default_factory=set)
    written: dict[str, Any] | None = None  # the status we last wanted (restored if overwritten)
    restores: int = 0  # restores since `written` was set


class Autoscaler:
    def __init__(self, ports: Ports, *, clock: Callable[[], datetime] | None = None) -> None:
        self.ports = ports
        self.clock = clock or (lambda: datetime.now(UTC))
        self.tracked: dict[str, _Tracked] = {}

    async def run(
        self,
        workloads: Callable[[], Sequence[tuple[Obj, list[Obj]]]],
        gpus: Callable[[], Obj],
        is_leader: Callable[[], bool],
    ) -> None:
        """Until cancelled: every tick while leading, reconcile each workload that is due."""
        while True:
            if not is_leader():
                await asyncio.sleep(TICK_S)
                continue
            seen = set()
            for workload, pods in workloads():
                seen.add(_key(workload))
                try:
                    await self.reconcile(workload, pods, gpus())
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("autoscaling %s failed; retrying next interval", _key(workload))
            for gone in set(self.tracked) - seen:
                del self.tracked[gone]
            await asyncio.sleep(TICK_S)

    async def reconcile(self, workload: Obj, pods: Sequence[Obj], gpus: Obj) -> None:
        key = _key(workload)
        now = self.clock()
        tracked = self.tracked.get(key)
        if tracked is not None and now < tracked.next_due:
            await self._restore(workload, tracked)
            return
        try:
            config = await self._config(workload, pods)
            settings = resolve(config) if config else None
        except ValidationError as exc:
            await self._report(workload, "InvalidAutoScalingConfig", str(exc))
            return
        if config is None or settings is None:
            self.tracked.pop(key, None)
            if (workload.get("status") or {}).get("appliedRecommendation"):
                # Turned off: new workers start at the spec again (the webhook reads this field).
                off = dict.fromkeys(("recommendation", "appliedRecommendation", "lastAppliedTime", "originalResources"))
                await self.ports.patch_status(workload, off)
            return
        status = workload.get("status") or {}
        spec = workload.get("spec") or {}
        original = _resources(status.get("originalResources")) or _resources(spec.get("resources"))
        if original is None:
            await self._report(workload, "NoResources", "spec.resources has no TFLOPS and VRAM requests to scale from")
            return
        tracked = await self._load(key, workload, settings, now, tracked)
        applied = _resources(status.get("appliedRecommendation"))
        current = applied or original
        situation = Situation(
            settings,
            config,
            original,
            current,
            _qos(spec.get("qos")),
            now,
            active_cron_rule=status.get("activeCronScalingRule") or None,
            last_applied=_time(status.get("lastAppliedTime")),
            external=await self._external(tracked, config, workload, current, now),
        )
        outcome = evaluate(tracked.history, situation)
        workers = _workers(pods)
        wanted = outcome.apply
        if wanted is None and applied is not None and any(w.grant != Grant.of(applied) for _, w in workers):
            wanted = applied  # a new or restarted worker: bring it to what the others have
        new_status: dict[str, Any] = {
            "recommendation": _api(outcome.recommendation),
            "activeCronScalingRule": outcome.active_cron_rule or "",
        }
        if wanted is not None:
            ok, message = await self._apply(workload, workers, gpus, wanted)
            kind = "Updated" if ok else "UpdateFailed"
            if ok:
                new_status |= {
                    "appliedRecommendation": _api(wanted),
                    "lastAppliedTime": _stamp(now),
                    "originalResources": status.get("originalResources") or _api(original),
                }
            new_status["conditions"] = _conditions(workload, "True" if ok else "False", kind, message, now)
        else:
            reason = "NotConfident" if not outcome.estimate.confident and outcome.recommendation is None else "NoChange"
            new_status["conditions"] = _conditions(workload, "False", reason, outcome.reason, now)
        for error in outcome.errors:
            await self._warn_once(tracked, workload, "RecommenderFailed", error)
        tracked.written, tracked.restores = new_status, 0
        if changed(status, new_status):
            await self.ports.patch_status(workload, new_status)

    async def _restore(self, workload: Obj, tracked: _Tracked) -> None:
        """Put back what another writer's status patch replaced (conditions are one list)."""
        if tracked.written is None or tracked.restores >= MAX_RESTORES:
            return  # at most a few per interval: a write the API server alters must not loop
        status = workload.get("status") or {}
        ours = next((c for c in tracked.written.get("conditions", ()) if c.get("type") == CONDITION), None)
        others = [c for c in status.get("conditions") or () if c.get("type") != CONDITION]
        wanted = {**tracked.written, "conditions": [*others, ours] if ours else others}
        if changed(status, wanted):
            tracked.restores += 1
            await self.ports.patch_status(workload, wanted)

    # ---- config and samples ----------------------------------------------------------------

    async def _config(self, workload: Obj, pods: Sequence[Obj]) -> AutoScalingConfig | None:
        spec = workload.get("spec") or {}
        raw = spec.get("autoScalingConfig")
        if raw:
            return decode(raw, AutoScalingConfig, where="spec.autoScalingConfig")
        for pod in pods:
            annotations = (pod.get("metadata") or {}).get("annotations") or {}
            found = configs.from_annotations(annotations)
            if found is not None:
                return found
            profile = annotations.get(WORKLOAD_PROFILE)
            if profile:
                namespace = str((pod.get("metadata") or {}).get("namespace") or "default")
                from_profile = await self.ports.profile_config(namespace, profile)
                if from_profile is not None:
                    return from_profile
        pool = spec.get("poolName")
        if pool:
            labels = dict((workload.get("metadata") or {}).get("labels") or {})
            for pod in pods:
                labels |= (pod.get("metadata") or {}).get("labels") or {}
            return configs.from_rules(await self.ports.pool_rules(str(pool)), labels)
        return None

    async def _load(
        self, key: str, workload: Obj, settings: Settings, now: datetime, tracked: _Tracked | None
    ) -> _Tracked:
        """The workload's history: all of it on first sight or when its period changed, then
        only what arrived since the last load."""
        shape = (settings.history.total_seconds(), settings.half_life.total_seconds())
        if tracked is None or tracked.shape != shape:
            tracked = _Tracked(WorkloadHistory.for_settings(settings), shape, now - settings.history, now)
            self.tracked[key] = tracked
        namespace, name = key.split("/", 1)
        try:
            result = await self.ports.query(usage_query(self.ports.dialect, namespace, name, tracked.loaded_until, now))
        except Exception as exc:  # the store is down or refused: keep what we have, retry next interval
            await self._warn_once(tracked, workload, "MetricsUnavailable", f"metrics store: {exc}")
        else:
            feed(tracked.history, result.rows)
            tracked.loaded_until = now
        tracked.next_due = now + settings.interval
        return tracked

    async def _external(
        self, tracked: _Tracked, config: AutoScalingConfig, workload: Obj, current: Resources, now: datetime
    ) -> SourceResult | None:
        scaler = config.external_scaler
        if scaler is None or not scaler.enable or not scaler.url:
            return None
        if tracked.next_external is not None and now < tracked.next_external:
            return tracked.external
        namespace, name = _key(workload).split("/", 1)
        try:
            body = await asyncio.wait_for(
                self.ports.external(scaler, namespace, request_body(name, namespace, current)), EXTERNAL_TIMEOUT_S
            )
            advice = parse_reply(body, current)
            result = SourceResult("external", advice.resources) if advice.resources else None
        except Exception as exc:  # a failing recommender never blocks the others
            result = SourceResult("external", error=f"{scaler.url}: {exc or type(exc).__name__}")
        interval = resolve_duration(scaler.interval, timedelta(seconds=30))
        tracked.external, tracked.next_external = result, now + interval
        return result

    # ---- applying ----------------------------------------------------------------------------

    async def _apply(
        self, workload: Obj, workers: list[tuple[Obj, WorkerGrant]], gpus: Obj, wanted: Resources
    ) -> tuple[bool, str]:
        ledger = _ledger(gpus)
        grant = Grant.of(wanted)
        changes = plan(ledger, [w for _, w in workers], grant).changes
        if not changes:
            if any(w.grant != grant for _, w in workers):
                return False, "no free room on the workers' GPUs to grow them"
            return True, "every worker has the recommended resources"
        pods = {w.key: pod for pod, w in workers}
        done = []
        try:
            for change in changes:
                await self.ports.patch_pod(pods[change.key], change.patch())
                done.append(change)
        except Exception as exc:
            for change in reversed(done):
                try:
                    await self.ports.patch_pod(pods[change.key], change.rollback())
                except Exception:
                    log.exception("rolling back %s failed", change.key)
            message = f"resizing {len(changes)} worker(s) failed at {changes[len(done)].key}: {exc}; rolled back"
            await self.ports.event(workload, "Warning", "ResourceUpdateFailed", message)
            return False, message
        capped = [c.key for c in changes if c.capped]
        message = f"resized {len(changes)} worker(s) to {_describe(wanted)}"
        if capped:
            message += f"; capped by free GPU room: {', '.join(capped)}"
        await self.ports.event(workload, "Normal", "ResourcesUpdated", message)
        return True, message

    async def _report(self, workload: Obj, reason: str, message: str) -> None:
        status = workload.get("status") or {}
        new_status = {"conditions": _conditions(workload, "False", reason, message, self.clock())}
        if changed(status, new_status):
            await self.ports.patch_status(workload, new_status)
            await self.ports.event(workload, "Warning", reason, message)

    async def _warn_once(self, tracked: _Tracked, workload: Obj, reason: str, message: str) -> None:
        if message not in tracked.reported:
            tracked.reported.add(message)
            log.warning("%s: %s", _key(workload), message)
            await self.ports.event(workload, "Warning", reason, message)


def resolve_duration(text: str | None, default: timedelta) -> timedelta:
    return parse_duration(text) if text else default


def _key(obj: Obj) -> str:
    metadata = obj.get("metadata") or {}
    return f"{metadata.get('namespace') or 'default'}/{metadata.get('name') or ''}"


def _resources(raw: object) -> Resources | None:
    if not isinstance(raw, Mapping) or not raw:
        return None
    try:
        return Resources.of(decode(raw, GPUResourceRequirements))
    except ValidationError:
        return None


def _api(resources: Resources | None) -> dict[str, Any] | None:
    return to_builtins(resources.to_api()) if resources else None


def _qos(value: object) -> QoSLevel | None:
    levels: dict[object, QoSLevel] = {"low": "low", "medium": "medium", "high": "high", "critical": "critical"}
    return levels.get(value)


def _time(value: object) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None


def _stamp(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _describe(resources: Resources) -> str:
    grant = Grant.of(resources).annotations()
    return (
        f"TFLOPS {grant[TFLOPS_REQUEST]}/{grant[TFLOPS_LIMIT]}, VRAM {grant[VRAM_REQUEST]}/{grant[VRAM_LIMIT]} "
        "(request/limit)"
    )


def _conditions(workload: Obj, status: str, reason: str, message: str, now: datetime) -> list[dict[str, Any]]:
    previous = (workload.get("status") or {}).get("conditions") or []
    generation = (workload.get("metadata") or {}).get("generation")
    ours = condition(CONDITION, status, reason, message, now=_stamp(now), generation=generation, previous=previous)
    return [*(c for c in previous if c.get("type") != CONDITION), ours]


def _workers(pods: Sequence[Obj]) -> list[tuple[Obj, WorkerGrant]]:
    """The pods that can be resized in place: live, not on a dedicated GPU, with TFLOPS and
    VRAM annotations (percent-of-GPU requests are left as they are)."""
    workers = []
    for pod in pods:
        metadata = pod.get("metadata") or {}
        annotations = metadata.get("annotations") or {}
        phase = (pod.get("status") or {}).get("phase")
        if metadata.get("deletionTimestamp") or phase in ("Succeeded", "Failed"):
            continue
        if annotations.get(DEDICATED_GPU) == "true":
            continue
        try:
            tflops = request_milli_tflops(parse_quantity(annotations[TFLOPS_REQUEST]))
            tflops_limit_text = annotations.get(TFLOPS_LIMIT) or annotations[TFLOPS_REQUEST]
            tflops_limit = request_milli_tflops(parse_quantity(tflops_limit_text))
            vram_limit = request_bytes(parse_quantity(annotations.get(VRAM_LIMIT) or annotations[VRAM_REQUEST]))
            vram = request_bytes(parse_quantity(annotations.get(VRAM_REQUEST) or annotations[VRAM_LIMIT]))
        except (KeyError, ValidationError):
            continue
        gpus = tuple(g for g in str(annotations.get(GPU_IDS) or "").split(",") if g)
        workers.append((pod, WorkerGrant(_key(pod), gpus, Grant(tflops, vram, tflops_limit, vram_limit))))
    return workers


def _ledger(gpus: Obj) -> dict[str, GPULedger]:
    """Per GPU object name: capacity and what is allocated (capacity minus available)."""
    ledger = {}
    for name, gpu in gpus.items():
        status = gpu.get("status") or {}
        capacity, available = status.get("capacity") or {}, status.get("available") or {}
        try:
            tflops = capacity_milli_tflops(parse_quantity(capacity["tflops"]))
            vram = capacity_bytes(parse_quantity(capacity["vram"]))
            free_tflops = capacity_milli_tflops(parse_quantity(available["tflops"]))
            free_vram = capacity_bytes(parse_quantity(available["vram"]))
        except (KeyError, ValidationError):
            continue  # not reported yet: its workers may not grow
        ledger[name] = GPULedger(tflops, vram, max(0, tflops - free_tflops), max(0, vram - free_vram))
    return ledger


class ControllerPorts:
    """Ports over the controller: its fenced writes, its Event recorder, the metrics store."""

    def __init__(self, controller: Controller, recorder: Any, store: Any) -> None:
        self.controller, self.recorder, self.store = controller, recorder, store
        self.api = controller.context.api

    @property
    def dialect(self) -> Dialect:
        dialect: Dialect = self.store.dialect
        return dialect

    async def query(self, sql: str) -> QueryResult:
        result: QueryResult = await self.store.query(sql)
        return result

    async def patch_pod(self, pod: Obj, annotations: dict[str, str]) -> None:
        await self.controller.writer.patch("Pod", pod, {"metadata": {"annotations": annotations}})

    async def patch_status(self, workload: Obj, status: dict[str, Any]) -> None:
        await self.controller.writer.patch("TensorFusionWorkload", workload, {"status": status}, status=True)

    async def event(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        await self.recorder.emit(dict(obj), type_, reason, message)

    async def external(self, scaler: ExternalScaler, namespace: str, body: dict[str, Any]) -> bytes:
        headers = {"Content-Type": "application/json"}
        ref = scaler.api_key_secret_ref
        if ref is not None:
            secret = await request_json(
                self.api, "GET", f"/api/v1/namespaces/{ref.namespace or namespace}/secrets/{ref.name}"
            )
            headers["Authorization"] = f"Bearer {api_key(secret)}"
        timeout = aiohttp.ClientTimeout(total=EXTERNAL_TIMEOUT_S)
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.post(str(scaler.url), data=json.dumps(body), headers=headers) as response,
        ):
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}")
            return await response.read()

    async def profile_config(self, namespace: str, name: str) -> AutoScalingConfig | None:
        path = f"/apis/tensor-fusion.ai/v1/namespaces/{namespace}/workloadprofiles/{name}"
        try:
            profile = await request_json(self.api, "GET", path)
        except NotFound:
            return None
        raw = (profile.get("spec") or {}).get("autoScalingConfig")
        where = f"WorkloadProfile {namespace}/{name}.spec.autoScalingConfig"
        return decode(raw, AutoScalingConfig, where=where) if raw else None

    async def pool_rules(self, pool: str) -> list[VerticalScalingRule]:
        found = self.controller.store.get("GPUPool", pool) or {}
        template = ((found.get("spec") or {}).get("schedulingConfigTemplate")) or ""
        if not template:
            return []
        try:
            obj = await request_json(self.api, "GET", f"{TEMPLATES}/{template}")
        except NotFound:
            return []
        raw = (obj.get("spec") or {}).get("verticalScalingRules") or []
        where = f"SchedulingConfigTemplate {template}.spec.verticalScalingRules"
        return decode(raw, list[VerticalScalingRule], where=where)


def api_key(secret: Obj) -> str:
    """The key in a Secret: field apiKey, token or key (base64, as the API returns data)."""
    data = secret.get("data") or {}
    for field_name in ("apiKey", "token", "key"):
        if data.get(field_name):
            return base64.b64decode(data[field_name]).decode().strip()
    raise ValueError("the secret has none of the fields apiKey, token, key")


def controller_inputs(controller: Controller) -> tuple[Callable[[], list[tuple[Obj, list[Obj]]]], Callable[[], Obj]]:
    """What `run` reads from the controller's store: workloads with their pods, and GPUs."""

    def workloads() -> list[tuple[Obj, list[Obj]]]:
        by_workload: dict[tuple[str, str], list[Obj]] = {}
        for pod in controller.store.objects("Pod"):
            key = workload_key(pod)
            if key is not None:
                by_workload.setdefault(key, []).append(pod)
        result: list[tuple[Obj, list[Obj]]] = []
        for obj in controller.store.objects("TensorFusionWorkload"):
            metadata = obj.get("metadata") or {}
            key = (str(metadata.get("namespace") or "default"), str(metadata.get("name") or ""))
            result.append((obj, by_workload.get(key, [])))
        return result

    def gpus() -> Obj:
        return {str((g.get("metadata") or {}).get("name") or ""): g for g in controller.store.objects("GPU")}

    return workloads, gpus
