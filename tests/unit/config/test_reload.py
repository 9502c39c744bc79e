"""ConfigReloader: the kubelet's ..data symlink swap, invalid versions rejected, old one kept."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from tfcore.config.reload import ConfigReloader


def parse(text: str) -> int:
    value = int(text)  # raises ValueError on bad input, like any parser
    if value < 0:
        raise ValueError(f"negative: {value}")
    return value


class ConfigMapVolume:
    """Lays files out as the kubelet does: config.yaml -> ..data/config.yaml, ..data -> ..<version>."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.version = 0
        (root / "config.yaml").symlink_to("..data/config.yaml")

    def publish(self, text: str) -> None:
        self.version += 1
        target = self.root / f"..2026_01_01_00_00_0{self.version}"
        target.mkdir()
        (target / "config.yaml").write_text(text)
        tmp = self.root / "..data_tmp"
        tmp.symlink_to(target.name)
        os.replace(tmp, self.root / "..data")  # the atomic swap


async def test_symlink_swap_is_picked_up(tmp_path: Path) -> None:
    volume = ConfigMapVolume(tmp_path)
    volume.publish("1")
    seen: list[int] = []
    reloader = ConfigReloader(tmp_path / "config.yaml", parse, seen.append)
    assert await reloader.load() == 1
    assert not await reloader.check()
    volume.publish("2")
    assert await reloader.check()
    assert reloader.current == 2
    assert seen == [1, 2]


async def test_invalid_version_is_rejected_logged_once_and_old_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    volume = ConfigMapVolume(tmp_path)
    volume.publish("1")
    seen: list[int] = []

    async def on_change(value: int) -> None:
        seen.append(value)

    reloader = ConfigReloader(tmp_path / "config.yaml", parse, on_change, name="sys-config")
    await reloader.load()
    volume.publish("-5")
    with caplog.at_level(logging.ERROR):
        assert not await reloader.check()
        volume.publish("-5")  # same bad content again: no second log line
        assert not await reloader.check()
    assert reloader.current == 1
    assert reloader.last_error == "negative: -5"
    assert [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()] == [
        f"sys-config: rejected new {tmp_path / 'config.yaml'} (keeping the previous version): negative: -5"
    ]
    volume.publish("3")
    assert await reloader.check()
    assert seen == [1, 3]
    assert reloader.last_error is None


async def test_missing_file_keeps_the_old_config(tmp_path: Path) -> None:
    path = tmp_path / "plain.yaml"
    path.write_text("7")
    reloader = ConfigReloader(path, parse)
    await reloader.load()
    path.unlink()
    assert not await reloader.check()
    assert reloader.current == 7
    assert reloader.last_error is not None
    path.write_text("8")
    assert await reloader.check()
    assert reloader.current == 8
