"""The webhook's --tier-host-dir: an absolute path (trailing slash dropped) or empty; anything
else is refused naming the flag."""

from __future__ import annotations

import argparse

import pytest

from daemons.webhook.cli import injection_config
from tfcore.model.errors import ValidationError


def _args(tier_host_dir: str) -> argparse.Namespace:
    return argparse.Namespace(
        shim_path="/shim",
        image="i",
        region_host_dir="/r",
        tier_host_dir=tier_host_dir,
        scheduler_name="s",
        nvidia_progressive_migration=False,
    )


@pytest.mark.parametrize(("given", "used"), [("", ""), ("/var/tier/", "/var/tier"), ("/t", "/t")])
def test_the_tier_host_dir_is_an_absolute_path_or_none(given: str, used: str) -> None:
    assert injection_config(_args(given)).tier_host_dir == used


@pytest.mark.parametrize("given", ["tier", "./tier", "~/tier"])
def test_a_relative_tier_host_dir_is_refused_naming_the_flag(given: str) -> None:
    with pytest.raises(ValidationError) as caught:
        injection_config(_args(given))
    assert "--tier-host-dir" in str(caught.value)
    assert "an absolute host path" in str(caught.value)
