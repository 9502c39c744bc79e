"""The tiering of this node's pool, followed live (docs/hypervisor.md, *VRAM tiering*): its
freeze TTLs and its VRAM expansion percentages.

This node's GPUNode (its `tensor-fusion.ai/gpupool` label names the pool), the GPUPools (a pool's
`spec.schedulingConfigTemplate` names a template) and the SchedulingConfigTemplates are listed
and watched into a Store; on every change the node's TTLs are resolved again
(tfcore.hypervisor.freezeconfig: --freeze-ttl > the pool's template > $TF_HYPERVISOR_SCHEDULING_CONFIG
> defaults) and handed to the Node, whose next tick plans with them. No restart is needed, so a
template edit reaches every hypervisor of the pool within a watch event.

The pool's `capacityConfig.oversubscription` (vramExpandToHostMem / vramExpandToHostDisk) is
resolved likewise (tfcore.hypervisor.expansion: --vram-expand-* > the pool > defaults) and
handed to the Node, which measures its capacity again and tiers new workers by it.

A template that does not decode (the API server checks the schema, not e.g. a disk TTL before
the memory TTL) is logged once, gets a Warning Event `FreezeTTLsNotApplied` naming this node and
the field, and the TTLs in force stay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Final

from daemons.hypervisor.node import Node
from tfcore.hypervisor.expansion import pool_expansion, resolve_expansion
from tfcore.hypervisor.freezeconfig import (
    FreezeTTLs,
    pool_template_name,
    resolve_with_sources,
    scheduling_of,
    template_ttls,
)
from tfcore.k8s import Change, Informers, KubeClient, Resource, Store
from tfcore.k8s.events import EventRecorder
from tfcore.model.errors import ValidationError

log = logging.getLogger(__name__)
ENV_SOURCE: Final = "TF_HYPERVISOR_SCHEDULING_CONFIG"
COMPONENT: Final = "tensor-fusion-hypervisor"
REFUSED: Final = "FreezeTTLsNotApplied"
MAX_PENDING_EVENTS: Final = 16


def startup_ttls(flags: FreezeTTLs, env_ttls: FreezeTTLs) -> tuple[FreezeTTLs, dict[str, str]]:
    """The TTLs before the pool's template is known: flags over the environment over defaults."""
    return resolve_with_sources(flags, [(ENV_SOURCE, env_ttls)])


class PoolFreezeTTLs:
    def __init__(
        self,
        api: KubeClient,
        node: Node,
        *,
        node_name: str,
        flags: FreezeTTLs,
        env_ttls: FreezeTTLs,
        expansion_flags: tuple[int | None, int | None] = (None, None),
        watch_timeout: int = 300,
    ) -> None:
        self.node = node
        self.expansion_flags = expansion_flags
        self._bad_pool = ""  # the last malformed oversubscription logged, so it is logged once
        self.synced = asyncio.Event()  # the first full view was applied (pod workers wait for it)
        self.node_name = node_name
        self.flags = flags
        self.env_ttls = env_ttls
        self.template = ""  # the template in force ("SchedulingConfigTemplate/NAME"), "" for none
        self._rejected = ""  # the last problem logged, so it is logged once
        self.store = Store()
        self.store.subscribe(self._on_change)
        self.store.subscribe_relists(self._on_list)
        resources = [
            Resource.of("GPUNode", field_selector=f"metadata.name={node_name}"),
            Resource.of("GPUPool"),
            Resource.of("SchedulingConfigTemplate"),
        ]
        self.informers = Informers(api, self.store, resources, watch_timeout=watch_timeout)
        self.recorder = EventRecorder(api, COMPONENT, host=node_name)
        self._events: asyncio.Queue[tuple[dict[str, Any], str]] = asyncio.Queue(MAX_PENDING_EVENTS)

    async def run(self) -> None:
        await asyncio.gather(self.informers.run(), self._send_events())

    async def _send_events(self) -> None:
        while True:
            template, message = await self._events.get()
            await self.recorder.emit(template, "Warning", REFUSED, message)

    def _on_change(self, change: Change) -> None:
        if not change.relist:
            self._apply()

    def _on_list(self, kind: str, listed: tuple[dict[str, Any], ...]) -> None:
        self._apply()

    def _apply(self) -> None:
        if not self.informers.synced():
            return  # a partial view would drop the template for a moment
        try:
            self.apply()
        except Exception:  # a bug here must not stop the informers (or the node daemon)
            log.exception("freeze TTLs not updated; the next change retries")

    def apply(self) -> None:
        """Resolve the TTLs and the expansion from what the store holds now; hand them to the node."""
        self.apply_expansion()
        self.apply_ttls()
        self.synced.set()

    def apply_expansion(self) -> None:
        gpunode = self.store.get("GPUNode", self.node_name)
        try:
            pool = pool_expansion(gpunode, self.store.of_kind("GPUPool"))
        except ValidationError as exc:  # the CRD schema refuses this first; an old object may not
            if str(exc) != self._bad_pool:
                log.warning("pool oversubscription not applied, the expansion in force stays: %s", exc)
                self._bad_pool = str(exc)
            return
        self._bad_pool = ""
        mem, disk = self.expansion_flags
        self.node.set_expansion(resolve_expansion(mem, disk, pool, tier_dir=self.node.tiering.tier_dir))

    def apply_ttls(self) -> None:
        name = pool_template_name(self.store.get("GPUNode", self.node_name), self.store.of_kind("GPUPool"))
        template = self.store.get("SchedulingConfigTemplate", name) if name else None
        where = f"SchedulingConfigTemplate/{name}"
        try:
            pool_ttls = template_ttls(scheduling_of(template, where=where))
        except ValidationError as exc:
            if str(exc) != self._rejected and template is not None:
                log.warning("%s not applied, the freeze TTLs in force stay: %s", where, exc)
                self._rejected = str(exc)
                message = f"node {self.node_name} keeps its freeze TTLs: {exc}"
                with contextlib.suppress(asyncio.QueueFull):  # a storm of edits: the log has them all
                    self._events.put_nowait((template, message))
            return
        self._rejected = ""
        in_force = where if template is not None else ""
        if in_force != self.template:
            log.info("freeze TTLs from %s", in_force or "the node's flags, environment and defaults")
            self.template = in_force
        layers = [(ENV_SOURCE, self.env_ttls), (where, pool_ttls)]
        ttls, sources = resolve_with_sources(self.flags, layers)
        self.node.set_freeze_ttls(ttls, sources)
