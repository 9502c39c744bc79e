"""TF_NVIDIA_OPERATOR_PROGRESSIVE_MIGRATION means the same to the four daemons that read it.

The hypervisor used to compare the value with "true" while the others took 1/yes/on too, so
`=1` made the controller taint nodes while the hypervisor did not coexist.
"""

from __future__ import annotations

import argparse
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemons.controller.cli import options_from
from daemons.hypervisor.options import add_node_arguments, node_options
from daemons.webhook.cli import injection_config
from tfcore.config.env import PROGRESSIVE_MIGRATION_ENV
from tfcore.model.errors import ValidationError

SPELLINGS = ["true", "1", "yes", "on", "TRUE", " t ", "false", "0", "no", "off", "", "F"]


CONTROLLER_ARGS = argparse.Namespace(
    metrics_bind_address=":8080",
    alert_manager_addr="",
    enable_alert=False,
    leader_elect=False,
    enable_auto_scale=False,
    kubeconfig=None,
    lease_namespace=None,
    lease_name="l",
    dynamic_config=None,
    metrics_store=None,
)


def hypervisor_reads(value: str) -> bool | None:
    parser = argparse.ArgumentParser()
    add_node_arguments(parser, environ={PROGRESSIVE_MIGRATION_ENV: value})
    result: bool | None = parser.parse_args([]).nvidia_progressive_migration
    return result


@given(st.sampled_from(SPELLINGS))
def test_every_daemon_reads_the_switch_alike(value: str) -> None:
    env = {PROGRESSIVE_MIGRATION_ENV: value}
    controller = options_from(CONTROLLER_ARGS, env).nvidia_progressive_migration
    assert hypervisor_reads(value) is controller
    assert controller is (value.strip().lower() in {"true", "1", "yes", "on", "t"})


def test_webhook_and_scheduler_resolve_it_through_the_same_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PROGRESSIVE_MIGRATION_ENV, "1")
    webhook_args = argparse.Namespace(
        shim_path="/shim",
        image="i",
        region_host_dir="/r",
        tier_host_dir="",
        scheduler_name="s",
        nvidia_progressive_migration=None,
    )
    assert injection_config(webhook_args).route_native_gpu_pods is True
    assert hypervisor_reads(os.environ[PROGRESSIVE_MIGRATION_ENV]) is True


def test_a_malformed_switch_is_reported_by_name() -> None:
    assert hypervisor_reads("maybe") is None  # parsing argv must not fail: main() reports it
    parser = argparse.ArgumentParser()
    environ = {PROGRESSIVE_MIGRATION_ENV: "maybe"}
    add_node_arguments(parser, environ=environ)
    with pytest.raises(ValidationError, match=PROGRESSIVE_MIGRATION_ENV):
        node_options(parser.parse_args([]), environ)
    assert node_options(parser.parse_args(["--nvidia-progressive-migration"]), environ).nvidia_progressive_migration
    with pytest.raises(ValidationError, match=PROGRESSIVE_MIGRATION_ENV):
        options_from(CONTROLLER_ARGS, {PROGRESSIVE_MIGRATION_ENV: "maybe"})
