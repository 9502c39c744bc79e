"""The fleet passes (hypervisor rollouts, managed-pool capacity) on a timer, while leading.

They list what they need on each pass instead of watching: the decisions hang on time (windows,
intervals, timeouts, compaction periods) as much as on changes, and everything they remember is
in the cluster (pool annotations, claims), so any pass on any leader picks up where the last left.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

from daemons.controller.aws import AwsProvider, session_for
from daemons.controller.capacity import reconcile_capacity
from daemons.controller.fleet_io import FleetApi
from daemons.controller.rollout import reconcile_rollouts
from tfcore.fleet.provider import CloudProvider
from tfcore.k8s import KubeClient, KubeError
from tfcore.model.codec import encode_json
from tfcore.model.errors import ValidationError
from tfcore.model.pool import ComputingVendorConfig

log = logging.getLogger(__name__)

INTERVAL: Final = 10.0  # seconds between passes


class NotLeading(Exception):
    """Leadership ended mid-pass: stop writing, the next leader redoes the pass."""


class Providers:
    """One cloud client per computingVendor configuration (rebuilt when the configuration changes)."""

    def __init__(self) -> None:
        self._cached: tuple[str, CloudProvider | None] | None = None

    def __call__(self, vendor: ComputingVendorConfig) -> CloudProvider | None:
        key = encode_json(vendor).decode()
        if self._cached is None or self._cached[0] != key:
            self._cached = (key, _build(vendor))
        return self._cached[1]


def _build(vendor: ComputingVendorConfig) -> CloudProvider | None:
    if vendor.type != "aws":
        if vendor.type not in (None, "karpenter"):
            log.warning(
                "computingVendor.type %s: no provider in this build (aws is); Provisioned pools wait", vendor.type
            )
        return None
    region = vendor.params.default_region if vendor.params else None
    if not region:
        log.warning("computingVendor.params.defaultRegion: missing; Provisioned pools wait")
        return None
    return AwsProvider(session_for(vendor), region)


async def run(api: KubeClient, *, is_leader: Callable[[], bool], interval: float = INTERVAL) -> None:
    def fence() -> None:
        if not is_leader():
            raise NotLeading

    fleet = FleetApi(api, fence)
    providers = Providers()
    while True:
        await asyncio.sleep(interval)
        if is_leader():
            await run_once(fleet, providers, datetime.now(UTC))


async def run_once(fleet: FleetApi, providers: Providers, now: datetime) -> None:
    """Rollouts, then capacity; one failing does not stop the other, and nothing stops the loop."""
    for name, step in (
        ("rollout", lambda: reconcile_rollouts(fleet, now)),
        ("capacity", lambda: reconcile_capacity(fleet, now, providers)),
    ):
        try:
            await step()
        except NotLeading:
            return
        except (KubeError, ValidationError, ValueError, LookupError, OSError) as exc:
            log.warning("fleet %s pass: %s; retrying next pass", name, exc)
        except Exception:  # a bug here must not take the reconcilers down with it
            log.exception("fleet %s pass failed; retrying next pass", name)
